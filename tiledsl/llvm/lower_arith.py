"""Lowering of the element-wise ops (every name of ``numerics.ELEMENTWISE``) and ``const``.

Each op applies one scalar function per register (or once, to uniform scalars). Semantics are
``tiledsl.interp.numerics``: f16/bf16 compute in f32 and round once; i32 wraps; ``floordiv``
and ``mod`` floor (Python's sign rules) and give 0 for a zero divisor; float→i32 casts
truncate toward zero and saturate (NaN → 0). IEEE arithmetic throughout, except that
``exp``/``exp2`` use the target's one-instruction ``exp2`` (exp(x) = exp2(x·log2 e)) and
``max``/``min`` are ``llvm.maxnum``/``minnum``: a NaN operand is ignored, as the interpreters'
``np.fmax``/``np.fmin`` ignore it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tiledsl.ir.core import Op
from tiledsl.llvm.irgen import F32, I1, I32, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import (
    FLOAT_DTYPES,
    KernelLowering,
    constant,
    from_f32,
    lowers,
    maxnum,
    minnum,
    per_register,
    result_count,
    to_f32,
)
from tiledsl.llvm.static_ints import lower_static

ScalarFn = Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]
_LOG2E = math.log2(math.e)


def _apply(lw: KernelLowering, op: Op, args: list[Any], fn: ScalarFn) -> list[Any]:
    n = result_count(op)
    static = lower_static(lw, op)
    if static is not None:
        return [static]
    # Registers whose operands are the same LLVM values (a broadcast row, a value per lane that
    # every register of a thread shares) share one result: the functions are pure, and LLVM would
    # merge the copies anyway, but building and printing them was a third of attention's compile.
    done: dict[tuple[Any, ...], ir.Value] = {}
    outs = []
    for regs in per_register(args, n):
        key = tuple(map(_value_key, regs))
        if key not in done:
            done[key] = fn(lw.b, regs)
        outs.append(done[key])
    return [outs if n is not None else outs[0]]


def _value_key(v: ir.Value) -> Any:
    """Equal keys for the same LLVM value: the object, or a scalar constant's type and value
    (constant tiles give each register its own Constant object)."""
    if isinstance(v, ir.Constant) and isinstance(v.constant, (int, float, bool)):
        return (str(v.type), v.constant)
    return id(v)


def _dtype(op: Op, i: int = 0) -> str:
    return op.operands[i].type.dtype


def _float_op(lw: KernelLowering, op: Op, args: list[Any], f: ScalarFn) -> list[Any]:
    """A float op computed in f32 on operands widened from their dtype, rounded once to the
    result's dtype."""
    src, dst = _dtype(op), op.result.type.dtype
    return _apply(lw, op, args, lambda b, xs: from_f32(b, f(b, [to_f32(b, x, src) for x in xs]), dst))


# ---------------------------------------------------------------- arithmetic

_FLOAT_BINARY: dict[str, Callable[..., ir.Value]] = {
    "add": lambda b, x, y, flags=(): b.fadd(x, y, flags=flags),
    "sub": lambda b, x, y, flags=(): b.fsub(x, y, flags=flags),
    "mul": lambda b, x, y, flags=(): b.fmul(x, y, flags=flags),
    "div": lambda b, x, y, flags=(): b.fdiv(x, y),
    "max": lambda b, x, y, flags=(): maxnum(b, x, y),
    "min": lambda b, x, y, flags=(): minnum(b, x, y),
}
# f32 arithmetic carries ``contract``: a multiply feeding an add may fuse into one FMA (one
# rounding instead of two), as nvcc and Triton allow by default; FA2's ``s * scale - m`` becomes
# one fma per element, within the f32 tolerances of the interpreters. Not for f16/bf16, which
# round every op's result to the dtype (an FMA would skip the rounding of the product).
_CONTRACT = ("contract",)
_INT_BINARY: dict[str, Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]] = {
    "add": lambda b, x, y: b.add(x, y), "sub": lambda b, x, y: b.sub(x, y),
    "mul": lambda b, x, y: b.mul(x, y),
    "max": lambda b, x, y: call_intrinsic(b, "llvm.smax.i32", I32, [x, y]),
    "min": lambda b, x, y: call_intrinsic(b, "llvm.smin.i32", I32, [x, y]),
}


