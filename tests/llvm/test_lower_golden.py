"""FileCheck goldens on the LLVM IR (as lowered, and after O3) and the asm of small kernels: the
kernel ABI, matrix intrinsics with their operand types, fenced barriers, exp2, 16-byte vector
global loads, masked loads, the loop's phis and the cross-lane row reductions."""

from __future__ import annotations

import functools

import pytest
from lower_testing import BF16_GEMM, filecheck, lower

from tiledsl.llvm.lower import LoweredKernel
from tiledsl.llvm.target_base import CompiledModule


@functools.cache
def compiled(source: str, key: str, **params: int) -> tuple[LoweredKernel, CompiledModule]:
    lk = lower(source, key, **params)
    return lk, lk.compile()


def test_kernel_abi_in_the_signature() -> None:
    lk, _ = compiled("attention", "gfx942", D=64)
    filecheck(str(lk.module), r"""
CHECK: define amdgpu_kernel void @"attention"(ptr addrspace(1) inreg noalias readonly %"Q", ptr addrspace(1) inreg noalias readonly %"K", ptr addrspace(1) inreg noalias readonly %"V", ptr addrspace(1) inreg noalias %"O", ptr addrspace(1) inreg noalias %"L", float inreg %"scale", i32 inreg %"dim.Z", i32 inreg %"dim.H", i32 inreg %"dim.N") {{.*}}"amdgpu-flat-work-group-size"="1,256"
CHECK: @"lds" = internal addrspace(3) global [{{[0-9]+}} x i8] undef, align 16
""")
    assert f'@"lds" = internal addrspace(3) global [{lk.lds_bytes} x i8]' in str(lk.module)


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", r"""
IR: call <16 x float> @"llvm.amdgcn.mfma.f32.32x32x8f16"(<4 x half> %{{.*}}, <4 x half> %{{.*}}, <16 x float> %{{.*}}, i32 0, i32 0, i32 0)
ASM: v_mfma_f32_32x32x8_f16 {{[av]}}[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}]
"""),
    ("gfx1100", r"""
IR: call <8 x float> @"llvm.amdgcn.wmma.f32.16x16x16.f16.v8f32.v16f16"(<16 x half> %{{.*}}, <16 x half> %{{.*}}, <8 x float> %{{.*}})
ASM: v_wmma_f32_16x16x16_f16 v[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}]
"""),
    ("sm_90", r"""
