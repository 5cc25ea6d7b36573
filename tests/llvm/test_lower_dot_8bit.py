"""Native code of 8-bit dots on every native target: the intended matrix instruction appears in
the assembly with its operand types (FileCheck), and the 8-bit examples compile."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiledsl
from tiledsl.testing import filecheck

KERNEL = Path(__file__).resolve().parents[1] / "kernels" / "dot_8bit.tdsl"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACC = {"f8e4m3": "f32", "f8e5m2": "f32", "i8": "i32", "u8": "i32"}

# (target, dtype) -> FileCheck lines on the asm (PTX / AMDGPU assembly).
GOLDEN = {
    ("sm_90", "f8e4m3"): "CHECK: .version 8.4\nCHECK: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32",
    ("sm_90", "f8e5m2"): "CHECK: mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32",
    ("sm_90a", "f8e4m3"): "CHECK: .version 8.4\nCHECK: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32",
    ("sm_90", "i8"): "CHECK: .version 7.8\nCHECK: mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
    ("sm_80", "u8"): "CHECK: mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32",
    ("sm_80", "f8e4m3"): "CHECK: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
    ("gfx942", "i8"): "CHECK: v_mfma_i32_32x32x16_i8 {{[av]}}[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}]",
    ("gfx942", "f8e4m3"): "CHECK: v_mfma_f32_32x32x8_f16",
    ("gfx942", "f8e5m2"): "CHECK: v_mfma_f32_32x32x8_f16",
    ("gfx90a", "i8"): "CHECK: v_mfma_i32_32x32x8i8 {{[av]}}[{{[0-9]+}}:{{[0-9]+}}], v{{[0-9]+}}, v{{[0-9]+}}",
    ("gfx90a", "f8e5m2"): "CHECK: v_mfma_f32_32x32x8f16",
    ("gfx1100", "i8"): "CHECK: v_wmma_i32_16x16x16_iu8 {{.*}} neg_lo:[1,1,0]",
    ("gfx1100", "u8"): "CHECK: v_wmma_i32_16x16x16_iu8\nCHECK-NOT: neg_lo",
    ("gfx1100", "f8e4m3"): "CHECK: v_wmma_f32_16x16x16_f16",
}


@pytest.mark.parametrize(("target", "dtype"), sorted(GOLDEN))
def test_the_intended_instruction_is_emitted(target: str, dtype: str) -> None:
    art = tiledsl.load(KERNEL, params={"T": dtype, "R": ACC[dtype]}).compile(target=target)
    assert art.binary
    filecheck(art.asm, GOLDEN[target, dtype])


@pytest.mark.parametrize("target", ["gfx942", "gfx90a"])
def test_u8_without_mfma_runs_on_fmas_from_lds(target: str) -> None:
    art = tiledsl.load(KERNEL, params={"T": "u8", "R": "i32"}).compile(target=target)
    assert "v_mfma" not in art.asm
    filecheck(art.asm, "CHECK: ds_read_u{{8|16}}\nCHECK: v_mad_u32_u24")


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"])
@pytest.mark.parametrize("example", ["fp8_gemm", "int4_gemm"])
def test_examples_compile(example: str, target: str) -> None:
    art = tiledsl.load(EXAMPLES / f"{example}.tdsl").compile(target=target)
    assert art.binary
    want = {"sm_90": "m16n8k32.row.col.f32.e4m3.e4m3", "sm_90a": "m16n8k32.row.col.f32.e4m3.e4m3"}
    if example == "fp8_gemm" and target in want:
        assert want[target] in art.asm
    if example == "int4_gemm" and target == "sm_90a":
        assert "wgmma.mma_async" in art.asm
