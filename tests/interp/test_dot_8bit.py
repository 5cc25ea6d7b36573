"""``dot`` of fp8 (f32 accumulation) and i8/u8 (i32, wrapping) at block level against NumPy, at
hypothesis-drawn shapes that are not multiples of the tiles."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tiledsl.interp.numerics import dot


def _cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "kernels" / "dot_8bit_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_dot_8bit_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CASES = _cases()


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(sorted(CASES.DTYPES)), m=st.integers(1, 90), n=st.integers(1, 90),
       k=st.integers(1, 200), bk=st.sampled_from([16, 32, 64]), seed=st.integers(0, 2**16))
@example(dtype="i8", m=65, n=33, k=200, bk=64, seed=0)
@example(dtype="f8e5m2", m=1, n=1, k=1, bk=16, seed=1)
def test_block_level_matches_numpy(dtype: str, m: int, n: int, k: int, bk: int, seed: int) -> None:
    args = CASES.inputs(dtype, m, n, k, np.random.default_rng(seed))
    report = CASES.program(dtype, BK=bk).interpret(**args)
    assert report.ok, str(report)
    CASES.check(dtype, args["C"], CASES.reference(dtype, **args))


def test_i32_accumulation_wraps() -> None:
    a = np.full((1, 4), -128, np.int8)
    b = np.full((4, 1), -128, np.int8)
    acc = np.array([[2**31 - 2**16]], np.int32)    # + 4 * 2^14 = 2^31: wraps to -2^31
    assert dot(a, b, acc, "i8")[0, 0] == -2**31
    assert dot(a.view(np.uint8), b.view(np.uint8), None, "u8")[0, 0] == 4 * 128 * 128


def test_fp8_products_are_exact_in_f32() -> None:
    import ml_dtypes
    x = np.array([[448.0, 2.0 ** -9]], ml_dtypes.float8_e4m3fn)
    y = np.array([[448.0], [2.0 ** -9]], ml_dtypes.float8_e4m3fn)
    assert dot(x, y, None, "f8e4m3")[0, 0] == np.float32(448.0 * 448.0 + 2.0 ** -18)
