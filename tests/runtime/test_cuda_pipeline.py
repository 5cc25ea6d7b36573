"""Pipelined attention (cp.async, 2 and 3 stages) on a real NVIDIA GPU against the NumPy
reference and the unpipelined kernel, at shapes that are not multiples of the tiles (skipped
where there is no GPU)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import tiledsl

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except cupy.cuda.runtime.CUDARuntimeError:
    pytest.skip("no CUDA device", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_spec = importlib.util.spec_from_file_location("reference", EXAMPLES / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


def _run(target: str, d: int, causal: int, stages: int, q: np.ndarray, k: np.ndarray, v: np.ndarray
         ) -> tuple[np.ndarray, str]:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": d, "CAUSAL": causal, "STAGES": stages})
    art = prog.compile(target=target)
    o = cupy.full(q.shape, np.nan, dtype=cupy.float16)
    art.launcher()(Q=cupy.asarray(q), K=cupy.asarray(k), V=cupy.asarray(v), O=o, scale=d ** -0.5)
    return o.get(), art.asm


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
@pytest.mark.parametrize("d, causal, n, stages", [(64, 0, 333, 2), (64, 1, 200, 2), (128, 0, 129, 2),
                                                  (128, 1, 77, 2), (64, 0, 1000, 3), (64, 1, 45, 3)])
def test_pipelined_attention_on_the_gpu(target: str, d: int, causal: int, n: int, stages: int) -> None:
    rng = np.random.default_rng(n + d)
    q, k, v = (rng.standard_normal((2, 3, n, d)).astype(np.float16) for _ in range(3))
    out, asm = _run(target, d, causal, stages, q, k, v)
    assert "cp.async.cg.shared.global" in asm
    assert re.search(rf"cp\.async\.wait_group\s+{stages - 2};", asm)
    ref = reference.attention(q, k, v, d ** -0.5, CAUSAL=causal)
    assert _rel(out, ref) < 2e-3
    plain, plain_asm = _run(target, d, causal, 1, q, k, v)
    assert "cp.async" not in plain_asm
    assert _rel(out, plain.astype(np.float64)) < 1e-3
