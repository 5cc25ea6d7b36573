"""Lowering of ``mma_tile`` (matrix instructions, or FMA chains) and ``lds_dot``.

Which register feeds which instruction is worked out from the layouts' index maps, once per
op and independently of the thread, and checked over every wave and lane before any code is
emitted: a register order that disagreed with the hardware fragment layout would compute a
wrong product silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.ir.core import Op
from tiledsl.ir.types import DTYPE_BYTES
from tiledsl.layout import Layout, MmaSpec, parse_layout_spec
from tiledsl.layout.mma import accumulator_unit, split_dim
from tiledsl.llvm.irgen import F16, F32, I8, I16, I32, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering, llvm_type, loaded, lowers, to_f32
from tiledsl.llvm.lower_layout import lower_bools, lower_ints
from tiledsl.targets import MatrixInstr
from tiledsl.thread.context import ThreadContext


@dataclass(frozen=True)
class MatrixCall:
    """One matrix instruction: the registers passed as its A, B and C operands, in the element
    order of docs/targets/matrix-layouts.md §1. ``a_from_b``: the hardware A operand comes from
    the tile's B registers (and B from A), for ``swap=true`` layouts."""

    a_regs: tuple[int, ...]
    b_regs: tuple[int, ...]
    c_regs: tuple[int, ...]
    a_from_b: bool


def tile_layouts(ctx: ThreadContext, attrs: dict[str, Any]) -> tuple[Layout, Layout, Layout]:
    m, n, k, dtype = attrs["m"], attrs["n"], attrs["k"], attrs["dtype"]
    return (ctx.bind(attrs["a_layout"], (m, k), dtype), ctx.bind(attrs["b_layout"], (k, n), dtype),
            ctx.bind(attrs["c_layout"], (m, n), "f32"))


def matrix_plan(ctx: ThreadContext, attrs: dict[str, Any]) -> list[MatrixCall]:
    """The instructions of an ``mma_tile``, k-step outermost (consecutive instructions then
    update different accumulators and do not wait on each other), verified by ``check_plan``.

    Register orders are those of ``tiledsl.layout.mma``: accumulator (rep M, rep N, C reg),
    operand A (rep M, k-step, element), operand B (rep N, k-step, element).
    """
    instr = ctx.target.matrix_instr(attrs["instr"])
    if instr is None:
        raise RuntimeError(f"internal: thread IR for {ctx.target.name} names the matrix instruction "
                           f"'{attrs['instr']}', which that target lacks")
    spec = parse_layout_spec(attrs["c_layout"])
    if not isinstance(spec, MmaSpec):
        raise TypeError(f"internal: mma_tile accumulator layout {spec} is not an mma layout")
    swap = bool(spec.swap)
    um, un = accumulator_unit(spec, instr)
    wm, wn = spec.waves
    reps_m, reps_n = split_dim(attrs["m"], wm, um)[1], split_dim(attrs["n"], wn, un)[1]
    ksteps = attrs["k"] // instr.k
    ea, eb = (instr.b_elems, instr.a_elems) if swap else (instr.a_elems, instr.b_elems)
    ec = instr.c_elems
    calls = []
    for s in range(ksteps):
        for im in range(reps_m):
            for jn in range(reps_n):
                a = tuple(range((im * ksteps + s) * ea, (im * ksteps + s + 1) * ea))
                b = tuple(range((jn * ksteps + s) * eb, (jn * ksteps + s + 1) * eb))
                c = tuple(range((im * reps_n + jn) * ec, (im * reps_n + jn + 1) * ec))
                calls.append(MatrixCall(b if swap else a, a if swap else b, c, swap))
    check_plan(ctx, attrs, instr, calls)
    return calls


def plan_of(lw: KernelLowering, op: Op) -> list[MatrixCall]:
    """``matrix_plan`` of an ``mma_tile``, worked out (and checked) once per op."""
    if id(op) not in lw.matrix_plans:
        lw.matrix_plans[id(op)] = matrix_plan(lw.ctx, op.attrs)
    return lw.matrix_plans[id(op)]


