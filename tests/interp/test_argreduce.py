"""argmax/argmin along an axis, value and index, in both interpreters against NumPy: ties go to the
smallest index, a NaN is ignored as max/min ignore it (a line of NaNs gives NaN at index 0), lines
spread over registers, lanes and waves (pairs combined through LDS), full reductions of 1-D tiles,
tiles in mma layouts, i32 extremes; and sema's spelling ``v, i = argmax(x, axis=k)``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
INT32 = np.iinfo(np.int32)


def numpy_arg(kind: str, x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices): the first index of the largest (smallest) non-NaN element, 0 for a line of
    NaNs — np.nanargmax's choice, which raises on such lines."""
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        fill = np.where(nan, -np.inf if kind == "argmax" else np.inf, x)
        best = (np.max if kind == "argmax" else np.min)(fill, axis=axis, keepdims=True)
        idx = np.argmax(~nan & (x == best), axis=axis)
    else:
        idx = (np.argmax if kind == "argmax" else np.argmin)(x, axis=axis)
    return np.take_along_axis(x, np.expand_dims(idx, axis), axis).squeeze(axis), idx.astype(np.int32)


def source(kind: str, dtype: str, axis: int, waves: int, layout: str) -> str:
    pad = "(inf - inf)" if dtype != "i32" else ("(-2147483647 - 1)" if kind == "argmax" else "2147483647")
    tile = "X[b*BM : +BM, 0 : +BN]" if axis == 1 else "X[0 : +BM, b*BN : +BN]"
    out = "b*BM : +BM" if axis == 1 else "b*BN : +BN"
    return f"""
kernel arg(X: {dtype}[M, N], out V: {dtype}[{"M" if axis == 1 else "N"}], out I: i32[{"M" if axis == 1 else "N"}])
  param BM = 16, BN = 128
  grid (cdiv({"M, BM" if axis == 1 else "N, BN"})) as (b)
  block {waves} waves
{{
  x = {tile} pad {pad}{layout}
  v, i = {kind}(x, axis={axis})
  V[{out}] <- v
  I[{out}] <- i
}}
"""