IR: call {float, float, float, float} @"llvm.nvvm.mma.m16n8k16.row.col.f32.f32"(<2 x half> %{{.*}}, <2 x half> %{{.*}}, <2 x half> %{{.*}}, <2 x half> %{{.*}}, <2 x half> %{{.*}}, <2 x half> %{{.*}}, float %{{.*}}, float %{{.*}}, float %{{.*}}, float %{{.*}})
ASM: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
"""),
])
def test_f16_matrix_instruction(key: str, checks: str) -> None:
    lk, c = compiled("gemm", key)
    filecheck(str(lk.module), checks.replace("IR:", "CHECK:").replace("ASM:", "IGNORE:"))
    filecheck(c.asm, checks.replace("ASM:", "CHECK:").replace("IR:", "IGNORE:"))


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", r"""
CHECK: call <16 x float> @"llvm.amdgcn.mfma.f32.32x32x8bf16.1k"(<4 x i16> %{{.*}}, <4 x i16> %{{.*}}, <16 x float>
"""),
    ("gfx1100", r"""
CHECK: call <8 x float> @"llvm.amdgcn.wmma.f32.16x16x16.bf16.v8f32.v16i16"(<16 x i16> %{{.*}}, <16 x i16>
"""),
    ("sm_90", r"""
CHECK: call {float, float, float, float} @"llvm.nvvm.mma.m16n8k16.row.col.bf16"(i32 %{{.*}}, i32 %{{.*}}, i32 %{{.*}}, i32 %{{.*}}, i32 %{{.*}}, i32 %{{.*}}, float
"""),
])
def test_bf16_matrix_instruction(key: str, checks: str) -> None:
    lk, c = compiled(BF16_GEMM, key)
    filecheck(str(lk.module), checks)
    assert ("bf16" in c.asm) if key != "gfx942" else ("v_mfma_f32_32x32x8_bf16" in c.asm)


def test_amd_barrier_is_fenced_for_lds() -> None:
    _, c = compiled("gemm", "gfx942")
    filecheck(c.llvm_ir, r"""
CHECK: store <{{[0-9]+}} x half> {{.*}} ptr addrspace(3)
CHECK: fence syncscope("workgroup") release, !mmra ![[MMRA:[0-9]+]]
CHECK-NEXT: tail call void @llvm.amdgcn.s.barrier()
CHECK-NEXT: fence syncscope("workgroup") acquire, !mmra ![[MMRA]]
CHECK: ![[MMRA]] = !{!"amdgpu-synchronize-as", !"local"}
""")
    filecheck(c.asm, r"""
CHECK: ds_write
CHECK: s_waitcnt lgkmcnt(0)
CHECK-NEXT: s_barrier
""")


def test_nvptx_barrier() -> None:
    _, c = compiled("gemm", "sm_90")
    filecheck(c.asm, r"""
CHECK: st.shared
CHECK: bar.sync 0;
CHECK: ld.shared
""")


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", r"""
IR: %[[X:.*]] = fmul float %{{.*}}, 0x3ff7154760000000
IR-NEXT: call float @"llvm.amdgcn.exp2.f32"(float %[[X]])
ASM: v_exp_f32
"""),
    ("sm_90", r"""
IR: %[[X:.*]] = fmul float %{{.*}}, 0x3ff7154760000000
IR-NEXT: call float @"llvm.nvvm.ex2.approx.ftz.f32"(float %[[X]])
ASM: ex2.approx.ftz.f32
"""),
])
def test_exp_is_the_targets_exp2(key: str, checks: str) -> None:
    """softmax's exp(x) is exp2(x·log2 e) with the target's one-instruction exp2."""
    lk, c = compiled("softmax", key)
    filecheck(str(lk.module), checks.replace("IR", "CHECK").replace("ASM:", "IGNORE:"))
    filecheck(c.asm, checks.replace("ASM:", "CHECK:").replace("IR", "IGNORE"))
    assert "llvm.exp.f32" not in str(lk.module)


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", "CHECK: global_load_dwordx4 v[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}], off"),
    ("gfx1100", "CHECK: global_load_b128 v[{{[0-9]+}}:{{[0-9]+}}], v[{{[0-9]+}}:{{[0-9]+}}], off"),
    ("sm_90", "CHECK: ld.global.nc.v4.b32 {%r{{[0-9]+}}, %r{{[0-9]+}}, %r{{[0-9]+}}, %r{{[0-9]+}}}, [%rd{{[0-9]+}}];"),
])
def test_16_byte_vector_global_loads(key: str, checks: str) -> None:
    """A row of Q (D=64 f16) is read 8 halves per thread: one 16-byte load, masked by clamping
    the byte offset to the tensor base and selecting the pad value."""
    lk, c = compiled("attention", key, D=64)
    filecheck(str(lk.module), r"""
CHECK: %[[OFF:.*]] = select i1 %[[M:.*]], i64 %{{.*}}, i64 0
CHECK-NEXT: %[[P:.*]] = getelementptr i8, ptr addrspace(1) %"Q", i64 %[[OFF]]
CHECK-NEXT: %[[V:.*]] = load <8 x half>, ptr addrspace(1) %[[P]], align 16
CHECK: select i1 %[[M]], half %{{.*}}, half 0x0
""")
    filecheck(c.asm, checks)


def test_loop_carries_registers_in_phis() -> None:
    # softmax's loop is split (full tiles, then the rest): the first loop ends at the split point.
    lk, _ = compiled("softmax", "sm_90")
    filecheck(str(lk.module), r"""
CHECK: br i1 %{{.*}}, label %"for.body", label %"for.end"
CHECK: for.body:
CHECK-NEXT: %"iv" = phi i32 [0, %"entry"], [%"iv.next", %"for.body"]
CHECK-NEXT: phi float [{{ *}}0x0, %"entry"], [%{{.*}}, %"for.body"]
CHECK: phi float [0xfff0000000000000, %"entry"], [%{{.*}}, %"for.body"]
CHECK: %"iv.next" = add i32 %"iv", 128
CHECK-NEXT: %[[C:.*]] = icmp slt i32 %"iv.next", %{{[^ ]+}}
CHECK-NEXT: br i1 %[[C]], label %"for.body", label %"for.end"
CHECK: for.end:
CHECK-NEXT: phi float [{{ *}}0x0, %"entry"], [%{{.*}}, %"for.body"]
CHECK: phi float [0xfff0000000000000, %"entry"], [%{{.*}}, %"for.body"]
""")


@pytest.mark.parametrize(("key", "checks"), [
    ("sm_90", r"""
CHECK: shfl.sync.bfly.b32 %r{{[0-9]+}}, %r{{[0-9]+}}, 1, 31, -1;
CHECK: shfl.sync.bfly.b32 %r{{[0-9]+}}, %r{{[0-9]+}}, 2, 31, -1;
"""),
    ("gfx942", r"""
CHECK: quad_perm:[1,0,3,2]
CHECK: quad_perm:[2,3,0,1]
CHECK: ds_bpermute_b32
"""),
])
def test_row_reductions_cross_lanes(key: str, checks: str) -> None:
    """softmax's rowmax/rowsum: in-thread, then a butterfly over the lanes sharing a row."""
    _, c = compiled("softmax", key)
    filecheck(c.asm, checks)
