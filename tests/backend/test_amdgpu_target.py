"""AmdgpuTarget: the tiny kernel on every arch, FileCheck goldens on LLVM IR and asm."""

from __future__ import annotations

import pytest
from backend_kernels import build_tiny_kernel, filecheck

from tiledsl.backend_amdgpu import AmdgpuCompiledModule, AmdgpuTarget, code_object_version, read_metadata
from tiledsl.llvm import UnsupportedOnTarget, binding, ir
from tiledsl.llvm.irgen import F16, F32

ARCHES = ("gfx90a", "gfx942", "gfx1100", "gfx1030")


@pytest.fixture(scope="module")
def compiled(amd_targets) -> dict[str, AmdgpuCompiledModule]:
    return {arch: amd_targets[arch].compile(build_tiny_kernel(amd_targets[arch])) for arch in ARCHES}


@pytest.mark.parametrize("arch", ARCHES)
def test_tiny_kernel_compiles_to_verified_ir_asm_and_object(arch, compiled, amd_targets):
    c = compiled[arch]
    binding.parse_assembly(c.llvm_ir).verify()  # the optimised IR is itself valid
    assert c.asm.lstrip().startswith(".text") or ".amdgcn_target" in c.asm
    assert f'.amdgcn_target "amdgcn-amd-amdhsa--{arch}' in c.asm
    assert c.object[:4] == b"\x7fELF"
    md = read_metadata(c.object)
    assert md["amdhsa.kernels"][0][".name"] == "tiny"
    assert md["amdhsa.kernels"][0][".wavefront_size"] == amd_targets[arch].wave_size
    assert c.dynamic_lds_bytes == 0


@pytest.mark.parametrize("arch", ARCHES)
def test_tiny_kernel_links_to_code_object_v5(arch, compiled, linker):
    hsaco = compiled[arch].link(linker)
    assert code_object_version(hsaco) == 5
    assert read_metadata(hsaco)["amdhsa.kernels"][0][".symbol"] == "tiny.kd"


def test_kernel_attributes_and_module_flag_in_llvm_ir(compiled):
    filecheck(compiled["gfx942"].llvm_ir, r"""
CHECK: define amdgpu_kernel void @tiny(ptr addrspace(1) inreg noalias readonly {{.*}}%inp, ptr addrspace(1) inreg noalias {{.*}}%out, float inreg {{.*}}%scale) {{.*}}#[[ATTRS:[0-9]+]]
CHECK: attributes #[[ATTRS]] = {{.*}}"amdgpu-flat-work-group-size"="1,256"
CHECK-SAME: "denormal-fp-math-f32"="ieee,ieee"
CHECK-SAME: "uniform-work-group-size"="true"
CHECK: !{i32 1, !"amdhsa_code_object_version", i32 500}
""")


def test_gfx1100_has_no_kernarg_preload(compiled):
    assert "inreg" not in compiled["gfx1100"].llvm_ir.split("define", 1)[1].split("\n", 1)[0]


@pytest.mark.parametrize("arch", ARCHES)
def test_barrier_is_fenced_with_lds_only_mmra(arch, compiled):
    filecheck(compiled[arch].llvm_ir, r"""
CHECK: store float {{.*}} ptr addrspace(3)
CHECK-NEXT: fence syncscope("workgroup") release, !mmra ![[MMRA:[0-9]+]]
CHECK-NEXT: tail call void @llvm.amdgcn.s.barrier()
CHECK-NEXT: fence syncscope("workgroup") acquire, !mmra ![[MMRA]]
CHECK: ![[MMRA]] = !{!"amdgpu-synchronize-as", !"local"}
""")
    # The fences make LLVM wait for the LDS store before the barrier (docs/targets/amdgpu.md §3.1).
    filecheck(compiled[arch].asm, r"""
CHECK: ds_{{write|store}}_b32
CHECK: s_waitcnt lgkmcnt(0)
CHECK-NEXT: s_barrier
CHECK-NOT: buffer_gl0_inv
CHECK: ds_{{read|load}}_b32
""")