@lowers("add", "sub", "mul", "div", "max", "min")
def _binary(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        f = _FLOAT_BINARY[op.name]
        flags = _CONTRACT if _dtype(op) == "f32" else ()
        return _float_op(lw, op, args, lambda b, xs: f(b, xs[0], xs[1], flags))
    g = _INT_BINARY[op.name]
    return _apply(lw, op, args, lambda b, xs: g(b, xs[0], xs[1]))


def _safe_divide(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(floored quotient, floored remainder, y == 0) without LLVM's undefined cases.

    ``sdiv``/``srem`` are undefined for y = 0 and for INT_MIN / -1; divide by 1 there instead,
    and take -1 as the negation that NumPy's wrapping division gives.
    """
    zero, one, minus1 = (ir.Constant(I32, c) for c in (0, 1, -1))
    if isinstance(y, ir.Constant) and y.constant not in (0, -1):
        # A constant divisor (tile sizes, layout strides) needs none of the guards.
        q, r = b.sdiv(x, y), b.srem(x, y)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, y), zero))
        return b.select(adjust, b.sub(q, one), q), b.select(adjust, b.add(r, y), r), ir.Constant(I1, 0)
    is_zero = b.icmp_signed("==", y, zero)
    is_m1 = b.icmp_signed("==", y, minus1)
    d = b.select(b.or_(is_zero, is_m1), one, y)
    q, r = b.sdiv(x, d), b.srem(x, d)
    # Truncated → floored: when the remainder is non-zero and its sign differs from the divisor's.
    adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, d), zero))
    q = b.select(adjust, b.sub(q, one), q)
    r = b.select(adjust, b.add(r, d), r)
    q = b.select(is_m1, b.sub(zero, x), q)
    r = b.select(is_m1, zero, r)
    return q, r, is_zero


def _is_false(v: ir.Value) -> bool:
    return isinstance(v, ir.Constant) and v.type == I1 and not v.constant


@lowers("floordiv")
def _floordiv(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        q, _, is_zero = _safe_divide(b, xs[0], xs[1])
        return q if _is_false(is_zero) else b.select(is_zero, ir.Constant(I32, 0), q)
    return _apply(lw, op, args, f)


@lowers("mod")
def _mod(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        _, r, is_zero = _safe_divide(b, xs[0], xs[1])
        return r if _is_false(is_zero) else b.select(is_zero, ir.Constant(I32, 0), r)
    return _apply(lw, op, args, f)


@lowers("neg")
def _neg(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        return _float_op(lw, op, args, lambda b, xs: b.fneg(xs[0]))
    return _apply(lw, op, args, lambda b, xs: b.sub(ir.Constant(I32, 0), xs[0]))


@lowers("abs")
def _abs(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        return _float_op(lw, op, args, lambda b, xs: call_intrinsic(b, "llvm.fabs.f32", F32, xs))

    def iabs(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        zero = ir.Constant(I32, 0)
        return b.select(b.icmp_signed("<", xs[0], zero), b.sub(zero, xs[0]), xs[0])
    return _apply(lw, op, args, iabs)


# ---------------------------------------------------------------- transcendental

@lowers("exp")
def _exp(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    log2e = ir.Constant(F32, float(np.float32(_LOG2E)))
    return _float_op(lw, op, args, lambda b, xs: lw.target.exp2(b, b.fmul(xs[0], log2e)))


@lowers("exp2")
def _exp2(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _float_op(lw, op, args, lambda b, xs: lw.target.exp2(b, xs[0]))


@lowers("log2")
def _log2(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _float_op(lw, op, args, lambda b, xs: lw.target.log2(b, xs[0]))


@lowers("sqrt")
def _sqrt(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _float_op(lw, op, args, lambda b, xs: call_intrinsic(b, "llvm.sqrt.f32", F32, xs))


@lowers("rsqrt")
def _rsqrt(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    one = ir.Constant(F32, 1.0)
    return _float_op(lw, op, args,
                     lambda b, xs: b.fdiv(one, call_intrinsic(b, "llvm.sqrt.f32", F32, xs)))


# ---------------------------------------------------------------- logic and comparisons

@lowers("and")
def _and(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _apply(lw, op, args, lambda b, xs: _fold_and(b, xs[0], xs[1]))


def _fold_and(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """``x and y``, folded when one side is a constant: masks are ands of many layout facts that
    are constant per register, and short IR keeps the unoptimised module readable."""
    for c, other in ((x, y), (y, x)):
        if isinstance(c, ir.Constant) and c.type == I1:
            return other if c.constant else c
    return b.and_(x, y)


@lowers("or")
def _or(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _apply(lw, op, args, lambda b, xs: b.or_(xs[0], xs[1]))


@lowers("not")
def _not(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _apply(lw, op, args, lambda b, xs: b.xor(xs[0], ir.Constant(I1, 1)))


_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


@lowers(*_CMP)
def _compare(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    pred = _CMP[op.name]
    src = _dtype(op)
    if src in FLOAT_DTYPES:
        # Ordered compares are false on NaN, as in NumPy; != is unordered (NaN != x is true).
        cmp = (lambda b, x, y: b.fcmp_unordered(pred, x, y)) if pred == "!=" else \
            (lambda b, x, y: b.fcmp_ordered(pred, x, y))
        return _apply(lw, op, args, lambda b, xs: cmp(b, to_f32(b, xs[0], src), to_f32(b, xs[1], src)))
    if src == "i1":
        return _apply(lw, op, args, lambda b, xs: b.icmp_unsigned(pred, xs[0], xs[1]))
    return _apply(lw, op, args, lambda b, xs: b.icmp_signed(pred, xs[0], xs[1]))


@lowers("select")
def _select(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _apply(lw, op, args, lambda b, xs: b.select(xs[0], xs[1], xs[2]))


# ---------------------------------------------------------------- casts and constants

def cast(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """Convert one element as ``numerics.round_to`` does."""
    if src == dst:
        return v
    if dst == "i1":
        if src in FLOAT_DTYPES:
            return b.fcmp_unordered("!=", to_f32(b, v, src), ir.Constant(F32, 0.0))
        return b.icmp_signed("!=", v, ir.Constant(v.type, 0))
    if src == "i1":
        return b.zext(v, I32) if dst == "i32" else from_f32(b, b.uitofp(v, F32), dst)
    if src == "i32":
        # Through f32, as NumPy converts an int32 array to float32 before rounding to f16/bf16.
        return from_f32(b, b.sitofp(v, F32), dst)
    if dst == "i32":
        # Saturating truncation: NaN → 0, ±inf and out-of-range → INT_MAX/INT_MIN, exactly the
        # interpreter's nan_to_num + clip; a plain fptosi would be poison there.
        return call_intrinsic(b, "llvm.fptosi.sat.i32.f32", I32, [to_f32(b, v, src)])
    return from_f32(b, to_f32(b, v, src), dst)


@lowers("cast")
def _cast(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    src, dst = _dtype(op), op.result.type.dtype
    return _apply(lw, op, args, lambda b, xs: cast(b, xs[0], src, dst))


@lowers("const")
def _const(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [constant(op.result.type.dtype, op.attrs["value"])]

