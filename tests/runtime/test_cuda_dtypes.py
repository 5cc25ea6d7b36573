"""The new dtypes on a real NVIDIA GPU (skipped where there is none): casts between every pair with
the hardware fp8 conversions of sm_90/sm_90a (``cvt.rn.satfinite.e4m3x2.f32`` ...), bit operations,
int4 unpacking, i64, fp8 arithmetic and LDS round trips, against the references of
``tests/thread/dtype_cases.py``. CuPy has no fp8 type: fp8 arrays go as their bytes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()


def _dtype_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "thread" / "dtype_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_dtype_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CASES = _dtype_cases()
GPU_CASES = [*[f"casts-{d}" for d in CASES.NUMPY], "bits-u8", "bits-i8", "bits-u32", "bits-i64", "int4", "wide", "offsets", "fp8",
             "lds-f8e4m3", "lds-u8-8x128", "lds-i64-64x16"]


def _to_gpu(v: Any) -> Any:
    if not isinstance(v, np.ndarray):
        return v
    if v.dtype in (np.dtype(t) for t in CASES.FP8.values()) or v.dtype.name == "bfloat16":
        return cupy.asarray(v.view(np.uint8 if v.dtype.itemsize == 1 else np.uint16))
    return cupy.asarray(v)


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("name", GPU_CASES)
def test_dtype_case_on_the_gpu(name: str, target: str) -> None:
    case = CASES.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference(case.inputs(np.random.default_rng(0)))
    prog = case.program()
    kernel = prog.compile(target=target).launcher()
    gpu = {k: _to_gpu(v) for k, v in args.items()}
    for p in prog.scalar_params:          # the launcher takes fp8 scalars as numbers
        if p.dtype in CASES.FP8:
            gpu[p.name] = float(np.float32(args[p.name]))
    kernel(**gpu)
    for k in case.outs:
        got = gpu[k].get().view(args[k].dtype)
        assert CASES.same(got, want[k]), k
