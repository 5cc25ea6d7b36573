"""The numerics of the fp8 and small/wide integer dtypes (``tiledsl.interp.numerics``, which every
interpreter and constant folding use) against ml_dtypes and Python integers: fp8 ↔ f32 exactly,
over all 256 bit patterns of each format; conversions between every pair of dtypes (hypothesis,
NaN, infinities, subnormals and out-of-range values included); shifts; and the arguments
``interpret`` takes for them."""

from __future__ import annotations

import math
import re

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl import ArgumentError
from tiledsl.interp.numerics import (
    FP8_MAX,
    FP8_TYPES,
    STORAGE,
    from_bits,
    round_to,
    shift_left,
    shift_right,
    to_bits,
    wrap_int,
)
from tiledsl.ir.types import DTYPES, FP8_DTYPES, INT_BITS, INT_DTYPES, int_range

ALL_BITS = np.arange(256, dtype=np.uint8)
FLOAT_SOURCES = ("f16", "bf16", "f32", *FP8_DTYPES)
ML = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, **FP8_TYPES}


# ---------------------------------------------------------------- fp8 exactly

@pytest.mark.parametrize("dtype", FP8_DTYPES)
def test_every_fp8_pattern_reads_as_ml_dtypes_reads_it(dtype: str) -> None:
    got = from_bits(ALL_BITS, dtype)
    want = ALL_BITS.view(FP8_TYPES[dtype]).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)          # NaN == NaN, -0 has its sign bit
    assert np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype", FP8_DTYPES)
def test_every_fp8_value_round_trips_exactly(dtype: str) -> None:
    values = from_bits(ALL_BITS, dtype)
    finite = np.isfinite(values)
    again = round_to(values[finite], dtype)
    np.testing.assert_array_equal(again, values[finite])
    np.testing.assert_array_equal(to_bits(again, dtype), ALL_BITS[finite])
    assert np.isnan(round_to(values[np.isnan(values)], dtype)).all()


@pytest.mark.parametrize("dtype, top", [("f8e4m3", 448.0), ("f8e5m2", 57344.0)])
def test_conversions_to_fp8_saturate(dtype: str, top: float) -> None:
    x = np.array([np.inf, -np.inf, np.nan, top, top * 1.01, -top * 1.5, 1e30, 2.0 ** -20, -(2.0 ** -20)], np.float32)
    got = round_to(x, dtype)
    np.testing.assert_array_equal(got[:2], [top, -top])
    assert np.isnan(got[2])
    np.testing.assert_array_equal(got[3:7], [top, top, -top, top])
    assert got[7] == 0 and not np.signbit(got[7]) and got[8] == 0 and np.signbit(got[8])


def test_e4m3_rounds_to_nearest_even() -> None:
    # 1 + 1/16 is halfway between 1 and 1.125: to 1 (even mantissa); 1 + 3/16: to 1.25.
    x = np.array([1.0625, 1.1875, 464.0, 2.0 ** -10, 3 * 2.0 ** -10, 2.0 ** -10 + 2.0 ** -30], np.float32)
    np.testing.assert_array_equal(round_to(x, "f8e4m3"), [1.0, 1.25, 448.0, 0.0, 2.0 ** -8, 2.0 ** -9])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True), min_size=1,
                max_size=64), st.sampled_from(FP8_DTYPES))
def test_f32_to_fp8_is_clip_then_round_to_nearest_even(values: list[float], dtype: str) -> None:
    x = np.array(values, np.float32)
    want = np.clip(x, -FP8_MAX[dtype], FP8_MAX[dtype]).astype(FP8_TYPES[dtype]).astype(np.float32)
    np.testing.assert_array_equal(round_to(x, dtype), want)


# ---------------------------------------------------------------- every pair of dtypes

def _python_cast(v: float, src: str, dst: str) -> float | int | bool:
    """tiledsl's conversion of one value, with Python numbers and ml_dtypes only."""
    if dst == "i1":
        return bool(v != 0) or (isinstance(v, float) and math.isnan(v))
    if dst in INT_DTYPES:
        if src in INT_DTYPES:
            return wrap_python(int(v), dst)
        lo, hi = int_range(dst)
        if math.isnan(v):
            return 0
        if math.isinf(v):
            return hi if v > 0 else lo
        return max(lo, min(hi, math.trunc(v)))
    f = _int_to_f32(v) if src in INT_DTYPES else float(v)     # integers go through f32
    if dst in FP8_DTYPES:
        f = max(-FP8_MAX[dst], min(FP8_MAX[dst], f)) if not math.isnan(f) else f
    with np.errstate(over="ignore"):
        return float(np.array([f], np.float32).astype(ML[dst]).astype(np.float64)[0])


