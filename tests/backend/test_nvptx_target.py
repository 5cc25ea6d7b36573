"""NvptxTarget: the tiny kernel on sm_80/sm_90/sm_90a, FileCheck goldens on LLVM IR and PTX, ptxas."""

from __future__ import annotations

import pytest
from backend_kernels import BLOCK, build_tiny_kernel, filecheck

from tiledsl.backend_nvptx import (
    NvptxCompiledModule,
    NvptxTarget,
    PtxasError,
    PtxasNotFound,
    find_ptxas,
    to_cubin,
)
from tiledsl.llvm import binding, ir
from tiledsl.llvm.irgen import F16, F32, I8, I16, I32

ARCHES = ("sm_80", "sm_90", "sm_90a")


@pytest.fixture(scope="module")
def targets() -> dict[str, NvptxTarget]:
    return {arch: NvptxTarget(arch) for arch in ARCHES}


@pytest.fixture(scope="module")
def compiled(targets) -> dict[str, NvptxCompiledModule]:
    return {arch: targets[arch].compile(build_tiny_kernel(targets[arch])) for arch in ARCHES}


@pytest.fixture(scope="session")
def ptxas() -> str:
    try:
        return find_ptxas()
    except PtxasNotFound as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("arch", ARCHES)
def test_tiny_kernel_compiles_to_verified_ir_and_ptx(arch, compiled):
    c = compiled[arch]
    binding.parse_assembly(c.llvm_ir).verify()
    assert f".target {arch}" in c.ptx
    assert c.object == c.ptx.encode()
    assert c.dynamic_lds_bytes == BLOCK * 4


def test_ptx_version_is_the_minimum_for_each_arch(compiled):
    assert ".version 7.0" in compiled["sm_80"].ptx
    assert ".version 7.8" in compiled["sm_90"].ptx
    assert ".version 8.0" in compiled["sm_90a"].ptx


@pytest.mark.parametrize("arch", ARCHES)
def test_ptx_golden(arch, compiled):
    filecheck(compiled[arch].ptx, r"""
CHECK: .extern .shared .align 16 .b8 arena[];
CHECK: .entry tiny(
CHECK: .reqntid 256
CHECK: ld.global.nc.{{[a-z0-9]+}}
CHECK: st.shared.{{[a-z0-9]+}}
CHECK: bar.sync 0;
CHECK: ld.shared.{{[a-z0-9]+}}
CHECK: ex2.approx.ftz.f32
CHECK: shfl.sync.bfly.b32 {{.*}}, 1, 31, -1;
CHECK: shfl.sync.bfly.b32 {{.*}}, 16, 31, -1;
""")


@pytest.mark.parametrize(
    ("arch", "mnemonic"),
    [("sm_80", "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"),
     ("sm_90", "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")],
)
def test_mma_sync(arch, mnemonic, compiled):
    # D, A (4 registers), B (2), C (4) on the lines after the mnemonic.
    filecheck(compiled[arch].ptx, f"CHECK: {mnemonic}\n" + r"""
CHECK-NEXT: {{[{]%r[0-9]+(, %r[0-9]+){3}[}]}},
CHECK-NEXT: {{[{]%r[0-9]+(, %r[0-9]+){3}[}]}},
CHECK-NEXT: {{[{]%r[0-9]+, %r[0-9]+[}]}},
CHECK-NEXT: {{[{]%r[0-9]+(, %r[0-9]+){3}[}]}};
""")



def test_llvm_ir_golden(compiled):
    filecheck(compiled["sm_90"].llvm_ir, r"""
CHECK: @arena = external {{.*}}addrspace(3) global [0 x i8], align 16
CHECK: define ptx_kernel void @tiny(ptr addrspace(1) noalias readonly {{.*}}%inp, ptr addrspace(1) noalias {{.*}}%out, float {{.*}}%scale) {{.*}}#[[ATTRS:[0-9]+]]
CHECK: call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
CHECK: call float @llvm.nvvm.ex2.approx.ftz.f32(float
CHECK: call float @llvm.nvvm.shfl.sync.bfly.f32(i32 -1, float {{.*}}, i32 1, i32 31)
CHECK: call { float, float, float, float } @llvm.nvvm.mma.m16n8k16.row.col.bf16(i32 {{.*}}, i32 {{.*}}, i32 {{.*}}, i32 {{.*}}, i32 {{.*}}, i32 {{.*}}, float
CHECK: attributes #[[ATTRS]] = {{.*}}"nvvm.reqntid"="256"
CHECK: !tiledsl.dynamic_lds_bytes = !{![[N:[0-9]+]]}
CHECK: ![[N]] = !{i64 1024}
""")


def test_maxntid_launch_bound():
    t = NvptxTarget("sm_80", launch_bound="maxntid")
    c = t.compile(build_tiny_kernel(t, block_threads=128))
    filecheck(c.ptx, "CHECK: .maxntid 128\nCHECK-NOT: .reqntid")
    with pytest.raises(ValueError, match="launch_bound"):
        NvptxTarget("sm_80", launch_bound="both")


