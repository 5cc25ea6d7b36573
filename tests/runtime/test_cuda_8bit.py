"""8-bit dots and the fp8/int4 GEMM examples on a real NVIDIA GPU (skipped where there is none):
mma.sync m16n8k32 e4m3/e5m2/s8/u8 on sm_90 and sm_90a, against the same references as the
interpreters. CuPy has no fp8 or bf16 type: those arrays go as their bytes.

On the device: ``python -m pytest -q tests/runtime/test_cuda_8bit.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tiledsl
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

TESTS = Path(__file__).resolve().parents[1]
EXAMPLES = TESTS.parent / "examples"


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


CASES = _module(TESTS / "kernels" / "dot_8bit_cases.py", "tdsl_dot_8bit_cases")
REF = _module(EXAMPLES / "reference.py", "tdsl_examples_reference")
# The examples' input builders (odd shapes, the dtypes' ranges) are the interpreter tests' own.
GEMMS = _module(TESTS / "examples" / "test_8bit_gemms.py", "tdsl_test_8bit_gemms")


def _to_gpu(v: Any) -> Any:
    if not isinstance(v, np.ndarray):
        return v
    if v.dtype in (np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2)):
        return cupy.asarray(v.view(np.uint8))
    if v.dtype == np.dtype(ml_dtypes.bfloat16):
        return cupy.asarray(v.view(np.uint16))
    return cupy.asarray(v)


def _run(prog: tiledsl.Program, target: str, args: dict[str, Any], outs: tuple[str, ...]) -> None:
    gpu = {k: _to_gpu(v) for k, v in args.items()}
    prog.compile(target=target).launcher()(**gpu)
    for k in outs:
        args[k][...] = gpu[k].get().view(args[k].dtype)


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("dtype", sorted(CASES.DTYPES))
def test_dot_8bit_on_the_gpu(dtype: str, target: str) -> None:
    args = CASES.inputs(dtype, 131, 77, 300, np.random.default_rng(0))
    _run(CASES.program(dtype), target, args, ("C",))
    CASES.check(dtype, args["C"], CASES.reference(dtype, **args))


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("out", ["f16", "bf16", "f32"])
def test_fp8_gemm_on_the_gpu(out: str, target: str) -> None:
    args = GEMMS.fp8_inputs(333, 257, 1000, out, 0)
    _run(tiledsl.load(EXAMPLES / "fp8_gemm.tdsl", params={"T": out}), target, args, ("C",))
    assert GEMMS.rel_error(args["C"], REF.fp8_gemm(**args)) <= GEMMS.TOLERANCE[out]


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
def test_int4_gemm_on_the_gpu(target: str) -> None:
    args = GEMMS.int4_inputs(333, 257, 5, 0)
    _run(tiledsl.load(EXAMPLES / "int4_gemm.tdsl"), target, args, ("C",))
    assert GEMMS.rel_error(args["C"], REF.int4_gemm(**args)) <= 1e-5
