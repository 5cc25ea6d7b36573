"""``sum``, ``max`` and ``min`` reductions over either axis of f32 and i32 tiles, in both
interpreters, against NumPy at shapes that are not multiples of the tiles; the NaN rule of
``max``/``min`` (maxNum/minNum: a NaN is ignored); and a bottom-k kernel built on ``rowmin``.

Before ``reduce_min`` existed, ``min(x, axis=k)`` was lowered as a sum, with no error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
KINDS = ["sum", "max", "min"]
INT32 = np.iinfo(np.int32)
IDENTITY = {("sum", "f32"): "0.0", ("sum", "i32"): "0",
            ("max", "f32"): "-inf", ("max", "i32"): "(-2147483647 - 1)",
            ("min", "f32"): "inf", ("min", "i32"): "2147483647"}
COMBINE = {"sum": "acc + {r}", "max": "max(acc, {r})", "min": "min(acc, {r})"}


def reduction_source(kind: str, dtype: str, axis: int, waves: int = 2, spread: bool = False) -> str:
    """A kernel reducing X[M, N] along ``axis`` into R, one block per output tile, walking the
    reduced dim in tiles. ``spread`` lays the tile's reduced axis across the waves, so the
    reduction combines waves through LDS (where the identity pads the partials)."""
    ident = IDENTITY[kind, dtype]
    if axis == 1:
        out_dim, out_tile, red_dim, red_tile = "M", "BM", "N", "BN"
        tile = f"X[b*BM : +BM, n : +BN] pad {ident}"
        wave_split = [1, waves]
    else:
        out_dim, out_tile, red_dim, red_tile = "N", "BN", "M", "BM"
        tile = f"X[n : +BM, b*BN : +BN] pad {ident}"
        wave_split = [waves, 1]
    layout = f" @ blocked(spt=[1, 1], order=[1, 0], waves={wave_split})" if spread else ""
    reduced = f"{kind}(x, axis={axis})"
    return f"""
kernel red(X: {dtype}[M, N], out R: {dtype}[{out_dim}])
  param BM = 32, BN = 32
  grid (cdiv({out_dim}, {out_tile})) as (b)
  block {waves} waves
{{
  acc = fill({ident}, {dtype}[{out_tile}])
  for n in 0 .. {red_dim} step {red_tile} {{
    x = {tile}{layout}
    acc = {COMBINE[kind].format(r=reduced)}
  }}
  R[b*{out_tile} : +{out_tile}] <- acc
}}
"""


def random_input(dtype: str, m: int, n: int, rng: np.random.Generator, nans: bool = False) -> np.ndarray:
    if dtype == "i32":
        x = rng.integers(INT32.min, INT32.max, (m, n), dtype=np.int64, endpoint=True).astype(np.int32)
        x.flat[rng.integers(0, x.size, 2)] = [INT32.min, INT32.max]      # the extremes take part
        return x
    x = (rng.standard_normal((m, n)) * 100).astype(np.float32)
    if nans:
        x[rng.random((m, n)) < 0.3] = np.nan
    return x


def numpy_reduction(kind: str, x: np.ndarray, axis: int) -> np.ndarray:
    if kind == "sum":
        return np.sum(x, axis=axis, dtype=np.int32 if x.dtype == np.int32 else np.float64)   # i32 wraps
    # maxNum/minNum: a NaN counts only where the whole line is NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # "All-NaN slice encountered"
        return (np.nanmax if kind == "max" else np.nanmin)(x, axis=axis)


def check_against_numpy(kind: str, x: np.ndarray, axis: int, got: np.ndarray) -> None:
    want = numpy_reduction(kind, x, axis)
    if x.dtype == np.int32 or kind != "sum":
        assert np.array_equal(got, want, equal_nan=True), \
            f"{kind} axis {axis}: differs at {np.argwhere(got != want)[:5].tolist()}"
    else:
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
        assert err <= 1e-6, f"sum axis {axis}: relative error {err:.2e}"


def run_reduction(level: str, target: str | None, kind: str, dtype: str, axis: int, x: np.ndarray,
                  bm: int = 32, bn: int = 32, waves: int = 2, spread: bool = False) -> np.ndarray:
    prog = tiledsl.load(reduction_source(kind, dtype, axis, waves, spread), params={"BM": bm, "BN": bn})
    out = np.zeros(x.shape[1 - axis], dtype=x.dtype)
    report = prog.interpret(level=level, target=target, X=x, R=out)
    assert report.ok, str(report)
    return out


def test_min_is_a_min_reduction_in_the_tile_ir() -> None:
    ir = tiledsl.load(reduction_source("min", "f32", 1)).ir()
    assert "reduce_min" in ir and "reduce_sum" not in ir
    for name, op in (("rowmin", "reduce_min"), ("colmin", "reduce_min"), ("rowmax", "reduce_max")):
        src = f"""