def check_plan(ctx: ThreadContext, attrs: dict[str, Any], instr: MatrixInstr, calls: list[MatrixCall]) -> None:
    """Every wave and lane passes the instruction the tile elements its fragment layout asks for.

    For each call: the C registers hold one instruction tile at an origin (i0, j0) per wave, in
    the instruction's C order; then the A and B registers must hold that tile's rows/columns at
    the call's k offset in the instruction's A/B orders (transposed for swapped layouts).
    """
    la, lb, lc = tile_layouts(ctx, attrs)
    am, bm, cm = la.index_map(), lb.index_map(), lc.index_map()
    hw_a, hw_b, hw_c = instr.a_map(), instr.b_map(), instr.c_map()
    seen = np.zeros(lc.regs, dtype=int)
    k_of = {}
    for call in calls:
        # k offset: the calls of one (rep M, rep N) run over the k-steps in order.
        key = call.c_regs
        k0 = k_of.get(key, 0)
        k_of[key] = k0 + instr.k
        if k0 == 0:
            seen[list(call.c_regs)] += 1
        cc = cm[:, :, list(call.c_regs), :]                       # [W, L, EC, 2] tile (i, j)
        unit = hw_c[..., ::-1] if call.a_from_b else hw_c         # instruction (m, n) in tile order
        origin = cc[:, :1, :1, :] - unit[None, :1, :1, :]
        ok = (cc == origin + unit[None]).all()
        i0, j0 = origin[..., 0], origin[..., 1]                   # [W, 1, 1]
        # Hardware A element (m, kk), hardware B element (kk, n) as tile coordinates.
        if not call.a_from_b:
            want_a = np.stack(np.broadcast_arrays(i0 + hw_a[None, ..., 0], k0 + hw_a[None, ..., 1]), -1)
            want_b = np.stack(np.broadcast_arrays(k0 + hw_b[None, ..., 0], j0 + hw_b[None, ..., 1]), -1)
            got_a, got_b = am[:, :, list(call.a_regs), :], bm[:, :, list(call.b_regs), :]
        else:   # hardware A = tile Bᵀ (its m runs along the tile's columns), hardware B = tile Aᵀ
            want_a = np.stack(np.broadcast_arrays(k0 + hw_a[None, ..., 1], j0 + hw_a[None, ..., 0]), -1)
            want_b = np.stack(np.broadcast_arrays(i0 + hw_b[None, ..., 1], k0 + hw_b[None, ..., 0]), -1)
            got_a, got_b = bm[:, :, list(call.a_regs), :], am[:, :, list(call.b_regs), :]
        ok = ok and np.array_equal(got_a, want_a) and np.array_equal(got_b, want_b)
        if not ok:
            raise RuntimeError(f"internal: the registers of mma_tile {attrs['c_layout']} "
                               f"{attrs['m']}x{attrs['n']}x{attrs['k']} do not match the fragment layout of "
                               f"{instr.name} (C registers {call.c_regs})")
    if (seen != 1).any() or set(k_of.values()) != {attrs["k"]}:
        raise RuntimeError(f"internal: mma_tile {attrs['c_layout']} does not cover its accumulator once with "
                           f"the whole of k={attrs['k']}")


@dataclass(frozen=True)
class FmaPlan:
    """For accumulator register r and each k: the A and B registers of the same thread that hold
    (i, k) and (k, j); ``valid[t, r]``: the slots that hold an element (others are left alone)."""

    a_regs: np.ndarray   # [C regs, K]
    b_regs: np.ndarray   # [C regs, K]
    valid: np.ndarray    # [threads, C regs]


def fma_plan(ctx: ThreadContext, attrs: dict[str, Any]) -> FmaPlan:
    """Found on one thread holding each accumulator register and checked on every thread."""
    la, lb, lc = tile_layouts(ctx, attrs)
    m, n, k = attrs["m"], attrs["n"], attrs["k"]
    threads = ctx.threads
    a = la.index_map().reshape(threads, la.regs, 2)
    b = lb.index_map().reshape(threads, lb.regs, 2)
    c = lc.index_map().reshape(threads, lc.regs, 2)
    a_lin = np.where(a[..., 0] >= 0, a[..., 0] * k + a[..., 1], -1)        # element i*K + kk
    b_lin = np.where(b[..., 0] >= 0, b[..., 0] * n + b[..., 1], -1)        # element kk*N + j
    valid = c[..., 0] >= 0
    ks = np.arange(k)
    a_regs = np.zeros((lc.regs, k), dtype=np.int64)
    b_regs = np.zeros((lc.regs, k), dtype=np.int64)
    for r in np.nonzero(valid.any(axis=0))[0]:
        t = int(np.argmax(valid[:, r]))
        i, j = c[t, r]
        a_regs[r] = _positions(a_lin[t], i * k + ks)
        b_regs[r] = _positions(b_lin[t], ks * n + j)
    want_a = c[..., 0][:, :, None] * k + ks[None, None, :]
    want_b = ks[None, None, :] * n + c[..., 1][:, :, None]
    rows = np.arange(threads)[:, None, None]
    ok = ((a_lin[rows, a_regs[None]] == want_a) & (b_lin[rows, b_regs[None]] == want_b)) | ~valid[:, :, None]
    if not ok.all() or (a_regs < 0).any() or (b_regs < 0).any():
        raise RuntimeError(f"internal: mma_tile {attrs['c_layout']} {m}x{n}x{k}: the A/B registers a thread needs "
                           f"for its accumulators are not in the same registers in every thread")
    return FmaPlan(a_regs, b_regs, valid)