@pytest.mark.parametrize("arch", ARCHES)
def test_exp2_is_one_v_exp_f32(arch, compiled):
    filecheck(compiled[arch].llvm_ir, "CHECK: call float @llvm.amdgcn.exp2.f32(float")
    filecheck(compiled[arch].asm, "CHECK: v_exp_f32")
    assert compiled[arch].asm.count("v_exp_f32") == 1


@pytest.mark.parametrize(
    ("arch", "ir_check", "asm_check"),
    [
        ("gfx90a",
         ("call <16 x float> @llvm.amdgcn.mfma.f32.32x32x8f16(<4 x half> {{.*}}, <4 x half> {{.*}}, <16 x float> {{.*}}, "
         "i32 0, i32 0, i32 0)"),
         "v_mfma_f32_32x32x8f16 v[{{[0-9]+}}:{{[0-9]+}}]"),
        ("gfx942",
         ("call <4 x float> @llvm.amdgcn.mfma.f32.16x16x16bf16.1k(<4 x i16> {{.*}}, <4 x i16> {{.*}}, <4 x float> {{.*}}, "
         "i32 0, i32 0, i32 0)"),
         "v_mfma_f32_16x16x16_bf16"),
        ("gfx1100",
         ("call <8 x float> @llvm.amdgcn.wmma.f32.16x16x16.f16.v8f32.v16f16(<16 x half> {{.*}}, <16 x half> {{.*}}, "
         "<8 x float> {{.*}})"),
         "v_wmma_f32_16x16x16_f16 v[{{[0-9]+}}:{{[0-9]+}}]"),
    ],
)
def test_matrix_intrinsic_operand_types(arch, ir_check, asm_check, compiled):
    filecheck(compiled[arch].llvm_ir, f"CHECK: {ir_check}")
    filecheck(compiled[arch].asm, f"CHECK: {asm_check}")


@pytest.mark.parametrize(
    ("arch", "instr", "asm_check"),
    [
        ("gfx942", "mfma_f32_32x32x8_f16", "v_mfma_f32_32x32x8_f16"),
        ("gfx90a", "mfma_f32_16x16x16_f16", "v_mfma_f32_16x16x16f16"),
        ("gfx90a", "mfma_f32_32x32x8_bf16", "v_mfma_f32_32x32x8bf16_1k"),
        ("gfx1100", "wmma_f32_16x16x16_bf16", "v_wmma_f32_16x16x16_bf16"),
    ],
)
def test_every_matrix_instruction_selects(arch, instr, asm_check, amd_targets):
    t = amd_targets[arch]
    m = t.new_module("mm")
    fn = t.declare_kernel(m, "mm", [t.global_ptr_type], 64)
    b = ir.IRBuilder(fn.append_basic_block())
    info = t.matrix_info(instr)
    x = b.load(fn.args[0], typ=F32)
    h = b.fptrunc(x, F16)
    opnd = h if info.in_dtype == "f16" else b.bitcast(h, ir.IntType(16))
    d = t.matrix_op(b, instr, [opnd] * info.a_elems, [opnd] * info.b_elems, [x] * info.c_elems)
    assert len(d) == info.c_elems and all(v.type == F32 for v in d)
    for v in d:
        x = b.fadd(x, v)
    b.store(x, fn.args[0])
    b.ret_void()
    filecheck(t.compile(m).asm, f"CHECK: {asm_check}")


def test_shuffles_use_dpp_within_a_quad_and_bpermute_beyond(compiled):
    # xor 1 folds into the consumer as a DPP modifier; xor 16 goes through ds_bpermute with the
    # byte address (lane ^ 16) * 4 (docs/targets/amdgpu.md §9.4).
    filecheck(compiled["gfx942"].llvm_ir, r"""
CHECK: call i32 @llvm.amdgcn.update.dpp.i32(i32 {{undef|poison}}, i32 {{.*}}, i32 177, i32 15, i32 15, i1 true)
CHECK: call i32 @llvm.amdgcn.ds.bpermute(i32
""")
    filecheck(compiled["gfx942"].asm, r"""
CHECK: v_add_f32_dpp {{.*}} quad_perm:[1,0,3,2]
CHECK: ds_bpermute_b32
""")
    # wave_id is made scalar (LLVM may hoist readfirstlane above the shift: same value).
    filecheck(compiled["gfx942"].asm, "CHECK: v_readfirstlane_b32 s{{[0-9]+}}, v0")


