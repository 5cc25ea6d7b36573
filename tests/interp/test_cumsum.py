"""cumsum (inclusive prefix sums) along an axis in both interpreters against NumPy: any width, both
axes, lines spread over registers, lanes, waves (1 to 8, 3 included) and repetitions of the layout,
blocked layouts of every shape, tiles in mma and slice layouts (converted to a blocked one), f16 and
bf16 accumulated in f32, i32 wrapping; the scan plan against the layouts' index maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_bf16
from tiledsl.layout import BlockedSpec, bind
from tiledsl.targets import get_target
from tiledsl.thread.scan import scan_plan

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
TOLERANCE = {"f32": 1e-6, "f16": 2e-3, "bf16": 1.6e-2}


def source(dtype: str, axis: int, waves: int, layout: str) -> str:
    tile = "X[b*BM : +BM, 0 : +BN]" if axis == 1 else "X[0 : +BM, b*BN : +BN]"
    return f"""
kernel scan(X: {dtype}[M, N], out C: {dtype}[M, N])
  param BM = 16, BN = 64
  grid (cdiv({"M, BM" if axis == 1 else "N, BN"})) as (b)
  block {waves} waves
{{
  x = {tile}{layout}
  C[{tile[2:-1]}] <- cumsum(x, axis={axis})
}}
"""


def random_input(dtype: str, m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if dtype == "i32":
        x = rng.integers(-2**31, 2**31, (m, n), dtype=np.int64).astype(np.int32)     # sums wrap
        return x
    x = rng.standard_normal((m, n)).astype(np.float32)
    return x.astype(np.float16) if dtype == "f16" else round_bf16(x) if dtype == "bf16" else x


def check(x: np.ndarray, axis: int, got: np.ndarray, dtype: str) -> None:
    if dtype == "i32":
        with np.errstate(over="ignore"):
            assert np.array_equal(got, np.cumsum(x, axis=axis, dtype=np.int32))
        return
    want = np.cumsum(x.astype(np.float64), axis=axis)
    scale = np.cumsum(np.abs(x.astype(np.float64)), axis=axis)          # a prefix's rounding scale
    err = np.abs(got.astype(np.float64) - want) / np.maximum(scale, 1e-30)
    assert err.max() <= TOLERANCE[dtype], f"error {err.max():.2e} at {np.unravel_index(err.argmax(), err.shape)}"


def run(dtype: str, axis: int, x: np.ndarray, level: str, target: str | None, waves: int = 2, layout: str = "",
        **params: int) -> np.ndarray:
    prog = tiledsl.load(source(dtype, axis, waves, layout), params=params)
    c = np.zeros(x.shape, x.dtype)
    report = prog.interpret(level=level, target=target, X=x, C=c)
    assert report.ok, str(report)
    return c


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["f32", "f16", "bf16", "i32"]), axis=st.sampled_from([0, 1]), m=st.integers(1, 80),
       n=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_block_level_agrees_with_numpy(dtype: str, axis: int, m: int, n: int, seed: int) -> None:
    m, n = (m, min(n, 64)) if axis == 1 else (min(m, 16), n)
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    check(x, axis, run(dtype, axis, x, "block", None), dtype)


LAYOUTS = [
    "",                                                          # the default blocked layout
    " @ blocked(spt=[1, 1], order=[1, 0], waves=[1, {w}])",      # rows over lanes and waves
    " @ blocked(spt=[1, 4], order=[1, 0], waves=[1, {w}])",      # runs of 4 in each thread
    " @ blocked(spt=[2, 1], order=[0, 1], waves=[{w}, 1])",      # columns first
    " @ blocked(spt=[1, 3], order=[0, 1], waves=[{w}, 1])",      # runs of 3, lanes down the columns
]


@pytest.mark.parametrize("target", THREAD_TARGETS)
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["f32", "f16", "i32"]), axis=st.sampled_from([0, 1]), layout=st.sampled_from(LAYOUTS),
       waves=st.sampled_from([1, 2, 3, 4, 8]), m=st.integers(1, 40), n=st.integers(1, 70),
       bn=st.sampled_from([48, 64, 96, 200]), seed=st.integers(0, 2**16))
def test_thread_level_agrees_with_numpy(target: str, dtype: str, axis: int, layout: str, waves: int, m: int,
                                        n: int, bn: int, seed: int) -> None:
    """Any width (48, 96, 200: not powers of two), wave count and blocked layout; a tile wider
    than the threads repeats its pattern (the repetitions' totals carry)."""
    m, n = (m, min(n, bn)) if axis == 1 else (min(m, 16), n)
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    got = run(dtype, axis, x, "thread", target, waves=waves, layout=layout.format(w=waves), BN=bn)
    check(x, axis, got, dtype)


LONG = """
kernel long(X: {dt}[N], out C: {dt}[N])
  const N
  grid (1) as (b)
  block {w} waves
{{
  x = X[0 : +N]{lay}
  C[0 : +N] <- cumsum(x)
}}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
@pytest.mark.parametrize(("n", "waves", "layout"), [(1, 1, ""), (1000, 4, ""), (777, 3, " @ blocked(spt=[2])"),
                                                    (4096, 8, " @ blocked(spt=[1])"), (100, 2, " @ blocked(spt=[3])")])
def test_one_dimensional(level: str, target: str | None, n: int, waves: int, layout: str) -> None:
    """1-D tiles (the axis may be left out): many repetitions over few waves, or one element per
    thread over 8 waves, and runs of 3 elements."""
    x = np.random.default_rng(n).integers(-100, 100, n).astype(np.float32)
    c = np.zeros(n, np.float32)
    prog = tiledsl.load(LONG.format(dt="f32", w=waves, lay=layout), params={"N": n})
    assert prog.interpret(level=level, target=target, X=x, C=c).ok
    assert np.array_equal(c, np.cumsum(x))        # small integers: exact in any order


OTHER_LAYOUTS = """
kernel mixed(Q: f16[M, 32], K: f16[64, 32], out S: f32[M, 64], out R: f32[M])
  param BM = 64
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  lds ks: f16[64, 32]
  ks <- K[0 : +64, :]
  sync
  s = dot(Q[b*BM : +BM, :], ks^T)
  S[b*BM : +BM, :] <- cumsum(s, axis=1) + s
  R[b*BM : +BM] <- cumsum(rowsum(s))
}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_tiles_in_matrix_and_slice_layouts(level: str, target: str | None) -> None:
    """A dot's accumulator (mma layout) and its row sums (a slice of it, replicated over lanes) are
    converted to a blocked layout for the scan; the result meets the accumulator again in its own."""
    rng = np.random.default_rng(7)
    q, k = rng.standard_normal((70, 32)).astype(np.float16), rng.standard_normal((64, 32)).astype(np.float16)
    s_out, r = np.zeros((70, 64), np.float32), np.zeros(70, np.float32)
    prog = tiledsl.load(OTHER_LAYOUTS)
    assert prog.interpret(level=level, target=target, Q=q, K=k, S=s_out, R=r).ok
    s = q.astype(np.float64) @ k.astype(np.float64).T
    assert np.allclose(s_out, np.cumsum(s, axis=1) + s, rtol=1e-4, atol=1e-3)
    for start in range(0, 70, 64):
        block = s[start:start + 64].sum(axis=1)
        assert np.allclose(r[start:start + 64], np.cumsum(block), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90"])
@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 300), st.integers(1, 300)), axis=st.sampled_from([0, 1]),
       spt=st.tuples(st.integers(1, 4), st.integers(1, 4)), order=st.sampled_from([(1, 0), (0, 1)]),
       waves=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 4), (3, 1), (1, 3)]),
       dtype=st.sampled_from(["f32", "f16"]))
