"""The numeric definition of the interpreters: f16/bf16 rounding of f32 values (every
bit pattern: NaN, inf, subnormals, ±0, overflow) and f32 accumulation in ``dot``."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_bf16, round_f16, round_to

F32_BITS = st.integers(0, 2**32 - 1)
# Patterns near the interesting edges: the f16 normal/subnormal border, the f16 overflow
# threshold (65520), bf16 halfway points, the f32 maximum, NaNs with payloads.
EDGES = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF,
         0x00000001, 0x807FFFFF, 0x38800000, 0x387FFFFF, 0x33800000, 0x33000000, 0x33000001, 0x477FE000,
         0x477FEFFF, 0x477FF000, 0x477FF001, 0xC77FF000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF,
         0x3F808000, 0x3F818000, 0x3F808001, 0x3F800FFF, 0x3F801000, 0x3F803000, 0x00008000, 0x00018000]


def from_bits(bits: list[int]) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def to_bits(x: np.ndarray) -> list[int]:
    return [int(b) for b in np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)]


def f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def bf16_reference(bits: int) -> float:
    """Round the f32 with these bits to bfloat16, nearest with ties to even, written out
    by comparing distances to the two neighbouring bf16 values (exact in float64)."""
    x = f32(bits)
    if math.isnan(x) or math.isinf(x):
        return x
    lo = bits & 0xFFFF0000
    hi = lo + 0x10000
    lo_v = f32(lo)
    # One step past the largest bf16 lands on the inf pattern: measure against 2**128.
    hi_inf = (hi >> 23) & 0xFF == 0xFF
    hi_v = math.copysign(2.0**128, x) if hi_inf else f32(hi)
    d_lo, d_hi = abs(x - lo_v), abs(hi_v - x)
    if d_lo < d_hi or (d_lo == d_hi and (lo >> 16) & 1 == 0):
        return lo_v
    return math.copysign(math.inf, x) if hi_inf else hi_v


def assert_same_floats(got: np.ndarray, want: np.ndarray, bits: list[int]) -> None:
    for g, w, b in zip(to_bits(got), to_bits(want), bits, strict=True):
        if math.isnan(f32(w)):
            assert math.isnan(f32(g)), f"{b:#010x}: NaN became {f32(g)!r}"
        else:
            assert g == w, f"{b:#010x} ({f32(b)!r}): got {f32(g)!r} ({g:#010x}), want {f32(w)!r} ({w:#010x})"


@settings(max_examples=300, deadline=None)
@given(st.lists(F32_BITS, min_size=1, max_size=64))
@example(EDGES)
def test_round_f16_matches_numpy(bits: list[int]) -> None:
    x = from_bits(bits)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    assert_same_floats(round_f16(x), want, bits)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-2**15, 2**15).map(lambda n: 0x38800000 + n), min_size=1, max_size=64))
def test_round_f16_near_the_subnormal_border(bits: list[int]) -> None:
    x = from_bits(bits)
    assert_same_floats(round_f16(x), x.astype(np.float16).astype(np.float32), bits)


@settings(max_examples=300, deadline=None)
@given(st.lists(F32_BITS, min_size=1, max_size=64))
@example(EDGES)
def test_round_bf16_matches_reference(bits: list[int]) -> None:
    want = np.asarray([bf16_reference(b) for b in bits], dtype=np.float32)
    assert_same_floats(round_bf16(from_bits(bits)), want, bits)


def test_bf16_reference_examples() -> None:
    """The reference itself, on values worked out by hand."""
    assert bf16_reference(0x3F808000) == 1.0                 # halfway, even neighbour below
    assert bf16_reference(0x3F818000) == f32(0x3F820000)     # halfway, even neighbour above
    assert bf16_reference(0x3F808001) == f32(0x3F810000)     # just past halfway
    assert bf16_reference(0x7F7FFFFF) == math.inf            # overflow
    assert bf16_reference(0x80000000) == 0.0 and math.copysign(1, bf16_reference(0x80000000)) == -1


def test_rounding_keeps_shape_and_storage_dtype() -> None:
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    for fn in (round_f16, round_bf16):
        y = fn(x)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.all(np.abs(y - x) <= np.abs(x) * 2.0**-8)
    np.testing.assert_array_equal(round_to(x, "f16"), x.astype(np.float16).astype(np.float32))


def test_rounding_keeps_a_scalar_a_scalar() -> None:
    for dtype in ("f16", "bf16"):
        y = round_to(np.asarray(1.0 + 2.0**-12), dtype)
        assert y.shape == () and float(y) == 1.0


SCALAR_IF = """\
kernel k(X: f32[N], out Y: f32[N], h: DT)
  grid (1) as (b)
  block 1 waves
{
  if h > 0.0 { Y[0 : +4] <- X[0 : +4] } else { Y[0 : +4] <- -X[0 : +4] }
}
"""


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("level", ["block", "thread"])
def test_an_f16_or_bf16_scalar_parameter_decides_an_if(dtype: str, level: str) -> None:
    """A 16-bit scalar argument was stored with a stray dim (a 0-d array rounded to f16 came
    back 1-d), so the block interpreter crashed on an ``if`` that tested it."""
    x = np.arange(4, dtype=np.float32)
    for h, want in ((0.5, x), (-0.5, -x)):
        y = np.zeros(4, np.float32)
        prog = tiledsl.load(SCALAR_IF.replace("DT", dtype))
        assert prog.interpret(level=level, X=x, Y=y, h=h).ok
        np.testing.assert_array_equal(y, want)


def test_round_to_i32_truncates_and_saturates() -> None:
    x = np.asarray([1.9, -1.9, np.nan, 3e9, -3e9], dtype=np.float32)
    assert round_to(x, "i32").tolist() == [1, -1, 0, 2**31 - 1, -2**31]


# ---------------------------------------------------------------- in a kernel

DOT = """\
kernel d(A: f16[M, K], B: f16[K, N], out C: f32[M, N])
  grid (1) as (b)
  block 4 waves
{
  C[0 : +16, 0 : +16] <- dot(A[0 : +16, 0 : +16], B[0 : +16, 0 : +16])
}
"""


def test_f16_dot_accumulates_in_f32() -> None:
    # Row 0 of A is 2048, 1, 1, ..., 1: in f32 the sum is 2048 + 15 = 2063 exactly; any f16
    # accumulation loses the ones (the f16 spacing at 2048 is 2).
    a = np.ones((16, 16), dtype=np.float16)
    a[:, 0] = 2048
    b = np.ones((16, 16), dtype=np.float16)
    c = np.zeros((16, 16), dtype=np.float32)
    report = tiledsl.load(DOT).interpret(A=a, B=b, C=c)
    assert report.ok, str(report)
    assert (c == 2063.0).all()
    f16_sum = np.float16(0)
    for v in a[0]:
        f16_sum = np.float16(f16_sum + v)
    assert f16_sum != 2063.0            # the test would catch f16 accumulation


ADD = """\
kernel add(A: f16[N], B: f16[N], out C: f32[N])
  grid (1) as (b)
  block 1 waves
{
  C[0 : +4] <- EXPR
}
"""


def test_f16_elementwise_rounds_each_result() -> None:
    a = np.full(4, 2048, dtype=np.float16)
    b = np.ones(4, dtype=np.float16)
    c16, c32 = np.zeros(4, np.float32), np.zeros(4, np.float32)
    assert tiledsl.load(ADD.replace("EXPR", "f32(A[0 : +4] + B[0 : +4])")).interpret(A=a, B=b, C=c16).ok
    assert tiledsl.load(ADD.replace("EXPR", "f32(A[0 : +4]) + f32(B[0 : +4])")).interpret(A=a, B=b, C=c32).ok
    assert (c16 == 2048.0).all()        # 2049 is not an f16: ties to even
    assert (c32 == 2049.0).all()


def test_f16_inputs_given_as_f32_are_rounded_on_the_way_in() -> None:
    a = np.full(4, 1 + 2.0**-12, dtype=np.float32)      # not an f16 value: rounds to 1.0
    b = np.zeros(4, dtype=np.float32)
    c = np.zeros(4, np.float32)
    assert tiledsl.load(ADD.replace("EXPR", "f32(A[0 : +4] + B[0 : +4])")).interpret(A=a, B=b, C=c).ok
    assert (c == 1.0).all()
