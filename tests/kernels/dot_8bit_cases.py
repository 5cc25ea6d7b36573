"""Inputs and float64/int64 references for ``tests/kernels/dot_8bit.tdsl`` (8-bit dots), shared by
the block-level, thread-level and GPU tests."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np

import tiledsl

KERNEL = Path(__file__).with_name("dot_8bit.tdsl")
#: operand dtype -> (NumPy dtype, accumulator dtype)
DTYPES = {"f8e4m3": (ml_dtypes.float8_e4m3fn, "f32"), "f8e5m2": (ml_dtypes.float8_e5m2, "f32"),
          "i8": (np.int8, "i32"), "u8": (np.uint8, "i32")}


def program(dtype: str, **params: int) -> tiledsl.Program:
    return tiledsl.load(KERNEL, params={"T": dtype, "R": DTYPES[dtype][1], **params})


def inputs(dtype: str, m: int, n: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A, B over the whole range of the dtype (fp8: every finite value is likely, up to the
    largest; integers: the extremes, so that i32 sums wrap at large K); C0 and C."""
    npt, acc = DTYPES[dtype]
    if acc == "i32":
        info = np.iinfo(npt)
        a = rng.integers(info.min, info.max + 1, (m, k)).astype(npt)
        b = rng.integers(info.min, info.max + 1, (k, n)).astype(npt)
        c0 = rng.integers(-2**31, 2**31, (m, n)).astype(np.int32)
        c = np.zeros((m, n), np.int32)
    else:
        # Random bit patterns, NaN and infinity replaced: every finite fp8 value (subnormals too).
        bits = rng.integers(0, 256, (m * k + k * n,)).astype(np.uint8).view(npt).astype(np.float32)
        bits[~np.isfinite(bits)] = 1.0
        a, b = bits[:m * k].reshape(m, k).astype(npt), bits[m * k:].reshape(k, n).astype(npt)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = np.full((m, n), np.nan, np.float32)
    return {"A": a, "B": b, "C0": c0, "C": c}


def reference(dtype: str, A: np.ndarray, B: np.ndarray, C0: np.ndarray, **_: object) -> np.ndarray:
    """Exact: float64 products and sums of the fp8 values (a K of a few hundred keeps float64
    exact), or int64 sums wrapped to i32."""
    if DTYPES[dtype][1] == "i32":
        s = A.astype(np.int64) @ B.astype(np.int64) + C0.astype(np.int64)
        return ((s + 2**31) % 2**32 - 2**31).astype(np.int32)
    return A.astype(np.float64) @ B.astype(np.float64) + C0.astype(np.float64)


def check(dtype: str, got: np.ndarray, want: np.ndarray) -> None:
    """i32: equal. f32: the f32 sum of exact products, within f32 rounding of the sum's terms."""
    if DTYPES[dtype][1] == "i32":
        np.testing.assert_array_equal(got, want)
        return
    assert np.isfinite(got).all()
    err = np.linalg.norm(got.astype(np.float64) - want) / max(np.linalg.norm(want), 1e-30)
    assert err < 1e-5, f"{dtype}: relative error {err:.3e}"