def _int_to_f32(v: int) -> float:
    """The f32 nearest to the integer ``v`` (ties to even), by integer arithmetic."""
    mag = abs(v)
    shift = max(0, mag.bit_length() - 24)
    q, r = divmod(mag, 1 << shift)
    half = (1 << shift) >> 1
    if shift and (r > half or r == half and q & 1):
        q += 1
    return math.copysign(float(q << shift), v) if v else 0.0


def wrap_python(v: int, dst: str) -> int:
    bits = INT_BITS[dst]
    v %= 1 << bits
    return v - (1 << bits) if dst[0] == "i" and v >= 1 << (bits - 1) else v


def _source_values(src: str) -> st.SearchStrategy:
    if src in INT_DTYPES:
        lo, hi = int_range(src)
        # Plus integers just off a tie of f32 rounding (2^62 + 2^38 + 1 rounds up, not to even).
        ties = st.builds(lambda e, s: s * ((1 << e) + (1 << (e - 24)) + 1), st.integers(25, INT_BITS[src] - 2),
                         st.sampled_from([1, -1] if src[0] == "i" else [1]))
        return st.one_of(st.integers(lo, hi), ties) if INT_BITS[src] > 25 else st.integers(lo, hi)
    return st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


SOURCES = [d for d in DTYPES if d != "i1"]


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(SOURCES), st.sampled_from(DTYPES))
def test_casts_between_every_pair_of_dtypes(data: st.DataObject, src: str, dst: str) -> None:
    values = data.draw(st.lists(_source_values(src), min_size=1, max_size=16))
    with np.errstate(over="ignore"):
        x = round_to(np.array(values, dtype=np.float64 if src not in INT_DTYPES else object).astype(
            np.float32 if src not in INT_DTYPES else STORAGE[src]), src)
    got = round_to(x, dst)
    assert got.dtype == STORAGE[dst]
    for v, g in zip(x.tolist(), got.tolist()):
        want = _python_cast(v, src, dst)
        assert (g == want) or (isinstance(want, float) and math.isnan(want) and math.isnan(g)), (v, g, want)


# ---------------------------------------------------------------- shifts

def _shift_reference(x: int, n: int, dtype: str, left: bool) -> int:
    """Shift one bit at a time, ``n`` (as unsigned) times."""
    width = INT_BITS[dtype]
    count = n % (1 << width)
    for _ in range(min(count, width + 1)):
        x = wrap_python(x << 1, dtype) if left else x >> 1        # Python's >> is arithmetic
    return x


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(INT_DTYPES), st.booleans())
def test_shifts_move_one_bit_a_step(data: st.DataObject, dtype: str, left: bool) -> None:
    lo, hi = int_range(dtype)
    x = data.draw(st.integers(lo, hi))
    n = data.draw(st.one_of(st.integers(0, INT_BITS[dtype] + 2), st.integers(lo, hi)))
    fn = shift_left if left else shift_right
    got = int(fn(np.asarray(x, STORAGE[dtype]), np.asarray(n, STORAGE[dtype]), dtype))
    assert got == _shift_reference(x, n, dtype, left)


@settings(max_examples=200, deadline=None)
@given(st.integers(-2**70, 2**70), st.sampled_from(INT_DTYPES))
def test_wrap_int_is_twos_complement(v: int, dtype: str) -> None:
    assert wrap_int(v, dtype) == wrap_python(v, dtype)
    assert int(np.array(wrap_int(v, dtype)).astype(STORAGE[dtype])) == wrap_int(v, dtype)


def test_an_i64_converts_to_f32_with_one_rounding() -> None:
    """Straight to f32, as LLVM's sitofp: through f64 first, 2^62 + 2^38 + 1 would tie and go to even."""
    x = np.array([2**62 + 2**38 + 1, -(2**62 + 2**38 + 1), 2**62 + 2**38], np.int64)
    np.testing.assert_array_equal(round_to(x, "f32"), [2.0**62 + 2.0**39, -(2.0**62 + 2.0**39), 2.0**62])


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "i1"])
def test_bits_round_trip(dtype: str) -> None:
    rng = np.random.default_rng(0)
    width = 8 * np.dtype(STORAGE[dtype]).itemsize if dtype in INT_DTYPES else {"f16": 16, "bf16": 16, "f32": 32}.get(
        dtype, 8)
    raw = rng.integers(0, 2**min(width, 63), 1000, dtype=np.uint64).astype({8: np.uint8, 16: np.uint16, 32: np.uint32,
                                                                           64: np.uint64}[width])
    values = from_bits(raw, dtype)
    keep = ~np.isnan(values) if dtype not in INT_DTYPES else np.ones(raw.shape, bool)
    np.testing.assert_array_equal(to_bits(values, dtype)[keep], raw[keep])


