"""Lowering of the layout queries ``coord``, ``valid`` and ``held_by_wave``.

The thread interpreter defines what a query holds: a table ``[threads, regs]`` built from the
layout's index map. The lowering asks it for that table and looks for the cheapest code that
reproduces it exactly, checked over every thread (the tables are small):

1. a constant per register;
2. ints: a form linear in the bits of the thread id, ``q[t, r] = C[r] + Σ_i c_i·bit_i(t)``.
   With ``t = wave·W + lane`` that is ``A[wave] + B[lane] + C[r]``, A and B linear in the bits
   of the wave and lane ids: the C[r] become constants and the per-thread part a few
   shift/and/mul of the ids (the wave part from the wave-uniform id: SGPRs on AMD), which LLVM
   folds into the address arithmetic;
3. ints: the same form on the slots that hold an element only, ``select``-ed with the
   ``valid`` mask to the interpreter's 0 in empty slots;
4. bools: a bit test per register, ``q[t, r] = (t & M_r) == V_r`` (thresholds at powers of
   two, "first owner" masks of replicated layouts, the waves holding an element);
5. anything else: a constant table indexed by thread id (internal, in global memory).

``KernelLowering.stats`` counts which form each query took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.interp.thread import HANDLERS
from tiledsl.ir.core import Op
from tiledsl.llvm.irgen import I1, I16, I32
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering, lowers

BitTest = tuple[int, int]  # (mask, value) over the bits of the thread id


@dataclass(frozen=True)
class BitLinear:
    """``q[t, r] = offsets[r] + Σ_i coef[i]·((t >> i) & 1)``."""

    offsets: tuple[int, ...]
    coef: tuple[int, ...]


def _thread_bits(threads: int) -> int:
    return max(1, (threads - 1).bit_length())


def fit_bit_linear(q: np.ndarray, care: np.ndarray | None = None) -> BitLinear | None:
    """The bit-linear form of ``q`` ``[threads, regs]`` on the slots where ``care`` (all slots when
    None), or None when there is none."""
    q = np.asarray(q, dtype=np.int64)
    threads, regs = q.shape
    care = np.ones(q.shape, dtype=bool) if care is None else care
    ids = np.arange(threads)
    coef = []
    for i in range(_thread_bits(threads)):
        lo = ids[((ids >> i) & 1) == 0]
        lo = lo[(lo | (1 << i)) < threads]
        hi = lo | (1 << i)
        both = care[lo] & care[hi]
        diffs = (q[hi] - q[lo])[both]
        coef.append(int(diffs[0]) if diffs.size else 0)
    bits = (ids[:, None] >> np.arange(len(coef))[None, :]) & 1
    rest = q - (bits @ np.asarray(coef, dtype=np.int64))[:, None]
    first = np.argmax(care, axis=0)
    offsets = np.where(care.any(axis=0), rest[first, np.arange(regs)], 0)
    if not ((rest == offsets[None, :]) | ~care).all():
        return None
    return BitLinear(tuple(int(o) for o in offsets), tuple(coef))


def fit_bit_tests(v: np.ndarray) -> list[bool | BitTest] | None:
    """Per register: a constant, or the (mask, value) with ``v[t, r] == ((t & mask) == value)``
    (the bits on which all threads where it holds agree); None when some register has neither."""
    threads, regs = v.shape
    ids = np.arange(threads)
    out: list[bool | BitTest] = []
    for r in range(regs):
        col = v[:, r]
        if col.all() or not col.any():
            out.append(bool(col[0]))
            continue
        on = ids[col]
        mask = value = 0
        for i in range(_thread_bits(threads)):
            bit = (on >> i) & 1
            if (bit == bit[0]).all():
                mask |= 1 << i
                value |= int(bit[0]) << i
        if not np.array_equal(col, (ids & mask) == value):
            return None
        out.append((mask, value))
    return out


# ---------------------------------------------------------------- emission

def _lane_bits(lw: KernelLowering) -> int:
    w = lw.ctx.target.wave_size
    if w & (w - 1):
        raise NotImplementedError(f"a wave of {w} lanes: layout queries need a power-of-two wave")
    return w.bit_length() - 1


def _i32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def thread_term(lw: KernelLowering, coef: tuple[int, ...]) -> ir.Value | None:
    """``Σ_i coef[i]·bit_i(tid)`` as code, or None when every coefficient is 0.

    Runs of bits whose coefficients double (a field of the id scaled by one factor) become one
    ``((id >> s) & mask) * c``; lane bits come from the thread id, wave bits from the wave id.
    """
    b = lw.b
    lb = _lane_bits(lw)
    terms: list[ir.Value] = []
    for src, first, last in ((lw.tid, 0, lb), (lw.wave, lb, len(coef))):
        i = first
        while i < min(last, len(coef)):
            if coef[i] == 0:
                i += 1
                continue
            j = i + 1
            while j < min(last, len(coef)) and coef[j] == 2 * coef[j - 1]:
                j += 1
            field = b.and_(b.lshr(src, _i32(i - first)) if i > first else src, _i32((1 << (j - i)) - 1))
            terms.append(field if coef[i] == 1 else b.mul(field, _i32(coef[i])))
            i = j
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = b.add(total, t)
    return total


def emit_bit_linear(lw: KernelLowering, form: BitLinear) -> list[ir.Value]:
    base = thread_term(lw, form.coef)
    if base is None:
        return [_i32(o) for o in form.offsets]
    # One add per distinct offset: registers often share one (a row index for every column).
    sums: dict[int, ir.Value] = {0: base}
    for o in form.offsets:
        if o not in sums:
            sums[o] = lw.b.add(base, _i32(o))
    return [sums[o] for o in form.offsets]


def emit_bit_tests(lw: KernelLowering, tests: list[bool | BitTest]) -> list[ir.Value]:
    b = lw.b
    lb = _lane_bits(lw)
    lane_mask = (1 << lb) - 1
    out: list[ir.Value] = []
    for t in tests:
        if isinstance(t, bool):
            out.append(ir.Constant(I1, int(t)))
            continue
        mask, value = t
        conds = []
        if mask & lane_mask:
            conds.append(b.icmp_unsigned("==", b.and_(lw.tid, _i32(mask & lane_mask)), _i32(value & lane_mask)))
        if mask >> lb:
            # From the wave id: a wave-uniform test (a scalar compare on AMD).
            conds.append(b.icmp_unsigned("==", b.and_(lw.wave, _i32(mask >> lb)), _i32(value >> lb)))
        cond = conds[0]
        for c in conds[1:]:
            cond = b.and_(cond, c)
        out.append(cond)
    return out


def _table(lw: KernelLowering, elem: ir.Type, values: np.ndarray) -> ir.GlobalVariable:
    ty = ir.ArrayType(elem, values.size)
    gv = ir.GlobalVariable(lw.module, ty, lw.table_name(), addrspace=lw.target.GLOBAL_ADDRSPACE)
    gv.linkage = "internal"
    gv.global_constant = True
    gv.initializer = ir.Constant(ty, [ir.Constant(elem, int(x)) for x in values.reshape(-1)])
    gv.align = 4
    gv.type = lw.target.global_ptr_type  # opaque whatever llvmlite's pointer mode (llvm_init)
    return gv


def emit_int_table(lw: KernelLowering, q: np.ndarray) -> list[ir.Value]:
    """Registers read from a ``[threads, regs]`` table (i16 entries when they fit)."""
    b = lw.b
    regs = q.shape[1]
    narrow = bool((q >= -(1 << 15)).all() and (q < (1 << 15)).all())
    elem = I16 if narrow else I32
    gv = _table(lw, elem, q.astype(np.int64) & (0xFFFF if narrow else 0xFFFFFFFF))
    row = b.mul(lw.tid, _i32(regs))
    out = []
    for r in range(regs):
        v = b.load(b.gep(gv, [b.add(row, _i32(r))], source_etype=elem), typ=elem, align=elem.width // 8)
        out.append(b.sext(v, I32) if narrow else v)
    return out


def emit_bool_table(lw: KernelLowering, v: np.ndarray) -> list[ir.Value]:
    """Registers read from one bit per (thread, register), packed into i32 words per thread."""
    b = lw.b
    threads, regs = v.shape
    words = (regs + 31) // 32
    packed = np.zeros((threads, words), dtype=np.int64)
    for r in range(regs):
        packed[:, r // 32] |= v[:, r].astype(np.int64) << (r % 32)
    gv = _table(lw, I32, packed)
    row = b.mul(lw.tid, _i32(words))
    loaded = [b.load(b.gep(gv, [b.add(row, _i32(k))], source_etype=I32), typ=I32, align=4) for k in range(words)]
    return [b.trunc(b.lshr(loaded[r // 32], _i32(r % 32)), I1) for r in range(regs)]


# ---------------------------------------------------------------- the queries

def _table_of(lw: KernelLowering, op: Op) -> np.ndarray:
    """What the interpreter says the query holds: ``[threads, regs]``."""
    return np.asarray(HANDLERS[op.name](lw.interpreter(), op, [])[0])


def lower_bools(lw: KernelLowering, v: np.ndarray, what: str) -> list[ir.Value]:
    tests = fit_bit_tests(v)
    if tests is not None:
        lw.stats[f"{what}:bit-test"] += 1
        return emit_bit_tests(lw, tests)
    lw.stats[f"{what}:table"] += 1
    return emit_bool_table(lw, v)


def lower_ints(lw: KernelLowering, q: np.ndarray, valid: np.ndarray, what: str) -> list[ir.Value]:
    """Registers holding the int table ``q`` ``[threads, regs]`` (0 where not ``valid``)."""
    q = np.asarray(q, dtype=np.int64)
    form = fit_bit_linear(q)
    if form is not None:
        lw.stats[f"{what}:linear"] += 1
        return emit_bit_linear(lw, form)
    form = fit_bit_linear(q, valid)
    if form is None:
        lw.stats[f"{what}:table"] += 1
        return emit_int_table(lw, q)
    lw.stats[f"{what}:linear-on-valid"] += 1
    values = emit_bit_linear(lw, form)
    masks = lower_bools(lw, valid, "valid")
    zero = _i32(0)
    out = []
    for v, m in zip(values, masks):
        if isinstance(m, ir.Constant):
            out.append(v if m.constant else zero)
        else:
            out.append(lw.b.select(m, v, zero))
    return out


@lowers("coord")
def _coord(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    q = _table_of(lw, op)
    valid = lw.interpreter().layout(op).valid().reshape(q.shape)
    return [lower_ints(lw, q, valid, "coord")]


@lowers("valid", "held_by_wave")
def _bool_query(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [lower_bools(lw, _table_of(lw, op).astype(bool), op.name)]
