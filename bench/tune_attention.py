"""Tune examples/attention.tdsl on the GPU for the shapes of bench/attention_gpu.py.

    python bench/tune_attention.py [--quick] [--target sm_90a]

For each shape (N, D, causal) every point of the space below is compiled for the target
(sm_90a by default: wgmma; sm_90: mma.sync) (once per
D and causal: the kernel does not depend on N) and timed with CUDA events (``tiledsl.tune``); the
three fastest are timed again round-robin (``tiledsl.tune.confirm``) and the best is stored in
the tune cache (``$XDG_CACHE_HOME/tiledsl/tune.json``), where
bench/attention_gpu.py and ``tdslc bench`` find it. Prints every point's time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Per target: (BM, WAVES) pairs (16 or 32 rows per wave), BN, pipeline stages, and Q in
#: registers or read from LDS in each key block (tried at D=128, where Q costs most registers).
#: wgmma (sm_90a) wants 16 rows a wave and whole warpgroups: 4 or 8 waves.
SPACES = {
    "sm_90": {"rows": [(64, 4), (128, 4), (128, 8)], "bn": [32, 64], "stages": [2, 3], "qregs": {64: [1], 128: [0, 1]}},
    "sm_90a": {"rows": [(64, 4), (128, 8)], "bn": [64, 128], "stages": [2], "qregs": {64: [1], 128: [0, 1]}},
}


def main() -> None:
    import cupy

    import tiledsl
    from tiledsl.tune import FINALISTS, confirm, store, time_launch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only N=4096, D=128, non-causal")
    ap.add_argument("--target", default="sm_90a", choices=sorted(SPACES), help="NVPTX target (default sm_90a)")
    args = ap.parse_args()
    space = SPACES[args.target]
    shapes = [(n, d, c) for d in (64, 128) for c in (0, 1) for n in (1024, 4096, 16384)]
    if args.quick:
        shapes = [(4096, 128, 0)]
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    prog = tiledsl.load(ROOT / "examples" / "attention.tdsl")
    kernels: dict = {}
    for n, d, causal in shapes:
        z, h = 32768 // n, 16
        q, k, v = (cupy.random.standard_normal((z, h, n, d), dtype=cupy.float32).astype(cupy.float16)
                   for _ in range(3))
        o = cupy.empty_like(q)
        lse = cupy.empty((z, h, n), dtype=cupy.float32)
        launch = {"Q": q, "K": k, "V": v, "O": o, "L": lse, "scale": d ** -0.5}
        first: list[tuple[float, tuple]] = []
        for (bm, waves), bn, stages, qregs in [(r, b, s, q) for r in space["rows"] for b in space["bn"]
                                               for s in space["stages"] for q in space["qregs"][d]]:
            params = {"D": d, "CAUSAL": causal, "BM": bm, "WAVES": waves, "BN": bn, "STAGES": stages,
                      "QREGS": qregs}
            key = tuple(sorted(params.items()))
            try:
                if key not in kernels:
                    kernels[key] = prog.specialize(**params).compile(target=args.target).launcher()
                ms = time_launch(kernels[key], launch)
            except (ValueError, RuntimeError) as e:
                print(f"N={n} D={d} causal={causal} {params}: skipped ({str(e).splitlines()[0][:80]})")
                continue
            flops = 4 * z * h * n * n * d / (2 if causal else 1)
            print(f"N={n} D={d} causal={causal} BM={bm} WAVES={waves} BN={bn} STAGES={stages} QREGS={qregs}: "
                  f"{ms:.3f} ms {flops / ms / 1e9:.1f} TFLOP/s", flush=True)
            first.append((ms, key))
        assert first, "no configuration ran"
        # The fastest few again, round-robin: points timed minutes apart see different clocks.
        key, ms = confirm({k: kernels[k] for _, k in sorted(first)[:FINALISTS]}, launch)
        best = ({name: value for name, value in key if name not in ("D", "CAUSAL")}, ms)
        store(prog, {"N": n, "D": d, "CAUSAL": causal}, best[0], best[1], device, args.target)
        print(f"best N={n} D={d} causal={causal}: {best[0]} {best[1]:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
