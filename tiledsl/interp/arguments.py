"""The Python arguments of ``program.interpret``: checked against the parameters, put into the
interpreters' storage, and the results written back into the caller's ``out`` arrays.

Every mistake raises :class:`tiledsl.ArgumentError` naming the parameter; nothing is converted
silently (``None``, a string or a complex number is not a float; a float with a fraction is not
an i32). The rules are listed in ``Program.interpret``'s docstring.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError
from tiledsl.frontend import ast
from tiledsl.interp.block import GlobalTensor
from tiledsl.interp.numerics import FP8_TYPES, STORAGE, round_to
from tiledsl.ir.types import INT_DTYPES, int_range


def _is_ml_float(dtype: np.dtype) -> bool:
    """ml_dtypes' floats (bfloat16, float8_e4m3fn, ...): most of them a void kind to NumPy."""
    return dtype.type.__module__ == "ml_dtypes" and dtype.name.startswith(("bfloat", "float"))


def _array_kind(dtype: np.dtype) -> str:
    """'f' for any float dtype (ml_dtypes' included), 'i' for signed and unsigned integers."""
    if dtype.kind == "f" or _is_ml_float(dtype):
        return "f"
    if dtype.kind in "iu":
        return "i"
    return dtype.kind


def tensor_storage(p: ast.TensorParam, arr: Any) -> GlobalTensor:
    """The interpreters' copy of a tensor argument: C-ordered storage of ``p``'s dtype whatever
    the memory order or strides of ``arr`` (writes go through flat indices), never a view of
    ``arr`` (an ``out`` array is written only by :func:`write_back`, after the run)."""
    if not isinstance(arr, np.ndarray):
        raise ArgumentError(f"'{p.name}' must be a NumPy array, got {type(arr).__name__}")
    want = "i" if p.dtype in INT_DTYPES else "f"
    if _array_kind(arr.dtype) != want:
        kind = "an integer" if want == "i" else "a floating-point"
        raise ArgumentError(f"'{p.name}' is {p.dtype}: it needs {kind} array, got {arr.dtype}")
    if p.out and not arr.flags.writeable:
        raise ArgumentError(f"out array '{p.name}' is read-only")
    if want == "i" and arr.size and not np.can_cast(arr.dtype, STORAGE[p.dtype]):
        lo, hi = int(arr.min()), int(arr.max())
        low, high = int_range(p.dtype)
        if lo < low or hi > high:
            raise ArgumentError(f"'{p.name}' is {p.dtype} but holds {lo if lo < low else hi}, outside "
                                f"[{low}, {high}]")
    if arr.dtype == np.float16 and p.dtype == "f16" or p.dtype in FP8_TYPES and arr.dtype == FP8_TYPES[p.dtype]:
        # Exact, and no rounding needed (a conversion to e5m2 would saturate its infinities).
        data = np.array(arr, dtype=np.float32, order="C")
    else:
        with np.errstate(over="ignore"):
            stored = round_to(np.asarray(arr, dtype=np.float32 if _is_ml_float(arr.dtype) else None), p.dtype)
        data = np.array(stored, dtype=STORAGE[p.dtype], order="C")   # a copy: the caller's array stays as it is
    counts = np.zeros(arr.shape, dtype=np.int32) if p.out else None
    return GlobalTensor(p.name, data, p.dtype, counts)


def write_back(out: np.ndarray, tensor: GlobalTensor) -> None:
    """Copy an out tensor's result into the caller's array, whatever its order or strides."""
    out[...] = tensor.data


def scalar_value(p: ast.ScalarParam, v: Any) -> Any:
    """A scalar argument as the interpreters hold it: rounded to ``p``'s dtype."""
    where = f"'{p.name}' is a scalar {p.dtype} parameter"
    if isinstance(v, np.ndarray):
        if v.ndim != 0:
            raise ArgumentError(f"{where}: give a number, not an array of shape {v.shape}")
        v = v[()]
    if v is None or isinstance(v, (str, bytes)):
        raise ArgumentError(f"{where}: give a number, not {v!r}")
    is_bool = isinstance(v, (bool, np.bool_))
    if p.dtype == "i1":
        if not is_bool:
            raise ArgumentError(f"{where}: give True or False, not {type(v).__name__} {v!r}")
        return np.bool_(v)
    if is_bool:
        raise ArgumentError(f"{where}: give a number, not the bool {v}")
    if isinstance(v, (complex, np.complexfloating)):
        raise ArgumentError(f"{where}: give a real number, not the complex {v}")
    real = isinstance(v, (int, float, np.integer, np.floating)) or _is_ml_float(np.asarray(v).dtype)
    if not real:
        raise ArgumentError(f"{where}: give a number, not {type(v).__name__}")
    if p.dtype not in INT_DTYPES:
        try:
            x = float(v)
        except OverflowError:
            raise ArgumentError(f"{where}: the integer given is too large for a float") from None
        with np.errstate(over="ignore"):         # beyond the dtype's range: ±inf, as a store rounds
            return round_to(np.asarray(x, dtype=np.float64), p.dtype)[()]
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        what = "a fraction" if math.isfinite(float(v)) else "no integer value"
        raise ArgumentError(f"{where}: {v} has {what}")
    n = int(v)
    low, high = int_range(p.dtype)
    if not low <= n <= high:
        raise ArgumentError(f"{where}: {n} is outside [{low}, {high}]")
    return STORAGE[p.dtype](n)
