"""8-bit dots at thread level against the block level, on every target: the matrix instruction
each target picks (fp8 on sm_90's m16n8k32, widened to f16 elsewhere; i8 MFMA/WMMA/mma.sync; the
LDS FMA fallback where there is none) computes what the semantics says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tiledsl.stages import run_until


def _cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "kernels" / "dot_8bit_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_dot_8bit_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CASES = _cases()
TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a", "generic"]

#: (target, operand dtype) -> what the dot becomes in thread IR.
EXPECTED = {
    ("sm_90", "f8e4m3"): "mma_m16n8k32_e4m3", ("sm_90", "f8e5m2"): "mma_m16n8k32_e5m2",
    ("sm_90", "i8"): "mma_m16n8k32_s8", ("sm_90", "u8"): "mma_m16n8k32_u8",
    ("sm_90a", "f8e4m3"): "mma_m16n8k32_e4m3", ("sm_80", "f8e4m3"): "mma_m16n8k16_f16",
    ("sm_80", "i8"): "mma_m16n8k32_s8",
    ("gfx942", "f8e4m3"): "mfma_f32_32x32x8_f16", ("gfx942", "f8e5m2"): "mfma_f32_32x32x8_f16",
    ("gfx942", "i8"): "mfma_i32_32x32x16_i8", ("gfx942", "u8"): "lds_dot",
    ("gfx90a", "i8"): "mfma_i32_32x32x8_i8",
    ("gfx1100", "f8e5m2"): "wmma_f32_16x16x16_f16", ("gfx1100", "i8"): "wmma_i32_16x16x16_i8",
    ("gfx1100", "u8"): "wmma_i32_16x16x16_u8", ("generic", "i8"): "fma",
}


def _dot_kind(dtype: str, target: str) -> str:
    prog = CASES.program(dtype)
    kernel = run_until(prog, "thread-ir", target)
    kinds = {op.attrs["instr"] if op.name == "mma_tile" else op.name
             for op in kernel.walk() if op.name in ("mma_tile", "lds_dot")}
    assert len(kinds) == 1, kinds
    return kinds.pop()


@pytest.mark.parametrize(("target", "dtype"), sorted(EXPECTED))
def test_the_intended_instruction(target: str, dtype: str) -> None:
    kind = _dot_kind(dtype, target)
    assert kind == EXPECTED[target, dtype] or kind.startswith(EXPECTED[target, dtype])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", sorted(CASES.DTYPES))
def test_thread_level_matches_block_level(dtype: str, target: str) -> None:
    m, n, k = 70, 45, 100           # not multiples of the 64x64x64 tiles
    args = CASES.inputs(dtype, m, n, k, np.random.default_rng(3))
    block = {key: v.copy() for key, v in args.items()}
    prog = CASES.program(dtype)
    assert prog.interpret(**block).ok
    report = prog.interpret(level="thread", target=target, **args)
    assert report.ok, str(report)
    CASES.check(dtype, args["C"], CASES.reference(dtype, **args))
    if CASES.DTYPES[dtype][1] == "i32":
        np.testing.assert_array_equal(args["C"], block["C"])
    else:
        np.testing.assert_allclose(args["C"], block["C"], rtol=1e-5, atol=1e-5)
