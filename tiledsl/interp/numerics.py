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

from collections.abc import Callable
from typing import Any

import numpy as np

STORAGE = {"f16": np.float32, "bf16": np.float32, "f32": np.float32, "i32": np.int32, "i1": np.bool_}


def round_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    shape = np.shape(x)        # ascontiguousarray makes a 0-d array 1-d: keep scalars scalar
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    nan = np.isnan(x)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    out = rounded.view(np.float32).copy()
    out[nan] = np.nan
    return out.reshape(shape)


def round_f16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest float16 (ties to even), kept as float32.

    Integer arithmetic on the f32 bits rounds the normal f16 range (3x faster than a
    float16 round trip); the subnormal range is rounded to multiples of 2^-24 with rint
    (exact: scaling by a power of two); overflow gives inf and NaN stays NaN.
    """
    shape = np.shape(x)        # ascontiguousarray makes a 0-d array 1-d: keep scalars scalar
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
    return out.reshape(shape)


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
