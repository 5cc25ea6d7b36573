"""Block-sparse attention: an ``if`` inside the key loop that updates the loop-carried tiles
(acc, m, l) only for the key blocks it keeps. Every level gives the NumPy reference's answer at
lengths that are not multiples of the tiles, and every target compiles it — gfx942 with FMAs too,
where the conversion of ``l`` after the split loop once landed before the loop that makes it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tiledsl

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "tests" / "kernels" / "block_sparse_attention.tdsl"
_spec = importlib.util.spec_from_file_location("tdsl_test_kernels_reference_sparse",
                                               ROOT / "tests" / "kernels" / "reference.py")
assert _spec is not None and _spec.loader is not None
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

# gfx942-fma: gfx942 without matrix instructions, the thread IR of compile(matrix=False)
THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic", "gfx942-fma"]


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize(("n", "dense", "bm"), [(150, 70, 64), (77, 0, 32)])
def test_block_sparse_attention(target: str, n: int, dense: int, bm: int) -> None:
    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((1, 2, n, 64)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(KERNEL, params={"D": 64, "BM": bm, "BN": 32})
    args = {"Q": q, "K": k, "V": v, "scale": 0.125, "dense": dense}
    ref = reference.block_sparse_attention(q, k, v, 0.125, dense, BN=32)
    dense_ref = reference.block_sparse_attention(q, k, v, 0.125, n, BN=32)
    assert _rel(ref, dense_ref) > 0.1                # the skipped blocks matter
    block = np.full_like(q, np.nan)
    assert prog.interpret(**args, O=block).ok
    assert _rel(block, ref) < 2e-3
    thread = np.full_like(q, np.nan)
    tgt = target      # "gfx942-fma": gfx942 without MFMA
    report = prog.interpret(level="thread", target=tgt, **args, O=thread)
    assert report.ok, str(report)
    assert _rel(thread, ref) < 2e-3


@pytest.mark.parametrize(("target", "matrix"), [
    ("gfx942", True), ("gfx942", False), ("gfx90a", True), ("gfx90a", False), ("gfx1100", True),
    ("sm_80", True), ("sm_90", True), ("sm_90a", True)])
def test_block_sparse_attention_compiles(target: str, matrix: bool) -> None:
    art = tiledsl.load(KERNEL, params={"D": 64}).compile(target=target, matrix=matrix)
    assert art.binary
