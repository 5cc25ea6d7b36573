"""Lowering of the element-wise ops (every name of ``numerics.ELEMENTWISE``) and ``const``.

Each op applies one scalar function per register (or once, to uniform scalars). Semantics are
``tiledsl.interp.numerics``: f16/bf16/fp8 compute in f32 and round once (fp8 saturating);
integers wrap; ``floordiv`` and ``mod`` floor (Python's sign rules) and give 0 for a zero
divisor; float→int casts truncate toward zero and saturate (NaN → 0), int→int casts wrap;
shifts by a count outside [0, width) shift every bit out. IEEE arithmetic throughout, except that
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
from tiledsl.ir.types import FLOAT_DTYPES, FP8_DTYPES, INT_BITS, INT_DTYPES, UNSIGNED_DTYPES
from tiledsl.llvm.irgen import F32, I1, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import (
    KernelLowering,
    constant,
    from_f32,
    llvm_type,
    lowers,
    maxnum,
    minnum,
    narrow_from_f32,
    per_register,
    result_count,
    to_f32,
    widen_to_f32,
)
from tiledsl.llvm.static_ints import lower_static

ScalarFn = Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]
_LOG2E = math.log2(math.e)


def _apply(lw: KernelLowering, op: Op, args: list[Any], fn: ScalarFn) -> list[Any]:
    n = result_count(op)
    static = lower_static(lw, op)
    if static is not None:
        return [static]
    outs = [fn(lw.b, regs) for regs in per_register(args, n)]
    return [outs if n is not None else outs[0]]


def _dtype(op: Op, i: int = 0) -> str:
    return op.operands[i].type.dtype


def _float_op(lw: KernelLowering, op: Op, args: list[Any], f: ScalarFn) -> list[Any]:
    """A float op computed in f32 on operands widened from their dtype, rounded once to the
    result's dtype."""
    src, dst = _dtype(op), op.result.type.dtype
    if src in FP8_DTYPES or dst in FP8_DTYPES:
        return _via_f32(lw, op, args, f)
    return _apply(lw, op, args, lambda b, xs: from_f32(b, f(b, [to_f32(b, x, src) for x in xs]), dst))


def _via_f32(lw: KernelLowering, op: Op, args: list[Any], f: ScalarFn) -> list[Any]:
    """``_float_op`` with the operands widened and the result narrowed register list by register
    list (``widen_to_f32``): fp8 conversions go two at a time where the target can. ``f`` sees
    f32 operands (an i1 condition as it is) and gives an f32, or an i1 for a comparison."""
    dst = op.result.type.dtype
    wide = [widen_to_f32(lw, a, v.type.dtype) if v.type.dtype in FLOAT_DTYPES else a
            for a, v in zip(args, op.operands)]
    n = result_count(op)
    outs = [f(lw.b, regs) for regs in per_register(wide, n)]
    result = outs if n is not None else outs[0]
    return [narrow_from_f32(lw, result, dst) if dst in FLOAT_DTYPES else result]


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
    "bitand": lambda b, x, y: b.and_(x, y), "bitor": lambda b, x, y: b.or_(x, y),
    "bitxor": lambda b, x, y: b.xor(x, y),
}


def _int_minmax(name: str, dtype: str) -> Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]:
    """``llvm.{s,u}{max,min}.iN`` for the integer ``dtype``."""
    intrinsic = f"llvm.{'u' if dtype in UNSIGNED_DTYPES else 's'}{name}.i{INT_BITS[dtype]}"
    return lambda b, x, y: call_intrinsic(b, intrinsic, x.type, [x, y])