def test_scan_plan_matches_the_index_map(target: str, shape: tuple[int, int], axis: int, spt: tuple[int, int],
                                         order: tuple[int, int], waves: tuple[int, int], dtype: str) -> None:
    """The plan's decomposition of each slot's position along the axis (run, lane, wave, repetition)
    is that of the blocked binder, for any spt, order and waves (scan_plan checks it and raises)."""
    spec = BlockedSpec(size_per_thread=spt, order=order, waves=waves)
    layout = bind(spec, shape, waves[0] * waves[1], get_target(target), dtype)
    plan = scan_plan(layout, axis)
    assert plan is not None
    assert sorted(r for run in plan.runs for r in run) == list(range(layout.regs))
    assert all(len(run) == spt[axis] for run in plan.runs)


def test_scans_need_a_blocked_layout() -> None:
    """Other layouts have no plan (layout assignment converts them); distribution refuses them."""
    from tiledsl.layout import MmaSpec
    layout = bind(MmaSpec(waves=(4, 1)), (64, 64), 4, get_target("sm_90"), "f32")
    assert scan_plan(layout, 1) is None


ERRORS = """
kernel k(X: f32[M, 32], out C: f32[M, 32])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  x = X[b*16 : +16, :]
  C[b*16 : +16, :] <- %s
}
"""


