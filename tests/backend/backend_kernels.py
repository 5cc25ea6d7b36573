"""Helpers of the backend tests: small kernels built through the target API, and FileCheck.

A module with a unique name rather than conftest.py, so that ``from backend_kernels import ...``
cannot pick up another test folder's conftest."""

from __future__ import annotations

from tiledsl.llvm import GpuTarget, ir
from tiledsl.llvm.irgen import F16, F32, I8, I16, I32
from tiledsl.testing import filecheck  # noqa: F401  (the tests import it from here)

#: One matrix instruction per target, exercised by the tiny kernel.
MATRIX_FOR = {
    "gfx90a": "mfma_f32_32x32x8_f16",
    "gfx942": "mfma_f32_16x16x16_bf16",
    "gfx1100": "wmma_f32_16x16x16_f16",
    "sm_80": "mma_m16n8k16_f16",
    "sm_90": "mma_m16n8k16_bf16",
    "sm_90a": "mma_m16n8k16_f16",
}
BLOCK = 256


def build_tiny_kernel(t: GpuTarget, block_threads: int = BLOCK, shuffle_masks: tuple[int, ...] = (1, 16)) -> ir.Module:
    """out[tid] = f(in[tid]): a global load, an LDS round trip over a barrier, exp2, shuffles,
    and one matrix instruction when the target has the one named in MATRIX_FOR."""
    m = t.new_module("tiny")
    g = t.global_ptr_type
    fn = t.declare_kernel(m, "tiny", [g, g, F32], block_threads, arg_names=["inp", "out", "scale"],
                          readonly_args=[0])
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    inp, out, scale = fn.args
    arena = t.lds_global(m, "arena", block_threads * 4, 16)
    tid = t.thread_id(b)
    x = b.load(b.gep(inp, [tid], source_etype=F32), typ=F32, align=4)
    four = ir.Constant(I32, 4)
    b.store(x, b.gep(arena, [b.mul(tid, four)], source_etype=I8), align=4)
    t.barrier(b)
    neighbour = b.mul(b.xor(tid, ir.Constant(I32, 1)), four)
    y = b.load(b.gep(arena, [neighbour], source_etype=I8), typ=F32, align=4)
    y = t.exp2(b, b.fmul(y, scale))
    for mask in shuffle_masks:
        y = b.fadd(y, t.shuffle_xor(b, y, mask))
    y = b.fadd(y, b.uitofp(t.wave_id(b), F32))
    instr = MATRIX_FOR.get(t.cpu)
    if instr in t.matrix_instrs:
        info = t.matrix_info(instr)
        h = b.fptrunc(y, F16)
        opnd = h if info.in_dtype == "f16" else b.bitcast(h, I16)
        d = t.matrix_op(b, instr, [opnd] * info.a_elems, [opnd] * info.b_elems, [y] * info.c_elems)
        for v in d:
            y = b.fadd(y, v)
    b.store(y, b.gep(out, [tid], source_etype=F32), align=4)
    b.ret_void()
    return m


def build_pressure_kernel(t: GpuTarget, live_values: int, block_threads: int, lds_bytes: int = 0) -> ir.Module:
    """``live_values`` floats loaded, held across a barrier, then stored (docs/targets/amdgpu.md §4.1)."""
    m = t.new_module("pressure")
    g = t.global_ptr_type
    fn = t.declare_kernel(m, "pressure", [g, g], block_threads)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    inp, out = fn.args
    tid = t.thread_id(b)
    values = []
    for i in range(live_values):
        idx = b.add(tid, ir.Constant(I32, i * block_threads))
        values.append(b.load(b.gep(inp, [idx], source_etype=F32), typ=F32, align=4))
    four = ir.Constant(I32, 4)
    if lds_bytes:  # an LDS round trip, so that the arena is used and survives optimisation
        arena = t.lds_global(m, "arena", lds_bytes, 16)
        b.store(values[0], b.gep(arena, [b.mul(tid, four)], source_etype=I8), align=4)
    t.barrier(b)
    if lds_bytes:
        other = b.load(b.gep(arena, [b.mul(b.xor(tid, ir.Constant(I32, 1)), four)], source_etype=I8), typ=F32)
        values[0] = b.fadd(values[0], other)
    for i, v in enumerate(values):
        idx = b.add(tid, ir.Constant(I32, i * block_threads))
        b.store(v, b.gep(out, [idx], source_etype=F32), align=4)
    b.ret_void()
    return m