@lowers("add", "sub", "mul", "div", "max", "min", "bitand", "bitor", "bitxor")
def _binary(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        f = _FLOAT_BINARY[op.name]
        flags = _CONTRACT if _dtype(op) == "f32" else ()
        return _float_op(lw, op, args, lambda b, xs: f(b, xs[0], xs[1], flags))
    g = _int_minmax(op.name, _dtype(op)) if op.name in ("max", "min") else _INT_BINARY[op.name]
    return _apply(lw, op, args, lambda b, xs: g(b, xs[0], xs[1]))


def _safe_divide(b: ir.IRBuilder, x: ir.Value, y: ir.Value, unsigned: bool = False
                 ) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(floored quotient, floored remainder, y == 0) without LLVM's undefined cases.

    ``sdiv``/``srem`` are undefined for y = 0 and for INT_MIN / -1; divide by 1 there instead,
    and take -1 as the negation that NumPy's wrapping division gives. Unsigned division
    (``udiv``/``urem``) floors already and only needs the zero divisor replaced.
    """
    zero, one, minus1 = (ir.Constant(x.type, c) for c in (0, 1, -1))
    if unsigned:
        is_zero = b.icmp_unsigned("==", y, zero)
        d = b.select(is_zero, one, y)
        return b.udiv(x, d), b.urem(x, d), is_zero
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


@lowers("floordiv")
def _floordiv(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    unsigned = _dtype(op) in UNSIGNED_DTYPES

    def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        q, _, is_zero = _safe_divide(b, xs[0], xs[1], unsigned)
        return b.select(is_zero, ir.Constant(q.type, 0), q)
    return _apply(lw, op, args, f)


@lowers("mod")
def _mod(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    unsigned = _dtype(op) in UNSIGNED_DTYPES

    def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        _, r, is_zero = _safe_divide(b, xs[0], xs[1], unsigned)
        return b.select(is_zero, ir.Constant(r.type, 0), r)
    return _apply(lw, op, args, f)


@lowers("neg")
def _neg(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        return _float_op(lw, op, args, lambda b, xs: b.fneg(xs[0]))
    return _apply(lw, op, args, lambda b, xs: b.sub(ir.Constant(xs[0].type, 0), xs[0]))


@lowers("abs")
def _abs(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    if _dtype(op) in FLOAT_DTYPES:
        return _float_op(lw, op, args, lambda b, xs: call_intrinsic(b, "llvm.fabs.f32", F32, xs))
    if _dtype(op) in UNSIGNED_DTYPES:
        return _apply(lw, op, args, lambda b, xs: xs[0])

    def iabs(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        zero = ir.Constant(xs[0].type, 0)
        return b.select(b.icmp_signed("<", xs[0], zero), b.sub(zero, xs[0]), xs[0])
    return _apply(lw, op, args, iabs)


# ---------------------------------------------------------------- bit operations

@lowers("bitnot")
def _bitnot(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return _apply(lw, op, args, lambda b, xs: b.xor(xs[0], ir.Constant(xs[0].type, -1)))


@lowers("shl", "shr")
def _shift(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """Shifts with tiledsl's rule for counts outside [0, width) (read as unsigned): every bit
    shifted out, so ``<<`` and unsigned ``>>`` give 0 and signed ``>>`` the sign (an ``ashr`` by
    width-1). LLVM's own shift by such a count is poison, hence the select and the clamp."""
    dtype = _dtype(op)
    width = INT_BITS[dtype]

    def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
        x, n = xs
        last = ir.Constant(x.type, width - 1)
        if op.name == "shr" and dtype not in UNSIGNED_DTYPES:
            return b.ashr(x, call_intrinsic(b, f"llvm.umin.i{width}", x.type, [n, last]))
        inside = b.icmp_unsigned("<=", n, last)
        shifted = b.shl(x, n) if op.name == "shl" else b.lshr(x, n)
        return b.select(inside, shifted, ir.Constant(x.type, 0))
    return _apply(lw, op, args, f)


@lowers("bitcast")
def _bitcast(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """The same bits as another dtype of the same size: nothing where both are carried in one
    LLVM type (bf16 and i16 as ``i16``, fp8 and 8-bit integers as ``i8``), else an LLVM bitcast."""
    ty = llvm_type(op.result.type.dtype)
    return _apply(lw, op, args, lambda b, xs: xs[0] if xs[0].type == ty else b.bitcast(xs[0], ty))


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
        if src in FP8_DTYPES:
            return _via_f32(lw, op, args, lambda b, xs: cmp(b, xs[0], xs[1]))
        return _apply(lw, op, args, lambda b, xs: cmp(b, to_f32(b, xs[0], src), to_f32(b, xs[1], src)))
    if src == "i1" or src in UNSIGNED_DTYPES:
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
        return b.zext(v, llvm_type(dst)) if dst in INT_DTYPES else from_f32(b, b.uitofp(v, F32), dst)
    if src in INT_DTYPES and dst in INT_DTYPES:
        return _int_to_int(b, v, src, dst)
    if src in INT_DTYPES:
        # Through f32, as NumPy converts an integer array to float32 before rounding to f16/bf16.
        return from_f32(b, b.uitofp(v, F32) if src in UNSIGNED_DTYPES else b.sitofp(v, F32), dst)
    if dst in INT_DTYPES:
        # Saturating truncation: NaN → 0, ±inf and out-of-range → the dtype's max/min, exactly the
        # interpreter's nan_to_num + clip; a plain fptosi would be poison there.
        kind = "u" if dst in UNSIGNED_DTYPES else "s"
        return call_intrinsic(b, f"llvm.fpto{kind}i.sat.i{INT_BITS[dst]}.f32", llvm_type(dst), [to_f32(b, v, src)])
    return from_f32(b, to_f32(b, v, src), dst)


def _int_to_int(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """Two's complement: the low bits when narrowing, sign- (signed ``src``) or zero-extended when
    widening, the same bits between i32 and u32."""
    if INT_BITS[dst] < INT_BITS[src]:
        return b.trunc(v, llvm_type(dst))
    if INT_BITS[dst] == INT_BITS[src]:
        return v
    return b.zext(v, llvm_type(dst)) if src in UNSIGNED_DTYPES else b.sext(v, llvm_type(dst))


@lowers("cast")
def _cast(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    src, dst = _dtype(op), op.result.type.dtype
    if src != dst and (src in FP8_DTYPES or dst in FP8_DTYPES):
        def f32_if_float(d: str) -> str:
            return "f32" if d in FLOAT_DTYPES else d
        return _via_f32(lw, op, args, lambda b, xs: cast(b, xs[0], f32_if_float(src), f32_if_float(dst)))
    return _apply(lw, op, args, lambda b, xs: cast(b, xs[0], src, dst))


@lowers("const")
def _const(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [constant(op.result.type.dtype, op.attrs["value"])]

