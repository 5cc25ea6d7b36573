"""The numeric semantics of tile IR values, in NumPy — the living definition that
the interpreters and constant folding share.

Storage: f16, bf16 and f32 values are float32 arrays holding values already rounded
to their dtype; i32 is int32 (wrapping); i1 is bool. Every op computes in f32 (exact
for one f16/bf16 operation, then rounded once) and rounds its result to its dtype.

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

import numpy as np

STORAGE = {"f16": np.float32, "bf16": np.float32, "f32": np.float32, "i32": np.int32, "i1": np.bool_}


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


def round_to(x: Any, dtype: str) -> np.ndarray:
    """``x`` in the storage of ``dtype``, rounded as a store of that dtype rounds."""
    x = np.asarray(x)
    if dtype == "f16":
        return round_f16(x)
    if dtype == "bf16":
        return round_bf16(x.astype(np.float32))
    if dtype == "f32":
        return x.astype(np.float32, copy=False)
    if dtype == "i32":
        if x.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                t = np.trunc(np.nan_to_num(x.astype(np.float64), nan=0.0))
            return np.clip(t, -2**31, 2**31 - 1).astype(np.int32)
        return x.astype(np.int32)
    if dtype == "i1":
        return x.astype(np.bool_)
    raise ValueError(f"unknown dtype {dtype}")


def to_storage(x: Any, dtype: str) -> np.ndarray:
    return round_to(x, dtype)


def to_python(x: np.ndarray, dtype: str) -> int | float | bool:
    v = np.asarray(x).reshape(())[()]
    if dtype == "i1":
        return bool(v)
    if dtype == "i32":
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
}


def reduce(kind: str, x: np.ndarray, axis: int, dtype: str) -> np.ndarray:
    """Reduce ``x`` (storage of ``dtype``) along ``axis``: ``sum`` accumulates in f32 (i32
    wrapping) and rounds once; ``max``/``min`` are maxNum/minNum (see the module docstring)."""
    if kind == "sum":
        acc = np.sum(x, axis=axis, dtype=np.int32 if dtype == "i32" else np.float32)
    elif kind in ("max", "min"):
        acc = (np.fmax if kind == "max" else np.fmin).reduce(x, axis=axis)
    else:
        raise NotImplementedError(f"reduction kind '{kind}'")
    return round_to(acc, dtype)


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
