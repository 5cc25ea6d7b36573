"""NvptxTarget on an NVIDIA GPU: the PTX it emits runs and computes what the API promises.

Needs CuPy and a GPU (skipped otherwise). Host-side NumPy recomputes every result from the
lane formulas of docs/targets/matrix-layouts.md §4, so these check the target's operand packing, the
ldmatrix row mapping, shuffles, dynamic shared memory above 48 KiB, cp.async and exp2.
"""

from __future__ import annotations

import numpy as np
import pytest

from tiledsl.backend_nvptx import NvptxCompiledModule, NvptxTarget
from tiledsl.llvm import ir
from tiledsl.llvm.irgen import F16, F32, I8, I16, I32
from tiledsl.llvm.target_base import operand_type
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu

cp = require_cuda()

ARCH = "sm_80"  # runs on sm_80 and later, the H100 included
WARP = 32


def _c(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _launch(c: NvptxCompiledModule, name: str, block: int, *args) -> None:
    module = cp.cuda.function.Module()
    module.load(c.ptx.encode())
    fn = module.get_function(name)
    if c.dynamic_lds_bytes > 48 * 1024:  # above 48 KiB a kernel must opt in
        attr = getattr(cp.cuda.driver, "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", 8)
        cp.cuda.driver.funcSetAttribute(fn.ptr, attr, c.dynamic_lds_bytes)
    fn((1,), (block,), args, shared_mem=c.dynamic_lds_bytes)
    cp.cuda.runtime.deviceSynchronize()


def _kernel(t: NvptxTarget, name: str, nargs: int, block: int):
    m = t.new_module(name)
    fn = t.declare_kernel(m, name, [t.global_ptr_type] * nargs, block)
    return m, fn, ir.IRBuilder(fn.append_basic_block())


def _elem(b: ir.IRBuilder, base: ir.Value, index: ir.Value, ty: ir.Type) -> ir.Value:
    return b.gep(base, [index], source_etype=ty)


def test_shuffles_lane_and_wave_ids():
    t = NvptxTarget(ARCH)
    block = 128
    m, fn, b = _kernel(t, "xlane", 3, block)
    x_in, h_in, out = fn.args
    tid = t.thread_id(b)
    x = b.load(_elem(b, x_in, tid, F32), typ=F32)
    h = b.load(_elem(b, h_in, tid, F16), typ=F16)
    results = [t.shuffle_xor(b, x, 1), t.shuffle_xor(b, x, 2), t.shuffle_xor(b, x, 16), t.shuffle_idx(b, x, 5),
               t.shuffle_idx(b, x, b.xor(t.lane_id(b), _c(7))), b.fpext(t.shuffle_xor(b, h, 4), F32),
               b.uitofp(t.lane_id(b), F32), b.uitofp(t.wave_id(b), F32)]
    for k, r in enumerate(results):
        b.store(r, _elem(b, out, b.add(tid, _c(k * block)), F32))
    b.ret_void()
    x = np.arange(block, dtype=np.float32) * 1.5
    h = (np.arange(block) % 97).astype(np.float16)
    out = cp.zeros(8 * block, dtype=cp.float32)
    _launch(t.compile(m), "xlane", block, cp.asarray(x), cp.asarray(h), out)
    got = out.get().reshape(8, block)
    tid = np.arange(block)
    lane, warp = tid % WARP, tid // WARP
    np.testing.assert_array_equal(got[0], x[tid ^ 1])
    np.testing.assert_array_equal(got[1], x[tid ^ 2])
    np.testing.assert_array_equal(got[2], x[tid ^ 16])
    np.testing.assert_array_equal(got[3], x[warp * WARP + 5])
    np.testing.assert_array_equal(got[4], x[warp * WARP + (lane ^ 7)])
    np.testing.assert_array_equal(got[5], h[tid ^ 4].astype(np.float32))
    np.testing.assert_array_equal(got[6], lane)
    np.testing.assert_array_equal(got[7], warp)


def test_dynamic_shared_arena_above_48k_barrier_and_exp2():
    t = NvptxTarget(ARCH)
    block, nbytes = 256, 96 * 1024
    m, fn, b = _kernel(t, "dyn_shared", 2, block)
    x_in, out = fn.args
    arena = t.lds_global(m, "arena", nbytes, 16)
    tid = t.thread_id(b)
    x = b.load(_elem(b, x_in, tid, F32), typ=F32)
    top = b.add(b.mul(tid, _c(4)), _c(nbytes - 4 * block))  # the last KiB: past 48 KiB
    b.store(x, _elem(b, arena, top, I8), align=4)
    t.barrier(b)
    nxt = b.add(b.mul(b.and_(b.add(tid, _c(1)), _c(block - 1)), _c(4)), _c(nbytes - 4 * block))
    y = b.load(_elem(b, arena, nxt, I8), typ=F32, align=4)
    b.store(t.exp2(b, y), _elem(b, out, tid, F32))
    b.ret_void()
    c = t.compile(m)
    assert c.dynamic_lds_bytes == nbytes
    x = np.linspace(-20, 20, block, dtype=np.float32)
    out = cp.zeros(block, dtype=cp.float32)
    _launch(c, "dyn_shared", block, cp.asarray(x), out)
    np.testing.assert_allclose(out.get(), np.exp2(np.roll(x, -1).astype(np.float64)), rtol=1e-6)


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, round to nearest even."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _bf16_value(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("instr", ["mma_m16n8k16_f16", "mma_m16n8k16_bf16"])
def test_mma_fragments_in_reference_order(instr):
    """Each lane passes its A/B/C scalars in matrix-layouts.md §4 order; D comes back in C's order."""
    t = NvptxTarget(ARCH)
    info = t.matrix_info(instr)
    m, fn, b = _kernel(t, "mma", 4, WARP)
    a_in, b_in, c_in, d_out = fn.args
    lane = t.thread_id(b)
    ety = operand_type(info)

    def frag(base, count, ty):
        return [b.load(_elem(b, base, b.add(b.mul(lane, _c(count)), _c(e)), ty), typ=ty) for e in range(count)]

    d = t.matrix_op(b, instr, frag(a_in, 8, ety), frag(b_in, 4, ety), frag(c_in, 4, F32))
    for r, v in enumerate(d):
        b.store(v, _elem(b, d_out, b.add(b.mul(lane, _c(4)), _c(r)), F32))
    b.ret_void()

    rng = np.random.default_rng(0)
    a, bm, c = rng.standard_normal((16, 16)), rng.standard_normal((16, 8)), rng.standard_normal((16, 8))
    lanes = np.arange(WARP)
    g, tq = lanes // 4, lanes % 4
    e8, e4 = np.arange(8), np.arange(4)
    a_rows = g[:, None] + 8 * ((e8[None, :] // 2) % 2)
    a_cols = 2 * tq[:, None] + e8[None, :] % 2 + 8 * (e8[None, :] // 4)
    b_rows = 2 * tq[:, None] + e4[None, :] % 2 + 8 * (e4[None, :] // 2)
    c_rows, c_cols = g[:, None] + 8 * (e4[None, :] // 2), 2 * tq[:, None] + e4[None, :] % 2
    if info.in_dtype == "f16":
        a_dev, b_dev = a.astype(np.float16), bm.astype(np.float16)
        a_val, b_val = a_dev.astype(np.float64), b_dev.astype(np.float64)
    else:
        a_dev, b_dev = _bf16_bits(a), _bf16_bits(bm)
        a_val, b_val = _bf16_value(a_dev).astype(np.float64), _bf16_value(b_dev).astype(np.float64)
    a_frag = a_dev[a_rows, a_cols]
    b_frag = b_dev[b_rows, np.broadcast_to(g[:, None], b_rows.shape)]
    c_frag = c.astype(np.float32)[c_rows, c_cols]
    d_dev = cp.zeros(WARP * 4, dtype=cp.float32)
    _launch(t.compile(m), "mma", WARP, cp.asarray(a_frag), cp.asarray(b_frag), cp.asarray(c_frag), d_dev)
    d = np.zeros((16, 8))
    d[c_rows, c_cols] = d_dev.get().reshape(WARP, 4)
    np.testing.assert_allclose(d, a_val @ b_val + c.astype(np.float32), atol=1e-4)


@pytest.mark.parametrize("trans", [False, True])
def test_ldmatrix_row_addresses_and_cp_async(trans):
    """Four 8x8 b16 tiles copied with cp.async, then ldmatrix.x4: lane 8i+r gives row r of tile i."""
    t = NvptxTarget(ARCH)
    m, fn, b = _kernel(t, "ldm", 2, WARP)
    src, out = fn.args
    arena = t.lds_global(m, "arena", 512, 16)
    lane = t.thread_id(b)
    row_bytes = b.mul(lane, _c(16))  # tile i row r is row 8i+r of a 32x8 matrix: 16 bytes each
    t.cp_async_copy16(b, _elem(b, arena, row_bytes, I8), _elem(b, src, row_bytes, I8))
    t.cp_async_commit(b)
    t.cp_async_wait(b, 0)
    t.barrier(b)
    regs = t.ldmatrix(b, _elem(b, arena, row_bytes, I8), 4, trans=trans)
    for i, r in enumerate(regs):
        b.store(r, _elem(b, out, b.add(b.mul(lane, _c(4)), _c(i)), I32))
    b.ret_void()
    values = np.arange(32 * 8, dtype=np.uint16)
    out = cp.zeros(WARP * 4, dtype=cp.uint32)
    _launch(t.compile(m), "ldm", WARP, cp.asarray(values), out)
    got = out.get().reshape(WARP, 4)
    tiles = values.reshape(4, 8, 8)
    lanes = np.arange(WARP)
    for i in range(4):
        tile = tiles[i].T if trans else tiles[i]
        lo, hi = tile[lanes // 4, 2 * (lanes % 4)], tile[lanes // 4, 2 * (lanes % 4) + 1]
        np.testing.assert_array_equal(got[:, i], lo.astype(np.uint32) | hi.astype(np.uint32) << 16)


def test_i16_shuffle_idx():
    t = NvptxTarget(ARCH)
    m, fn, b = _kernel(t, "i16", 2, WARP)
    src, out = fn.args
    lane = t.thread_id(b)
    v = b.load(_elem(b, src, lane, I16), typ=I16)
    b.store(t.shuffle_idx(b, v, 31), _elem(b, out, lane, I16))
    b.ret_void()
    values = (np.arange(WARP) * 1000).astype(np.int16)
    out = cp.zeros(WARP, dtype=cp.int16)
    _launch(t.compile(m), "i16", WARP, cp.asarray(values), out)
    np.testing.assert_array_equal(out.get(), np.full(WARP, values[31]))