# ---------------------------------------------------------------- interpret's arguments

COPY = """
kernel copy(X: T[N], s: T, out Y: T[N])
  grid (cdiv(N, 64)) as (b)
  block 1 waves
{
  Y[b*64 : +64] <- max(X[b*64 : +64], s)
}
"""


def test_fp8_arrays_go_in_and_out_exactly_and_infinities_stay() -> None:
    prog = tiledsl.load(COPY.replace("T", "f8e5m2"))
    x = ALL_BITS.view(ml_dtypes.float8_e5m2).copy()
    y = np.zeros_like(x)
    assert prog.interpret(X=x, Y=y, s=-np.inf).ok
    # max(x, s) is an op: its result is rounded (saturating) to e5m2; -inf as s saturates too.
    xs = x.astype(np.float32)
    want = np.clip(np.fmax(xs, -57344.0), -57344.0, 57344.0).astype(ml_dtypes.float8_e5m2)
    np.testing.assert_array_equal(y.astype(np.float32), want.astype(np.float32))
    copy = tiledsl.load(COPY.replace("T", "f8e5m2").replace("max(X[b*64 : +64], s)", "X[b*64 : +64]"))
    assert copy.interpret(X=x, Y=y, s=0.0).ok
    np.testing.assert_array_equal(y.view(np.uint8)[~np.isnan(xs)], ALL_BITS[~np.isnan(xs)])   # inf stays inf


def test_float_arrays_for_fp8_parameters_are_rounded_as_a_cast() -> None:
    prog = tiledsl.load(COPY.replace("T", "f8e4m3"))
    x = np.array([1.0625, 1000.0, -np.inf, np.nan] * 16, np.float32)
    y = np.zeros(64, np.float32)
    assert prog.interpret(X=x, Y=y, s=-448.0).ok
    np.testing.assert_array_equal(y[:4], [1.0, 448.0, -448.0, -448.0])      # max(NaN, s) is s


@pytest.mark.parametrize("dtype, bad, fragment", [
    ("u8", np.array([256] * 64), "'X' is u8 but holds 256, outside [0, 255]"),
    ("i8", np.array([-129] * 64, np.int16), "'X' is i8 but holds -129, outside [-128, 127]"),
    ("u32", np.array([-1] * 64), "'X' is u32 but holds -1, outside [0, 4294967295]"),
    ("i64", np.full(64, 2**63, np.uint64), "'X' is i64 but holds 9223372036854775808"),
    ("i16", np.zeros(64, np.float32), "'X' is i16: it needs an integer array, got float32"),
    ("f8e4m3", np.zeros(64, np.int8), "'X' is f8e4m3: it needs a floating-point array, got int8"),
])
def test_integer_arrays_must_fit_their_dtype(dtype: str, bad: np.ndarray, fragment: str) -> None:
    prog = tiledsl.load(COPY.replace("T", dtype))
    with pytest.raises(ArgumentError, match=re.escape(fragment)):
        prog.interpret(X=bad, Y=np.zeros(64, STORAGE[dtype]), s=0)


@pytest.mark.parametrize("dtype, value, fragment", [
    ("u8", 256, "256 is outside [0, 255]"), ("i64", 2**63, "is outside [-9223372036854775808"),
    ("u32", -1, "-1 is outside [0, 4294967295]"), ("i8", 1.5, "1.5 has a fraction"),
])
def test_integer_scalars_must_fit_their_dtype(dtype: str, value: float, fragment: str) -> None:
    prog = tiledsl.load(COPY.replace("T", dtype))
    with pytest.raises(ArgumentError, match=re.escape(fragment)):
        prog.interpret(X=np.zeros(64, STORAGE[dtype]), Y=np.zeros(64, STORAGE[dtype]), s=value)


def test_i64_and_u32_scalars_keep_their_whole_range() -> None:
    for dtype, s in (("i64", -2**63), ("i64", 2**63 - 1), ("u32", 2**32 - 1)):
        prog = tiledsl.load(COPY.replace("T", dtype))
        x = np.zeros(64, STORAGE[dtype])
        y = np.zeros(64, STORAGE[dtype])
        for level, target in (("block", None), ("thread", "gfx942")):
            assert prog.interpret(level=level, target=target, X=x, Y=y, s=s).ok
            assert int(y[0]) == max(0, s)
