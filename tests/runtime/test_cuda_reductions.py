"""``min``/``max``/``sum`` reductions on a real NVIDIA GPU (skipped where there is none): the
row and column reductions of f32 and i32 tiles, NaNs included, and a bottom-k kernel built on
``rowmin``, against NumPy and the thread interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import tiledsl
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

LINES = """
kernel lines(X: f32[M, N], I: i32[M, N], out RX: f32[M], out CX: f32[N], out RI: i32[M], out CI: i32[N],
             out SI: i32[N])
  const M
  param BN = 32
  grid (cdiv(N, BN)) as (b)
  block 4 waves
{
  layout rows = blocked(spt=[1, 1], order=[1, 0], waves=[4, 1])
  x = X[:, b*BN : +BN] pad inf @ rows
  CX[b*BN : +BN] <- colmin(x)
  RX[:] <- rowmin(x)
  k = I[:, b*BN : +BN] pad 2147483647 @ rows
  CI[b*BN : +BN] <- min(k, axis=0)
  km = I[:, b*BN : +BN] pad (-2147483647 - 1) @ rows
  RI[:] <- rowmax(km)
  ks = I[:, b*BN : +BN] @ rows
  SI[b*BN : +BN] <- colsum(ks)
}
"""

BOTTOM_K = """
kernel bottomk(X: f32[M, N], out T: f32[M, K])
  const K
  param BM = 16, BN = 64
  grid (cdiv(M, BM)) as (bm)
  block 2 waves
{
  x = X[bm*BM : +BM, 0 : +BN] pad inf
  for i in 0 .. K {
    m = min(x, axis=1)
    T[bm*BM : +BM, i] <- m
    x = where(x == m[:, _], inf, x)
  }
}
"""


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
def test_column_reductions_on_the_gpu(target: str) -> None:
    """One block column each (N = 32: one block, so the whole-row outputs have one writer)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 32)) * 10).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3] = np.nan
    info = np.iinfo(np.int32)
    k = rng.integers(info.min, info.max, (64, 32), endpoint=True, dtype=np.int64).astype(np.int32)
    prog = tiledsl.load(LINES, params={"M": 64})
    outs = {"RX": np.zeros(64, np.float32), "CX": np.zeros(32, np.float32), "RI": np.zeros(64, np.int32),
            "CI": np.zeros(32, np.int32), "SI": np.zeros(32, np.int32)}
    gpu = {name: cupy.full(a.shape, -1, a.dtype) for name, a in outs.items()}
    prog.compile(target=target).launcher()(X=cupy.asarray(x), I=cupy.asarray(k), **gpu)
    assert prog.interpret(level="thread", target=target, X=x, I=k, **outs).ok
    with np.errstate(invalid="ignore"):
        want = {"RX": np.fmin.reduce(x, axis=1), "CX": np.fmin.reduce(x, axis=0), "RI": k.max(axis=1),
                "CI": k.min(axis=0), "SI": k.sum(axis=0, dtype=np.int32)}
    for name, w in want.items():
        got = gpu[name].get()
        assert np.array_equal(got, w, equal_nan=True), name
        assert np.array_equal(got, outs[name], equal_nan=True), name
    assert np.isnan(want["CX"][3])


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
def test_bottom_k_on_the_gpu(target: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((77, 50)).astype(np.float32)
    prog = tiledsl.load(BOTTOM_K, params={"K": 6})
    t = cupy.full((77, 6), np.nan, dtype=cupy.float32)
    prog.compile(target=target).launcher()(X=cupy.asarray(x), T=t)
    assert np.array_equal(t.get(), np.sort(x, axis=1)[:, :6])