def test_wave32_lane_mask_on_gfx1100(amd_targets):
    t = amd_targets["gfx1100"]
    m = t.new_module("lane")
    fn = t.declare_kernel(m, "lane", [t.global_ptr_type], 64)
    b = ir.IRBuilder(fn.append_basic_block())
    lane = t.lane_id(b)
    b.store(lane, b.gep(fn.args[0], [t.thread_id(b)], source_etype=ir.IntType(32)))
    b.ret_void()
    assert "and i32 %tid.x, 31" in str(m).replace('"', "")
    assert t.wave_size == 32 and ".wavefront_size: 32" in t.compile(m).asm


def test_fma_only_target_rejects_matrix_ops_and_still_compiles(amd_targets):
    t = AmdgpuTarget("gfx942", matrix=False)
    assert not t.has_matrix and t.name == "gfx942-fma"
    m = t.new_module("fma")
    fn = t.declare_kernel(m, "fma", [t.global_ptr_type], 64)
    b = ir.IRBuilder(fn.append_basic_block())
    h = ir.Constant(F16, 1.0)
    with pytest.raises(UnsupportedOnTarget, match="gfx942-fma"):
        t.matrix_op(b, "mfma_f32_16x16x16_f16", [h] * 4, [h] * 4, [ir.Constant(F32, 0.0)] * 4)
    b.ret_void()
    assert "v_mfma" not in build_and_compile_tiny(t)


def build_and_compile_tiny(t: AmdgpuTarget) -> str:
    return t.compile(build_tiny_kernel(t)).asm


@pytest.mark.parametrize(
    ("arch", "instr"),
    [("gfx942", "wmma_f32_16x16x16_f16"), ("gfx1100", "mfma_f32_32x32x8_f16"), ("gfx1030", "wmma_f32_16x16x16_f16"),
     ("gfx90a", "mma_m16n8k16_f16")],
)
def test_matrix_op_missing_on_target_raises_unsupported(arch, instr, amd_targets):
    with pytest.raises(UnsupportedOnTarget, match=arch) as err:
        amd_targets[arch].matrix_info(instr)
    assert isinstance(err.value, NotImplementedError)


def test_matrix_on_an_arch_without_matrix_unit_is_an_error():
    with pytest.raises(ValueError, match="no matrix instructions"):
        AmdgpuTarget("gfx1030", matrix=True)
    with pytest.raises(ValueError, match="unknown AMDGPU arch"):
        AmdgpuTarget("gfx803")


def test_lds_arena_is_static_and_reported_in_metadata(compiled):
    filecheck(compiled["gfx942"].llvm_ir, "CHECK: @arena = internal unnamed_addr addrspace(3) global [1024 x i8] undef, align 16")
    assert read_metadata(compiled["gfx942"].object)["amdhsa.kernels"][0][".group_segment_fixed_size"] == 1024


def test_lds_arena_limits(amd_targets):
    t = amd_targets["gfx942"]
    with pytest.raises(ValueError, match="allows 1..65536"):
        t.lds_global(t.new_module("m"), "big", 65537, 16)
    with pytest.raises(ValueError, match="power of two"):
        t.lds_global(t.new_module("m"), "odd", 64, 12)


def test_data_layout_comes_from_the_target_machine(amd_targets):
    t = amd_targets["gfx942"]
    assert t.data_layout == str(t.target_machine().target_data)
    assert "p3:32:32" in t.data_layout and "A5" in t.data_layout
    assert t.new_module("m").data_layout == t.data_layout