kernel k(X: f32[M, 32], out R: f32[32])
  grid (1) as (b)
  block 1 waves
{{
  R[0 : +32] <- {name}(X[0 : +32, :])
}}
"""
        ir = tiledsl.load(src).ir()
        assert op in ir and {"reduce_sum", "reduce_max", "reduce_min"} - {op} & set(ir.split()) == set()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), dtype=st.sampled_from(["f32", "i32"]), axis=st.sampled_from([0, 1]),
       m=st.integers(1, 150), n=st.integers(1, 150), bm=st.sampled_from([16, 32, 64]),
       bn=st.sampled_from([16, 32, 64]), seed=st.integers(0, 2**16))
def test_block_level_reductions_agree_with_numpy(kind: str, dtype: str, axis: int, m: int, n: int, bm: int,
                                                 bn: int, seed: int) -> None:
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    check_against_numpy(kind, x, axis, run_reduction("block", None, kind, dtype, axis, x, bm, bn))


@pytest.mark.parametrize("target", THREAD_TARGETS)
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), dtype=st.sampled_from(["f32", "i32"]), axis=st.sampled_from([0, 1]),
       m=st.integers(1, 100), n=st.integers(1, 100), spread=st.booleans(), seed=st.integers(0, 2**16))
def test_thread_level_reductions_agree_with_numpy(target: str, kind: str, dtype: str, axis: int, m: int, n: int,
                                                  spread: bool, seed: int) -> None:
    x = random_input(dtype, m, n, np.random.default_rng(seed))
    check_against_numpy(kind, x, axis, run_reduction("thread", target, kind, dtype, axis, x, spread=spread))


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_reductions_across_waves_start_from_the_identity(target: str, kind: str, axis: int) -> None:
    """i32 lines whose every element sits at the far end of the range: a max/min that starts
    waves (or pads lanes) from a float ±inf, or a sum from anything but 0, gives another answer."""
    rng = np.random.default_rng(3)
    x = np.full((45, 39), {"max": INT32.min, "min": INT32.max, "sum": 0}[kind], np.int32)
    x[rng.integers(0, 45, 5), rng.integers(0, 39, 5)] = [7, -7, 1, INT32.max, INT32.min]
    for level in ("block", "thread"):
        got = run_reduction(level, target, kind, "i32", axis, x, waves=4, spread=True)
        check_against_numpy(kind, x, axis, got)


NAN_LINES = """
kernel lines(X: f32[M, N], out R: f32[{out}])
  const {whole}
  grid (cdiv({out}, 32)) as (b)
  block 4 waves
{{
  x = X[{index}] @ blocked(spt=[1, 1], order=[1, 0], waves={waves})
  R[b*32 : +32] <- {kind}(x, axis={axis})
}}
"""


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("axis", [0, 1])
def test_max_and_min_ignore_nan(level: str, target: str | None, kind: str, axis: int) -> None:
    """maxNum/minNum at every level, as the GPUs' max/min instructions (``llvm.maxnum``): a NaN
    element is ignored, and only a line of NaNs gives NaN, also where the line is spread over
    lanes and waves (which combine from NaN, the identity of maxNum, not from -inf)."""
    x = random_input("f32", 64, 64, np.random.default_rng(4), nans=True)
    x[5, :] = np.nan
    x[:, 6] = np.nan
    x = x[:45] if axis == 1 else x[:, :45]       # the reduced dim whole, the other not a multiple of 32
    src = NAN_LINES.format(out="M" if axis == 1 else "N", whole="N" if axis == 1 else "M", kind=kind, axis=axis,
                           index="b*32 : +32, :" if axis == 1 else ":, b*32 : +32",
                           waves=[1, 4] if axis == 1 else [4, 1])
    prog = tiledsl.load(src, params={"N" if axis == 1 else "M": 64})
    got = np.zeros(45, np.float32)
    assert prog.interpret(level=level, target=target, X=x, R=got).ok
    check_against_numpy(kind, x, axis, got)
    assert np.isnan(got).sum() == 1


BOTTOM_K = """
# The K smallest values of each row, ascending: K rounds of "take the row minimum, then
# knock it out" (top-k of -X).
kernel bottomk(X: f32[M, N], out T: f32[M, K])
  const K
  param BM = 16, BN = 64
  grid (cdiv(M, BM)) as (bm)
  block 2 waves
{
  x = X[bm*BM : +BM, 0 : +BN] pad inf
  for i in 0 .. K {
    m = rowmin(x)
    T[bm*BM : +BM, i] <- m
    x = where(x == m[:, _], inf, x)
  }
}
"""


@pytest.mark.parametrize("spelling", ["rowmin(x)", "min(x, axis=1)"])
@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_bottom_k_with_min_gives_the_numpy_answer(level: str, target: str | None, spelling: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 50)).astype(np.float32)
    prog = tiledsl.load(BOTTOM_K.replace("rowmin(x)", spelling), params={"K": 5})
    out = np.full((37, 5), np.nan, np.float32)
    assert prog.interpret(level=level, target=target, X=x, T=out).ok
    assert np.array_equal(out, np.sort(x, axis=1)[:, :5])
