"""Per-thread integers known at compile time, and indices that are such an integer plus a
uniform scalar.

A value is *thread-static* when it is computed from ``coord``, ``const``, ``thread_id`` and
``splat`` through element-wise ops only: the thread interpreter evaluates it for every thread
(a ``[threads, regs]`` table, as for the layout queries). When that table is bit-linear
(``lower_layout.fit_bit_linear``), the lowering emits it as one per-thread term shared by all
registers plus a constant per register, instead of the op's arithmetic register by register.

Why: LDS byte offsets are such values (``base + Σ coord_d·stride_d``). Written register by
register, LLVM keeps one loop-invariant VGPR per register group (it does not take the
per-register constants back out of ``(x | c) << s``); as ``T + C[r]`` the constants go into the
``ds_read``/``ds_write`` instruction's offset field and the tile needs one VGPR.

Global indices are ``splat(uniform) + thread-static`` (a row ``n + coord``): ``affine_index``
splits them, so a global address becomes ``base + uniform + zext(per-thread i32) + constant``,
the form that AMDGPU selects as ``global_load v, v_off, s[base] offset:imm`` (one VGPR offset
for all registers, the rest in SGPRs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiledsl.interp.numerics import ELEMENTWISE
from tiledsl.interp.thread import HANDLERS
from tiledsl.ir.core import Op, Value
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering
from tiledsl.llvm.lower_layout import BitLinear, emit_bit_linear, fit_bit_linear, lower_ints

#: Ops whose result is thread-static when their operands are (they read nothing else).
_ROOTS = ("coord", "const", "thread_id")


def _defining_op(v: Value) -> Op | None:
    return v.owner if isinstance(v.owner, Op) else None


def static_table(lw: KernelLowering, v: Value) -> np.ndarray | None:
    """What ``v`` holds in every thread (``[threads, regs]``, or ``[1]`` for a scalar), when it is
    thread-static; None otherwise."""
    key = id(v)
    if key not in lw.static_tables:
        lw.static_tables[key] = _evaluate(lw, v)
    return lw.static_tables[key]


def _evaluate(lw: KernelLowering, v: Value) -> np.ndarray | None:
    op = _defining_op(v)
    if op is None or len(op.results) != 1:
        return None
    if op.name in _ROOTS:
        args: list[np.ndarray] = []
    elif op.name == "splat" or op.name in ELEMENTWISE:
        args = []
        for a in op.operands:
            t = static_table(lw, a)
            if t is None:
                return None
            args.append(t)
    else:
        return None
    return np.asarray(HANDLERS[op.name](lw.interpreter(), op, args)[0])


def _regs_table(lw: KernelLowering, table: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(lw.interpreter().full(table, n), dtype=np.int64)


def lower_static(lw: KernelLowering, op: Op) -> list[ir.Value] | None:
    """The registers of an i32 ``regs`` result as ``T + C[r]`` when the op is thread-static and
    its table bit-linear; None to lower the op as usual."""
    t = op.result.type
    if getattr(t, "dtype", None) != "i32" or not hasattr(t, "n"):
        return None
    table = static_table(lw, op.result)
    if table is None:
        return None
    q = _regs_table(lw, table, t.n)
    form = fit_bit_linear(q)
    if form is not None:
        lw.stats["static-int:linear"] += 1
        return emit_bit_linear(lw, form)
    split = fit_thread_plus_const(q)
    if split is None:
        return None
    lw.stats["static-int:thread+const"] += 1
    (per_thread,) = lower_ints(lw, split[0][:, None], np.ones((len(split[0]), 1), bool), "static-int-thread")
    return [per_thread if c == 0 else lw.b.add(per_thread, ir.Constant(per_thread.type, int(c))) for c in split[1]]


def fit_thread_plus_const(q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T, C)`` with ``q[t, r] == T[t] + C[r]``, or None: a per-thread value that is not
    bit-linear (a swizzled LDS offset) is then computed once and the registers add constants
    (immediate offsets of the accesses)."""
    c = q[0] - q[0, 0]
    t = q[:, 0]
    return (t, c) if np.array_equal(q, t[:, None] + c[None, :]) else None


@dataclass(frozen=True)
class AffineIndex:
    """``index[t, r] = Σ uniform + form(t, r)``: i32 scalars (the same in every thread) plus a
    bit-linear per-thread table."""

    uniform: tuple[ir.Value, ...]
    form: BitLinear


def affine_index(lw: KernelLowering, v: Value, n: int) -> AffineIndex | None:
    """``v`` (``regs<i32, n>``) as uniform scalars plus a bit-linear table, or None."""
    parts = _split(lw, v)
    if parts is None:
        return None
    uniform, table = parts
    form = fit_bit_linear(_regs_table(lw, table, n)) if table is not None else \
        BitLinear((0,) * n, ())
    return None if form is None else AffineIndex(tuple(uniform), form)


def _split(lw: KernelLowering, v: Value) -> tuple[list[ir.Value], np.ndarray | None] | None:
    table = static_table(lw, v)
    if table is not None:
        return [], table
    op = _defining_op(v)
    if op is None:
        return None
    if op.name == "splat" and not hasattr(op.operands[0].type, "n"):
        return [lw.get(op.operands[0])], None
    if op.name == "add":
        a, b = _split(lw, op.operands[0]), _split(lw, op.operands[1])
        if a is None or b is None:
            return None
        tables = [t for t in (a[1], b[1]) if t is not None]
        total = sum(np.asarray(t, dtype=np.int64) for t in tables) if tables else None
        return a[0] + b[0], total
    return None
