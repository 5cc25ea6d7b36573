"""The numeric semantics of tile IR values, in NumPy — the living definition that
the interpreters and constant folding share.

Storage: f16, bf16, f32 and the fp8 dtypes are float32 arrays holding values already rounded
to their dtype; integers are NumPy integers of their width and signedness (i8 int8, u8 uint8,
i16 int16, i32 int32, u32 uint32, i64 int64), wrapping; i1 is bool. Every float op computes in f32
(exact for one f16/bf16/fp8 operation, then rounded once) and rounds its result to its dtype.

Conversions (``round_to``, which ``cast`` is), the same at every level:

- to f16/bf16/f32: round to nearest even (f16 overflows to inf); from an integer through f32.
- to f8e4m3/f8e5m2: round to nearest even and *saturate*: a finite value beyond the largest
  finite one (448 for e4m3, 57344 for e5m2) and ±inf become ±that value, NaN stays NaN (what
  NVIDIA's ``cvt.rn.satfinite`` does, and the OCP spec's saturating mode for finite values). So
  no conversion makes an e5m2 infinity; one read from memory stays infinite.
- float to integer: truncate toward zero and saturate to the dtype's range (NaN is 0), as
  NVIDIA's ``cvt.rzi.sat`` and LLVM's ``fptosi.sat``/``fptoui.sat``.
- integer to integer: wrap (two's complement, the low bits); to i1: non-zero is true.

NaN is NaN: its bit pattern (sign, payload) is not specified, and the levels may differ in it.

Float ``max``/``min`` (element-wise and reductions) are IEEE 754-2008 maxNum/minNum: a NaN
operand is ignored, ``max(NaN, x) = x``, and a reduction is NaN only when every element is.
That is what the GPUs' max/min instructions do (``llvm.maxnum``/``minnum``, the lowering's
choice), so the interpreters and native code agree; NumPy's ``np.maximum`` would propagate
the NaN instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from tiledsl.ir.types import DTYPE_BYTES, FP8_DTYPES, INT_BITS, INT_DTYPES, UNSIGNED_DTYPES

STORAGE = {"f16": np.float32, "bf16": np.float32, "f32": np.float32, "i32": np.int32, "i1": np.bool_,
           "f8e4m3": np.float32, "f8e5m2": np.float32, "i8": np.int8, "u8": np.uint8, "i16": np.int16,
           "u32": np.uint32, "i64": np.int64}
#: The fp8 dtypes as ml_dtypes types, and their largest finite values.
FP8_TYPES = {"f8e4m3": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2}
FP8_MAX = {"f8e4m3": 448.0, "f8e5m2": 57344.0}
_UNSIGNED_OF = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
#: ml_dtypes' float types (NumPy sees most of them as void): converted to integers as floats.
_ML_FLOAT_NAMES = ("bfloat16", *(np.dtype(t).name for t in FP8_TYPES.values()))


def round_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    nan = np.isnan(x)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    out = rounded.view(np.float32).copy()
    out[nan] = np.nan
    return out


def round_f16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest float16 (ties to even), kept as float32.

    Integer arithmetic on the f32 bits rounds the normal f16 range (3x faster than a
    float16 round trip); the subnormal range is rounded to multiples of 2^-24 with rint
    (exact: scaling by a power of two); overflow gives inf and NaN stays NaN.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    out = ((bits + np.uint32(0xFFF) + ((bits >> 13) & np.uint32(1))) & np.uint32(0xFFFFE000)).view(np.float32)
    a = np.abs(x)
    with np.errstate(over="ignore", invalid="ignore"):
        tiny = a < 2.0 ** -14
        if tiny.any():
            out = np.where(tiny, np.rint(x * np.float32(2.0 ** 24)) * np.float32(2.0 ** -24), out)
        big = ~(a < 65520.0)
        if big.any():
            out = np.where(big, np.where(np.isnan(x), x, np.copysign(np.float32(np.inf), x)), out)
    return out


def round_fp8(x: Any, dtype: str) -> np.ndarray:
    """Round float32 values to ``dtype`` (f8e4m3 or f8e5m2), kept as float32: to nearest even,
    saturating at ±``FP8_MAX`` (±inf too), NaN stays NaN (see the module docstring).

    Clipping first and then rounding with ml_dtypes (whose own overflow gives NaN or inf) is the
    same as rounding and then saturating, since rounding is monotonic and the limit is exact."""
    top = np.float32(FP8_MAX[dtype])
    x = np.asarray(x, dtype=np.float32)
    return np.clip(x, -top, top).astype(FP8_TYPES[dtype]).astype(np.float32)


def _float_to_int(x: np.ndarray, dtype: str) -> np.ndarray:
    """Truncate toward zero, NaN → 0, saturate to the range of the integer ``dtype``."""
    storage = STORAGE[dtype]
    info = np.iinfo(storage)
    with np.errstate(invalid="ignore"):
        t = np.trunc(np.nan_to_num(x.astype(np.float64), nan=0.0))
    # The limits as floats (2^63 for i64's 2^63-1: the comparison is still right, since no float
    # lies strictly between them); the in-range values convert exactly.
    big, small = t >= float(info.max), t <= float(info.min)
    inside = np.where(big | small, 0.0, t).astype(storage)
    return np.where(big, info.max, np.where(small, info.min, inside)).astype(storage)


def round_to(x: Any, dtype: str) -> np.ndarray:
    """``x`` in the storage of ``dtype``, rounded as a store of that dtype rounds (the conversion
    rules of the module docstring)."""
    x = np.asarray(x)
    if dtype == "f16":
        return round_f16(x)
    if dtype == "bf16":
        return round_bf16(x.astype(np.float32))
    if dtype == "f32":
        return x.astype(np.float32, copy=False)
    if dtype in FP8_DTYPES:
        return round_fp8(x, dtype)
    if dtype in INT_DTYPES:
        if x.dtype.kind == "f" or x.dtype.name in _ML_FLOAT_NAMES:
            return _float_to_int(x, dtype)
        return x.astype(STORAGE[dtype])
    if dtype == "i1":
        return x.astype(np.bool_)
    raise ValueError(f"unknown dtype {dtype}")


def as_stored(x: Any, dtype: str) -> np.ndarray:
    """Values that are of ``dtype`` already (a tile stored to a tensor of its dtype), in its storage,
    unchanged. ``round_to`` would do for every dtype but fp8: a conversion to e5m2 saturates, and
    moving a value (a load, a store, a copy) must leave an e5m2 infinity infinite."""
    if dtype in FP8_DTYPES:
        return np.asarray(x, dtype=np.float32)
    return round_to(x, dtype)


def to_bits(x: Any, dtype: str) -> np.ndarray:
    """The bit patterns of ``x`` (storage of ``dtype``), as unsigned integers of its width."""
    x = np.asarray(x)
    if dtype in FP8_DTYPES:
        return x.astype(np.float32).astype(FP8_TYPES[dtype]).view(np.uint8)
    if dtype == "f16":
        return x.astype(np.float16).view(np.uint16)
    if dtype == "bf16":
        return (np.ascontiguousarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    if dtype == "f32":
        return np.ascontiguousarray(x, np.float32).view(np.uint32)
    if dtype in INT_DTYPES:
        return x.astype(STORAGE[dtype]).astype(_UNSIGNED_OF[DTYPE_BYTES[dtype]])
    raise ValueError(f"no bit pattern for dtype {dtype}")


def from_bits(bits: Any, dtype: str) -> np.ndarray:
    """Values of ``dtype`` (in its storage) from their bit patterns (``to_bits``' inverse)."""
    bits = np.ascontiguousarray(bits).astype(_UNSIGNED_OF[DTYPE_BYTES[dtype]])
    if dtype in FP8_DTYPES:
        return bits.view(FP8_TYPES[dtype]).astype(np.float32)
    if dtype == "f16":
        return bits.view(np.float16).astype(np.float32)
    if dtype == "bf16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if dtype == "f32":
        return bits.view(np.float32)
    if dtype in INT_DTYPES:
        return bits.view(STORAGE[dtype])
    raise ValueError(f"no bit pattern for dtype {dtype}")


def to_storage(x: Any, dtype: str) -> np.ndarray:
    return round_to(x, dtype)


def to_python(x: np.ndarray, dtype: str) -> int | float | bool:
    v = np.asarray(x).reshape(())[()]
    if dtype == "i1":
        return bool(v)
    if dtype in INT_DTYPES:
        return int(v)
    return float(v)


def _float(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def run(op: Any, *args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return round_to(fn(*args), op.results[0].type.dtype)
    return run


def _same(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """An op whose result has the operands' dtype: round floats, keep ints."""
    def run(op: Any, *args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return round_to(fn(*args), op.results[0].type.dtype)
    return run


def _floordiv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.floor_divide(a, safe))


def _mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.mod(a, safe))


def _unsigned(a: np.ndarray) -> np.ndarray:
    """An integer array's bits as the unsigned integers of its width (wrapping)."""
    return a.astype(_UNSIGNED_OF[a.dtype.itemsize])


def shift_left(a: np.ndarray, n: np.ndarray, dtype: str) -> np.ndarray:
    """``a << n`` in ``dtype``: a count outside [0, width) (read as unsigned) shifts every bit out,
    giving 0."""
    bits = INT_BITS[dtype]
    a, n = np.asarray(a, STORAGE[dtype]), np.asarray(n, STORAGE[dtype])
    inside = _unsigned(n) < bits
    shifted = np.left_shift(_unsigned(a), _unsigned(np.where(inside, n, 0)))
    return np.where(inside, shifted, 0).astype(STORAGE[dtype])


def shift_right(a: np.ndarray, n: np.ndarray, dtype: str) -> np.ndarray:
    """``a >> n`` in ``dtype``: arithmetic for signed dtypes (a count outside [0, width) fills every
    bit with the sign), logical for unsigned ones (such a count gives 0)."""
    bits = INT_BITS[dtype]
    a, n = np.asarray(a, STORAGE[dtype]), np.asarray(n, STORAGE[dtype])
    count = _unsigned(n)
    if dtype in UNSIGNED_DTYPES:
        inside = count < bits
        return np.where(inside, np.right_shift(a, np.where(inside, n, 0).astype(a.dtype)), 0).astype(a.dtype)
    return np.right_shift(a, np.minimum(count, bits - 1).astype(a.dtype))


def wrap_int(value: int, dtype: str) -> int:
    """A Python integer wrapped to the integer ``dtype`` (two's complement: its low bits)."""
    bits = INT_BITS[dtype]
    v = value % (1 << bits)
    return v - (1 << bits) if dtype not in UNSIGNED_DTYPES and v >= 1 << (bits - 1) else v


def _bitcast(op: Any, a: np.ndarray) -> np.ndarray:
    return from_bits(to_bits(a, op.operands[0].type.dtype), op.results[0].type.dtype)


ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "add": _same(np.add), "sub": _same(np.subtract), "mul": _same(np.multiply),
    "div": _float(np.divide), "floordiv": _same(_floordiv), "mod": _same(_mod),
    "max": _same(np.fmax), "min": _same(np.fmin),
    "and": lambda op, a, b: np.logical_and(a, b), "or": lambda op, a, b: np.logical_or(a, b),
    "not": lambda op, a: np.logical_not(a),
    "lt": lambda op, a, b: a < b, "le": lambda op, a, b: a <= b, "gt": lambda op, a, b: a > b,
    "ge": lambda op, a, b: a >= b, "eq": lambda op, a, b: a == b, "ne": lambda op, a, b: a != b,
    "neg": _same(np.negative), "abs": _same(np.abs),
    "exp": _float(np.exp), "exp2": _float(np.exp2), "sqrt": _float(np.sqrt),
    "rsqrt": _float(lambda x: 1.0 / np.sqrt(x)), "log2": _float(np.log2),
    "select": lambda op, c, a, b: np.where(c, a, b),
    "cast": lambda op, a: round_to(a, op.results[0].type.dtype),
    "bitand": lambda op, a, b: np.bitwise_and(a, b), "bitor": lambda op, a, b: np.bitwise_or(a, b),
    "bitxor": lambda op, a, b: np.bitwise_xor(a, b), "bitnot": lambda op, a: np.invert(a),
    "shl": lambda op, a, n: shift_left(a, n, op.results[0].type.dtype),
    "shr": lambda op, a, n: shift_right(a, n, op.results[0].type.dtype), "bitcast": _bitcast,
}


def reduce(kind: str, x: np.ndarray, axis: int, dtype: str) -> np.ndarray:
    """Reduce ``x`` (storage of ``dtype``) along ``axis``: ``sum`` accumulates floats in f32 and
    rounds once, integers in their own width (wrapping: exact modulo 2^width in any order);
    ``max``/``min`` are maxNum/minNum (see the module docstring)."""
    if kind == "sum":
        acc = np.sum(x, axis=axis, dtype=STORAGE[dtype] if dtype in INT_DTYPES else np.float32)
    elif kind in ("max", "min"):
        acc = (np.fmax if kind == "max" else np.fmin).reduce(x, axis=axis)
    else:
        raise NotImplementedError(f"reduction kind '{kind}'")
    return round_to(acc, dtype)


#: How an atomic of each kind combines the old element with the operand (``AtomicOp.kind``): float
#: max/min are maxNum/minNum, as everywhere else; i32 add wraps.
ATOMIC_COMBINE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add, "max": np.fmax, "min": np.fmin}


def atomic_update(flat: np.ndarray, where: np.ndarray, values: np.ndarray, kind: str, dtype: str) -> np.ndarray:
    """Apply one atomic per entry of ``where``/``values`` to the storage ``flat`` of a ``dtype``
    tensor, one after another in the order given (a position named twice is updated twice, the
    second time on the first's result), each result rounded to ``dtype`` as its store rounds it.
    Returns what each update found: the old values of that serialisation.

    Updates of distinct positions are independent, so they run in rounds: round r applies, at once,
    the r-th update of every position."""
    where = np.asarray(where, dtype=np.int64).reshape(-1)
    values = np.asarray(values).reshape(-1)
    old = np.empty(where.shape, dtype=flat.dtype)
    n = where.size
    if n == 0:
        return old
    order = np.argsort(where, kind="stable")
    ordered = where[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    by_round = np.argsort(rank, kind="stable")
    combine = ATOMIC_COMBINE[kind]
    for sel in np.split(by_round, np.cumsum(np.bincount(rank))[:-1]):
        pos = where[sel]
        before = flat[pos]
        old[sel] = before
        with np.errstate(all="ignore"):
            flat[pos] = round_to(combine(before, values[sel]), dtype)
    return old


# ---------------------------------------------------------------- math functions
#
# ``MATH64``: the float64 function that defines each math op. An op computes it on its operands (f32
# storage, so f16/bf16 values are exact) in float64 and rounds the result to its dtype, through f32
# as every f16/bf16 op does: the results are the correctly rounded f32 values but for rare double
# roundings, whatever NumPy's own float32 kernels would give on this CPU. Sema folds compile-time
# operands with the same functions (unrounded: statics are float64). ``round`` is half to even
# (``np.rint``); ``pow`` follows C99 ``pow`` (``pow(x, 0) = 1`` even for NaN, ``pow(-8, 1/3)`` is
# NaN, ``pow(-2, 3) = -8``); ``log(0) = -inf`` and ``log(-1)`` is NaN, as in NumPy.

def _sigmoid64(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))          # in (0, 1]: neither form overflows
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


_erf64 = np.frompyfunc(math.erf, 1, 1)

MATH64: dict[str, Callable[..., np.ndarray]] = {
    "tanh": np.tanh, "sigmoid": _sigmoid64, "erf": lambda x: np.asarray(_erf64(x), np.float64),
    "log": np.log, "log1p": np.log1p, "sin": np.sin, "cos": np.cos,
    "floor": np.floor, "ceil": np.ceil, "round": np.rint, "pow": np.power,
}


def _math(name: str) -> Callable[..., np.ndarray]:
    fn = MATH64[name]

    def run(op: Any, *args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return round_to(fn(*(np.asarray(a, np.float64) for a in args)), op.results[0].type.dtype)
    return run


def _clamp(op: Any, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``min(max(x, lo), hi)`` with the maxNum/minNum of ``max``/``min`` (a NaN bound is ignored),
    except that a NaN ``x`` stays NaN, as in ``np.clip``; ``lo > hi`` gives ``hi``."""
    r = np.fmin(np.fmax(x, lo), hi)
    if r.dtype.kind == "f":
        r = np.where(np.isnan(x), x, r)
    return round_to(r, op.results[0].type.dtype)


ELEMENTWISE.update({name: _math(name) for name in MATH64})
ELEMENTWISE.update({
    "isnan": lambda op, a: np.isnan(a), "isinf": lambda op, a: np.isinf(a),
    "clamp": _clamp,
})


# ---------------------------------------------------------------- arg-reductions and scans

def arg_reduce(kind: str, x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, i32 indices) of ``argmax``/``argmin`` along ``axis`` of ``x`` (storage): the first
    index of the line's largest (smallest) element. A NaN is ignored, as ``max``/``min`` ignore it
    (unlike ``np.argmax``, which returns the first NaN); a line of NaNs gives index 0."""
    pick = np.argmax if kind == "argmax" else np.argmin
    if x.dtype.kind == "f":
        real = ~np.isnan(x)
        far = -np.inf if kind == "argmax" else np.inf
        best = (np.max if kind == "argmax" else np.min)(np.where(real, x, far), axis=axis, keepdims=True)
        idx = np.argmax(real & (x == best), axis=axis)    # the first position holding it; 0 if none
    else:
        idx = pick(x, axis=axis)
    values = np.take_along_axis(x, np.expand_dims(idx, axis), axis=axis).squeeze(axis)
    return values, idx.astype(np.int32)


def scan(kind: str, x: np.ndarray, axis: int, dtype: str) -> np.ndarray:
    """The inclusive scan of ``x`` (storage of ``dtype``) along ``axis``: ``sum`` accumulates in f32
    (i32 wrapping) and rounds each element once."""
    if kind != "sum":
        raise NotImplementedError(f"scan kind '{kind}'")
    acc = np.float32 if x.dtype.kind == "f" else STORAGE[dtype]
    return round_to(np.cumsum(x, axis=axis, dtype=acc), dtype)


def arg_better(kind: str, v1: np.ndarray, i1: np.ndarray, v2: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """Where ``kind`` (``argmax``/``argmin``) picks the pair (v2, i2) over (v1, i1): the larger
    (smaller) value, a NaN losing to any other value, equal values and two NaNs going to the smaller
    index. ``arg_reduce`` is the reduction of this order; the distributed code combines with it."""
    v1, v2 = np.asarray(v1), np.asarray(v2)
    with np.errstate(invalid="ignore"):
        strict = v2 > v1 if kind == "argmax" else v2 < v1
        tie = v2 == v1
    if v1.dtype.kind != "f":
        return strict | (tie & (i2 < i1))
    nan1, nan2 = np.isnan(v1), np.isnan(v2)
    return (~nan2 & (nan1 | strict)) | ((tie | (nan1 & nan2)) & (i2 < i1))