def _positions(lin: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each wanted element, the first register of ``lin`` holding it (-1 if none)."""
    first = {}
    for reg in range(len(lin) - 1, -1, -1):
        if lin[reg] >= 0:
            first[int(lin[reg])] = reg
    return np.array([first.get(int(w), -1) for w in wanted], dtype=np.int64)


def _i32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _fmuladd(b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
    # fmuladd, not fma: one rounding where the target fuses (v_fmac_f32, fma.rn.f32), IEEE mul+add
    # elsewhere; the interpreter's matmul leaves the order and fusion unspecified anyway.
    # i32 accumulators (i8/u8 operands): a wrapping multiply-add.
    if acc.type == I32:
        return b.add(b.mul(x, y), acc)
    return call_intrinsic(b, "llvm.fmuladd.f32", F32, [x, y, acc])


def _widen(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """A dot operand element as its accumulator's type: f32 (exact), or i32 for i8/u8."""
    if dtype == "i8":
        return b.sext(v, I32)
    if dtype == "u8":
        return b.zext(v, I32)
    return to_f32(b, v, dtype)


@lowers("mma_tile", lazy_operands=True)
def _mma_tile(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """A and B may be :class:`LazyRegs`: reading them call by call, in plan order (k-step
    outermost), puts each operand load just before its first matrix instruction."""
    a, bregs, c = args
    c = loaded(c)
    if op.attrs["instr"].startswith("fma"):
        return [_fma_tile(lw, op, a, bregs, c)]
    if lw.target.has_wgmma:
        from tiledsl.llvm import wgmma  # it builds on this module's plans
        steps = wgmma.plan(lw, op)
        if steps is not None:
            return [wgmma.emit(lw, op, steps, a, c)]
    out = list(c)
    calls = plan_of(lw, op)
    dtype = op.attrs["dtype"]
    if lw.target.matrix_info(op.attrs["instr"]).in_dtype != dtype:
        # fp8 on an f16 instruction (Target.matrix_variant): each operand register widened exactly.
        a, bregs = _WidenedRegs(lw.b, a, dtype), _WidenedRegs(lw.b, bregs, dtype)
    for call in calls:
        hw_a, hw_b = (bregs, a) if call.a_from_b else (a, bregs)
        d = lw.target.matrix_op(lw.b, op.attrs["instr"], [hw_a[r] for r in call.a_regs],
                                [hw_b[r] for r in call.b_regs], [out[r] for r in call.c_regs])
        for r, v in zip(call.c_regs, d):
            out[r] = v
    lw.stats["matrix"] += len(calls)
    return [out]


class _WidenedRegs:
    """fp8 operand registers read as f16, each widened once at its first use (so lazy operands
    still load next to their first instruction). Every e4m3/e5m2 value is an f16: exact."""

    def __init__(self, b: ir.IRBuilder, regs: Sequence[ir.Value], dtype: str) -> None:
        self.b, self.regs, self.dtype = b, regs, dtype
        self.cache: dict[int, ir.Value] = {}

    def __getitem__(self, r: int) -> ir.Value:
        if r not in self.cache:
            self.cache[r] = fp8_to_f16(self.b, self.regs[r], self.dtype)
        return self.cache[r]


def fp8_to_f16(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """An fp8 value (its bits, i8) as the f16 of the same value, exactly.

    e5m2 is f16's upper byte (same exponent bias and specials). e4m3 (bias 7 against f16's 15):
    a normal number moves its exponent and mantissa fields up 7 bits and adds 8 to the exponent;
    a subnormal m·2^-9 (m < 8) is a normal f16, made as f16(m)·2^-9 (no f16 subnormal on the way,
    so a target that flushes them changes nothing); |bits| = 0x7F is NaN.
    """
    x = b.zext(v, I16)
    if dtype == "f8e5m2":
        return b.bitcast(b.shl(x, ir.Constant(I16, 8)), F16)

    def c(n: int) -> ir.Constant:
        return ir.Constant(I16, n)

    mag = b.and_(x, c(0x7F))
    sign = b.shl(b.and_(x, c(0x80)), c(8))
    normal = b.add(b.shl(mag, c(7)), c(8 << 10))
    small = b.fmul(b.uitofp(b.and_(x, c(7)), F16), ir.Constant(F16, 2.0 ** -9))
    bits = b.select(b.icmp_unsigned("<", mag, c(8)), b.bitcast(small, I16), normal)
    bits = b.select(b.icmp_unsigned("==", mag, c(0x7F)), c(0x7E00), bits)
    return b.bitcast(b.or_(bits, sign), F16)


def _fma_tile(lw: KernelLowering, op: Op, a: Sequence[ir.Value], bregs: Sequence[ir.Value],
              c: list[ir.Value]) -> list[ir.Value]:
    """``c[r] += Σ_k a·b`` as one fmuladd chain per accumulator register, k outermost; each
    operand register is read (and widened) at its first use, so lazy operands load k by k."""
    b = lw.b
    dtype = op.attrs["dtype"]
    plan = fma_plan(lw.ctx, op.attrs)
    a32: dict[int, ir.Value] = {}
    b32: dict[int, ir.Value] = {}

    def widened(regs: Sequence[ir.Value], cache: dict[int, ir.Value], r: int) -> ir.Value:
        if r not in cache:
            cache[r] = _widen(b, regs[r], dtype)
        return cache[r]

    live = [r for r in range(len(c)) if plan.valid[:, r].any()]
    acc = list(c)
    for kk in range(op.attrs["k"]):
        for r in live:
            x = widened(a, a32, int(plan.a_regs[r, kk]))
            y = widened(bregs, b32, int(plan.b_regs[r, kk]))
            acc[r] = _fmuladd(b, x, y, acc[r])
    partial = [r for r in live if not plan.valid[:, r].all()]
    if partial:
        # Slots that hold nothing in some threads keep their value there, as in the interpreter.
        masks = lower_bools(lw, plan.valid[:, partial], "valid")
        for r, m in zip(partial, masks):
            acc[r] = b.select(m, acc[r], c[r])
    lw.stats["fma"] += len(live) * op.attrs["k"]
    return acc


@lowers("lds_dot")
def _lds_dot(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """An LLVM loop over k: per accumulator register, LDS loads of A[i, k] and B[k, j] at the
    op's offsets and strides and an fmuladd into a partial sum (a phi); then ``c + sum`` in
    the slots that hold an element, as the interpreter adds its row·column sums."""
    (c,) = args
    b = lw.b
    lay = lw.ctx.bind(op.attrs["c_layout"], tuple(op.attrs["shape"]), "f32")
    threads = lw.ctx.threads
    coords = lay.index_map().reshape(threads, lay.regs, 2)
    valid = coords[..., 0] >= 0
    rows = lower_ints(lw, np.maximum(coords[..., 0], 0), valid, "lds_dot")
    cols = lower_ints(lw, np.maximum(coords[..., 1], 0), valid, "lds_dot")
    dtype, k = op.attrs["dtype"], op.attrs["k"]
    if k == 0:
        return [list(c)]
    es = DTYPE_BYTES[dtype]
    elem = llvm_type(dtype)
    (sa0, sa1), (sb0, sb1) = op.attrs["a_strides"], op.attrs["b_strides"]
    a_base = [b.add(_i32(op.attrs["a_offset"]), b.mul(i, _i32(sa0 * es))) for i in rows]
    b_base = [b.add(_i32(op.attrs["b_offset"]), b.mul(j, _i32(sb1 * es))) for j in cols]
    arena = lw.lds_arena()

    pre = b.block
    body = lw.fn.append_basic_block("lds_dot.body")
    done = lw.fn.append_basic_block("lds_dot.end")
    b.branch(body)
    b.position_at_end(body)
    kk = b.phi(I32, "k")
    kk.add_incoming(_i32(0), pre)
    acc_t = I32 if op.result.type.dtype == "i32" else F32
    zero = ir.Constant(acc_t, 0 if acc_t == I32 else 0.0)
    sums = []
    for _ in c:
        phi = b.phi(acc_t)
        phi.add_incoming(zero, pre)
        sums.append(phi)
    a_step, b_step = b.mul(kk, _i32(sa1 * es)), b.mul(kk, _i32(sb0 * es))

    def load(off: ir.Value) -> ir.Value:
        return _widen(b, b.load(b.gep(arena, [off], source_etype=I8), typ=elem, align=es), dtype)

    new = [_fmuladd(b, load(b.add(ab, a_step)), load(b.add(bb, b_step)), s)
           for ab, bb, s in zip(a_base, b_base, sums)]
    nxt = b.add(kk, _i32(1))
    latch = b.block
    kk.add_incoming(nxt, latch)
    for phi, v in zip(sums, new):
        phi.add_incoming(v, latch)
    b.cbranch(b.icmp_signed("<", nxt, _i32(k)), body, done)
    b.position_at_end(done)

    masks = lower_bools(lw, valid, "valid")
    add = b.add if acc_t == I32 else b.fadd
    out = []
    for cv, s, m in zip(c, new, masks):
        if isinstance(m, ir.Constant):
            out.append(add(cv, s) if m.constant else cv)
        else:
            out.append(add(cv, b.select(m, s, zero)))
    lw.stats["lds_dot"] += 1
    return [out]