@pytest.mark.parametrize(("expr", "message"), [
    ("cumsum(x)", "cumsum(x) needs an axis: cumsum(x, axis=1)"),
    ("cumsum(x, axis=-1)", "axis -1 is out of range"),
    ("f32(cumsum(x > 0.0, axis=1))", "cumsum() does not take i1"),
    ("cumsum(x[0 : +1, 0], axis=0)", "register tiles can be indexed only"),
])
def test_errors(expr: str, message: str) -> None:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(ERRORS % expr)
    assert message in info.value.message, info.value.message


LONG_ROWS = """
kernel rows(X: f32[M, N], out I: i32[M], out C: f32[M, N])
  param BM = 16, BN = 64
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  best = fill(-inf, f32[BM])
  bi = fill(0, i32[BM])
  carry = fill(0.0, f32[BM])
  for n in 0 .. N step BN {
    x = X[b*BM : +BM, n : +BN] pad (inf - inf)
    v, i = argmax(x, axis=1)
    better = v > best
    best = where(better, v, best)
    bi = where(better, i + n, bi)
    y = X[b*BM : +BM, n : +BN]
    C[b*BM : +BM, n : +BN] <- cumsum(y, axis=1) + carry[:, _]
    carry = carry + rowsum(y)
  }
  I[b*BM : +BM] <- bi
}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_rows_longer_than_a_tile(level: str, target: str | None) -> None:
    """Rows walked tile by tile: the argmax and the prefix sums carried through the loop (the NaN
    pad never wins; a later tile's maximum must be strictly larger, so ties keep the first)."""
    x = np.round(np.random.default_rng(8).standard_normal((37, 300)) * 3).astype(np.float32)
    i, c = np.zeros(37, np.int32), np.zeros_like(x)
    assert tiledsl.load(LONG_ROWS).interpret(level=level, target=target, X=x, I=i, C=c).ok
    assert np.array_equal(i, x.argmax(axis=1))
    check(x, 1, c, "f32")


PINNED = """
kernel pinned(Q: f16[M, 32], K: f16[64, 32], out S: f32[M, 64], out I: i32[M])
  param BM = 64
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  layout rows = mma(waves=[4, 1])
  lds ks: f16[64, 32]
  ks <- K[0 : +64, :]
  sync
  s = dot(Q[b*BM : +BM, :], ks^T)
  c = cumsum(s, axis=1) @ rows
  j = argmax(c, axis=1) @ blocked(spt=[1], waves=[4])
  S[b*BM : +BM, :] <- c + s
  I[b*BM : +BM] <- j
}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_results_pinned_to_other_layouts(level: str, target: str | None) -> None:
    """A scan whose result is pinned to an mma layout runs in a blocked one and converts after; an
    argmax whose index is pinned to an unrelated layout reduces in the slice of its operand's."""
    rng = np.random.default_rng(7)
    q, k = rng.standard_normal((70, 32)).astype(np.float16), rng.standard_normal((64, 32)).astype(np.float16)
    s_out, i = np.zeros((70, 64), np.float32), np.zeros(70, np.int32)
    assert tiledsl.load(PINNED).interpret(level=level, target=target, Q=q, K=k, S=s_out, I=i).ok
    s = q.astype(np.float64) @ k.astype(np.float64).T
    assert np.allclose(s_out, np.cumsum(s, axis=1) + s, rtol=1e-4, atol=1e-3)
    assert np.array_equal(i, np.cumsum(s, axis=1).argmax(axis=1))
