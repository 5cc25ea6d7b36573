"""Hash the native code of every example for every target, to check that a restructuring left the
compiler's output byte-identical.

    python bench/artifact_hashes.py > before.json     # on the old tree
    python bench/artifact_hashes.py > after.json      # on the new tree
    diff before.json after.json                        # no output: byte-identical

Each entry is the SHA-256 of the PTX (NVIDIA) or of the linked code object (AMDGPU, needs ld.lld).
Compiles run in parallel processes (one per CPU core).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (example, params): the defaults, plus the attention variants the README's tables use.
CONFIGS: list[tuple[str, dict[str, int]]] = [
    ("attention", {"D": 64}),
    ("attention", {"D": 128}),
    ("attention", {"D": 64, "CAUSAL": 1}),
    ("attention", {"D": 128, "CAUSAL": 1, "QREGS": 0}),
    ("attention", {"D": 64, "STAGES": 1, "BM": 64}),
    ("gemm", {}),
    ("gemm", {"BM": 128, "BN": 128, "BK": 64}),
    ("softmax", {}),
    ("layernorm", {}),
]
TARGETS = [("gfx90a", True), ("gfx942", True), ("gfx942", False), ("gfx1100", True),
           ("sm_80", True), ("sm_90", True), ("sm_90a", True)]


def _one(job: tuple[str, dict[str, int], str, bool]) -> tuple[str, str]:
    import tiledsl
    name, params, target, matrix = job
    key = f"{name} {json.dumps(params, sort_keys=True)} {target}{'' if matrix else '-fma'}"
    try:
        art = tiledsl.load(EXAMPLES / f"{name}.tdsl", params=params).compile(target=target, matrix=matrix)
        data = art.binary
    except Exception as e:  # noqa: BLE001 - an error is an outcome to compare too
        return key, f"error: {type(e).__name__}: {e}"
    return key, hashlib.sha256(data).hexdigest()


def main() -> int:
    jobs = [(n, p, t, m) for n, p in CONFIGS for t, m in TARGETS]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        out = dict(pool.map(_one, jobs))
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