def test_one_dynamic_arena_per_module(targets):
    t = targets["sm_90"]
    m = t.new_module("m")
    t.lds_global(m, "a", 1024, 16)
    with pytest.raises(ValueError, match="one arena per module"):
        t.lds_global(m, "b", 1024, 16)
    with pytest.raises(ValueError, match="allows 1..232448"):
        t.lds_global(t.new_module("m"), "big", 233 * 1024, 16)


def _kernel(t: NvptxTarget, name: str = "k"):
    m = t.new_module(name)
    fn = t.declare_kernel(m, name, [t.global_ptr_type, t.global_ptr_type], 128)
    return m, fn, ir.IRBuilder(fn.append_basic_block())


def test_shuffles_of_other_types_move_32_bit_words(targets):
    t = targets["sm_80"]
    m, fn, b = _kernel(t)
    tid = t.thread_id(b)
    h = b.load(b.gep(fn.args[0], [tid], source_etype=F16), typ=F16)
    d = b.load(b.gep(fn.args[0], [tid], source_etype=ir.DoubleType()), typ=ir.DoubleType())
    h2 = t.shuffle_xor(b, h, 2)
    d2 = t.shuffle_idx(b, d, 5)
    assert h2.type == F16 and d2.type == ir.DoubleType()
    b.store(h2, b.gep(fn.args[1], [tid], source_etype=F16))
    b.store(d2, b.gep(fn.args[1], [tid], source_etype=ir.DoubleType()))
    b.ret_void()
    ptx = t.compile(m).ptx
    assert ptx.count("shfl.sync.bfly.b32") == 1 and ptx.count("shfl.sync.idx.b32") == 2


def test_async_copy_and_ldmatrix_helpers(targets):
    t = targets["sm_80"]
    m, fn, b = _kernel(t)
    arena = t.lds_global(m, "arena", 4096, 16)
    tid = t.thread_id(b)
    dst = b.gep(arena, [b.mul(tid, ir.Constant(I32, 16))], source_etype=I8)
    t.cp_async_copy16(b, dst, b.gep(fn.args[0], [b.mul(tid, ir.Constant(I32, 16))], source_etype=I8))
    t.cp_async_commit(b)
    t.cp_async_wait(b, 0)
    t.barrier(b)
    regs = t.ldmatrix(b, dst, 4) + t.ldmatrix(b, dst, 2, trans=True) + t.ldmatrix(b, dst, 1)
    assert len(regs) == 7 and all(r.type == I32 for r in regs)
    total = regs[0]
    for r in regs[1:]:
        total = b.add(total, r)
    b.store(total, b.gep(fn.args[1], [tid], source_etype=I32))
    b.ret_void()
    filecheck(t.compile(m).ptx, r"""
CHECK: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16;
CHECK: cp.async.commit_group;
CHECK: cp.async.wait_group 0;
CHECK: bar.sync 0;
CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
CHECK-DAG: ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16
CHECK-DAG: ldmatrix.sync.aligned.m8n8.x1.shared.b16
""")
    with pytest.raises(ValueError, match="1, 2 or 4"):
        t.ldmatrix(b, dst, 3)


def test_ex2_approx_ftz(targets):
    t = targets["sm_90"]
    m, fn, b = _kernel(t)
    x = b.load(fn.args[0], typ=F32)
    b.store(t.ex2_approx(b, t.exp2(b, x), ftz=False), fn.args[1])
    b.ret_void()
    # exp2 is the one-MUFU .ftz form; ex2_approx gives either on request.
    filecheck(t.compile(m).ptx, "CHECK: ex2.approx.ftz.f32\nCHECK: ex2.approx.f32")


def test_mma_bf16_pairs_are_packed_low_half_first(targets):
    t = targets["sm_80"]
    m, _, b = _kernel(t)
    a = [ir.Constant(I16, i) for i in range(8)]
    d = t.matrix_op(b, "mma_m16n8k16_bf16", a, a[:4], [ir.Constant(F32, 0.0)] * 4)
    assert len(d) == 4
    b.ret_void()
    text = str(m)
    assert "insertelement <2 x i16> <i16 undef, i16 undef>, i16 0, i32 0" in text
    assert "bitcast <2 x i16>" in text and "to i32" in text


def test_unsupported_matrix_instruction(targets):
    from tiledsl.llvm import UnsupportedOnTarget

    with pytest.raises(UnsupportedOnTarget, match="sm_90"):
        targets["sm_90"].matrix_info("mfma_f32_32x32x8_f16")


def test_cubin_and_ptxas_report(compiled, ptxas):
    c = compiled["sm_90"]
    cubin = c.cubin(ptxas)
    assert cubin[:4] == b"\x7fELF"
    report = c.ptxas_resources(ptxas)["tiny"]
    assert 0 < report.registers <= 255
    assert report.spill_store_bytes == 0 and report.shared_bytes == 0  # the arena is dynamic


def test_ptxas_errors(ptxas, tmp_path):
    with pytest.raises(PtxasError, match="ptxas failed"):
        to_cubin(".version 7.8\n.target sm_90\n.address_size 64\nthis is not ptx\n", "sm_90", ptxas)
    with pytest.raises(PtxasNotFound, match="driver's JIT"):
        find_ptxas(path=str(tmp_path))