def random_input(dtype: str, m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Few distinct values, so that lines have ties; NaNs, infinities and whole NaN lines for floats,
    the i32 extremes for i32."""
    if dtype == "i32":
        x = rng.choice(np.array([INT32.min, INT32.max, 0, -5, 5, 7], np.int32), (m, n))
        return x.astype(np.int32)
    x = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5], np.float32), (m, n))
    x = np.where(rng.random((m, n)) < 0.5, rng.standard_normal((m, n)).astype(np.float32), x)
    x[rng.integers(0, m), :] = np.nan
    x[:, rng.integers(0, n)] = np.nan
    return x.astype(np.float16) if dtype == "f16" else x


def run(kind: str, dtype: str, axis: int, x: np.ndarray, level: str, target: str | None, waves: int = 2,
        layout: str = "", **params: int) -> tuple[np.ndarray, np.ndarray]:
    prog = tiledsl.load(source(kind, dtype, axis, waves, layout), params=params)
    n = x.shape[1 - axis]
    v, i = np.zeros(n, x.dtype), np.full(n, -1, np.int32)
    report = prog.interpret(level=level, target=target, X=x, V=v, I=i)
    assert report.ok, str(report)
    return v, i


def check(kind: str, x: np.ndarray, axis: int, got: tuple[np.ndarray, np.ndarray]) -> None:
    want_v, want_i = numpy_arg(kind, x, axis)
    assert np.array_equal(got[1], want_i), f"indices differ at {np.argwhere(got[1] != want_i)[:5].tolist()}"
    assert np.array_equal(got[0], want_v, equal_nan=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["argmax", "argmin"]), dtype=st.sampled_from(["f32", "f16", "i32"]),
       axis=st.sampled_from([0, 1]), m=st.integers(1, 100), n=st.integers(1, 100), seed=st.integers(0, 2**16))
def test_block_level_agrees_with_numpy(kind: str, dtype: str, axis: int, m: int, n: int, seed: int) -> None:
    m, n = (m, min(n, 128)) if axis == 1 else (min(m, 16), n)
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    check(kind, x, axis, run(kind, dtype, axis, x, "block", None))


LAYOUTS = {
    "default": "",
    "lanes": " @ blocked(spt=[1, 1], order=[1, 0], waves=[4, 1])",
    "waves1": " @ blocked(spt=[1, 2], order=[1, 0], waves=[1, 4])",      # rows spread over the waves
    "waves0": " @ blocked(spt=[2, 1], order=[0, 1], waves=[4, 1])",      # columns spread over the waves
}


@pytest.mark.parametrize("target", THREAD_TARGETS)
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["argmax", "argmin"]), dtype=st.sampled_from(["f32", "f16", "i32"]),
       axis=st.sampled_from([0, 1]), layout=st.sampled_from(sorted(LAYOUTS)), m=st.integers(1, 40),
       n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_thread_level_agrees_with_numpy(target: str, kind: str, dtype: str, axis: int, layout: str, m: int, n: int,
                                        seed: int) -> None:
    m, n = (m, n) if axis == 1 else (min(m, 16), n)
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    check(kind, x, axis, run(kind, dtype, axis, x, "thread", target, waves=4, layout=LAYOUTS[layout], BN=64))


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_ties_nan_and_whole_nan_lines(level: str, target: str | None) -> None:
    """Crafted lines: ties (the first wins), NaN before the maximum (ignored), a line of NaNs
    (index 0), -inf with NaNs (the -inf), ±0 (a tie), spread over 3 waves."""
    rows = [[1, 3, 3, 2], [np.nan, 1, np.nan, 5], [np.nan] * 4, [np.nan, -np.inf, np.nan, -np.inf],
            [-0.0, 0.0, -1, -0.0], [7, 7, 7, 7]]
    x = np.array([r * 10 for r in rows], np.float32)        # 40 columns: across lanes and waves
    for kind in ("argmax", "argmin"):
        got = run(kind, "f32", 1, x, level, target, waves=3, layout=" @ blocked(spt=[1, 1], order=[1, 0], waves=[1, 3])")
        check(kind, x, 1, got)
    v, i = run("argmax", "f32", 1, x, level, target)
    assert i.tolist() == [1, 3, 0, 1, 0, 0] and np.isnan(v[2])


FULL = """
kernel full(X: f32[N], out R: i32[2], out S: f32[2])
  const N
  grid (1) as (b)
  block 4 waves
{
  x = X[0 : +N]
  a, i = argmax(x, axis=0)
  c, j = argmin(x, axis=0)
  R[0 : +2] <- where(iota(2) == 0, i, j)
  S[0 : +2] <- where(iota(2) == 0, a, c)
}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
@pytest.mark.parametrize("n", [1, 37, 300])
def test_full_reduction_of_a_1d_tile_is_uniform(level: str, target: str | None, n: int) -> None:
    """A 1-D tile reduced whole gives uniform scalars (the index could steer a slice or a loop)."""
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    x[n // 2] = np.nan
    r, s = np.zeros(2, np.int32), np.zeros(2, np.float32)
    assert tiledsl.load(FULL, params={"N": n}).interpret(level=level, target=target, X=x, R=r, S=s).ok
    assert r.tolist() == [int(np.nanargmax(x)) if n > 1 else 0, int(np.nanargmin(x)) if n > 1 else 0]
    assert s.tolist() == [np.nanmax(x) if n > 1 else x[0], np.nanmin(x) if n > 1 else x[0]] or n == 1


SCORES = """
kernel best(Q: f16[M, 32], K: f16[N, 32], out I: i32[M], out V: f32[M])
  param BM = 64
  const N
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  lds ks: f16[N, 32]
  ks <- K[0 : +N, :]
  sync
  s = dot(Q[b*BM : +BM, :], ks^T)
  v, i = argmax(s, axis=1)
  I[b*BM : +BM] <- i
  V[b*BM : +BM] <- v
}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_argmax_of_a_dot_in_its_matrix_layout(level: str, target: str | None) -> None:
    """The best key of each query: an argmax of mma accumulators (lanes and registers of the
    fragment layout hold a row)."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((70, 32)).astype(np.float16), rng.standard_normal((64, 32)).astype(np.float16)
    i, v = np.zeros(70, np.int32), np.zeros(70, np.float32)
    assert tiledsl.load(SCORES, params={"N": 64}).interpret(level=level, target=target, Q=q, K=k, I=i, V=v).ok
    s = q.astype(np.float32) @ k.astype(np.float32).T
    assert np.array_equal(i, np.argmax(s, axis=1))
    assert np.allclose(v, s.max(axis=1), rtol=1e-5)


ERRORS = """
kernel k(X: f32[M, 32], out I: i32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  x = X[b*16 : +16, :]
  %s
  I[b*16 : +16] <- i
}
"""


@pytest.mark.parametrize(("stmt", "message"), [
    ("i = argmax(x)", "argmax(x) needs an axis: argmax(x, axis=1)"),
    ("i = argmin(x, axis=2)", "axis 2 is out of range for f32[16,32]"),
    ("v, i = sum(x, axis=1)", "only argmax(), argmin() give several values"),
    ("v, i, w = argmax(x, axis=1)", "argmax() gives 2 values, not 3"),
    ("i, i = argmax(x, axis=1)", "a name is assigned twice"),
    ("v, X = argmax(x, axis=1)", "cannot assign to tensor 'X'"),
    ("i = argmax(x > 0.0, axis=1)", "argmax() does not take i1"),
])
def test_errors(stmt: str, message: str) -> None:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(ERRORS % stmt)
    assert message in info.value.message, info.value.message
    assert info.value.loc.line == 7
