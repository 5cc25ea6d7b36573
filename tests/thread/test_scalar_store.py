"""Storing one element (every index a scalar) from a scalar: written once per block, by thread 0.
Found by the program generator (``Y[i] <- s`` passed check and the block level, then the thread
level had no layout for the scalar)."""

from __future__ import annotations

import numpy as np
import pytest

import tiledsl

SCALAR_STORE = """
kernel k(X: f32[M, N], out T: f32[B], out C: i32[B], s: f32)
  param BN = 40, WAVES = 2
  grid (cdiv(N, BN)) as (b)
  block WAVES waves
{
  x = X[0 : +8, b*BN : +BN]
  T[b] <- s + sum(rowsum(x), axis=0)
  C[b] <- b * 3
}
"""


def _run(waves: int, target: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prog = tiledsl.load(SCALAR_STORE, params={"WAVES": waves})
    x = np.random.default_rng(waves).standard_normal((5, 97)).astype(np.float32)
    t, c = np.full(3, np.nan, np.float32), np.full(3, -7, np.int32)
    kw = {"level": "thread", "target": target} if target else {}
    report = prog.interpret(X=x, T=t, C=c, s=0.25, **kw)
    assert report.ok, str(report)
    return x, t, c


@pytest.mark.parametrize("waves", [1, 4])
@pytest.mark.parametrize("target", [None, "gfx942", "gfx1100", "sm_90", "sm_90a", "generic"])
def test_a_scalar_store_writes_one_element_per_block(waves: int, target: str | None) -> None:
    x, t, c = _run(waves, target)
    ref = np.array([0.25 + x[:, b * 40:(b + 1) * 40].astype(np.float64).sum() for b in range(3)])
    assert np.linalg.norm(t - ref) / np.linalg.norm(ref) < 1e-6
    assert list(c) == [0, 3, 6]


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"])
def test_a_scalar_store_compiles(target: str) -> None:
    art = tiledsl.load(SCALAR_STORE).compile(target=target)
    assert art.binary
