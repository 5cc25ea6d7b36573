"""Lowering of the in-thread steps of arg-reductions and scans: ``arg_combine``,
``reg_argreduce`` and ``reg_scan`` (their cross-lane and cross-wave steps are shuffles and LDS
accesses, lowered elsewhere). Semantics are the thread interpreter's (``numerics.arg_better``)."""

from __future__ import annotations

from typing import Any

from tiledsl.ir.core import Op
from tiledsl.ir.types import FLOAT_DTYPES
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import (
    KernelLowering,
    from_f32,
    lowers,
    per_register,
    result_count,
    to_f32,
)
from tiledsl.llvm.lower_simt import tree


def arg_better(b: ir.IRBuilder, kind: str, dtype: str, v1: ir.Value, i1: ir.Value, v2: ir.Value,
               i2: ir.Value) -> ir.Value:
    """Whether ``kind`` picks (v2, i2) over (v1, i1): the larger (argmax) or smaller value, a NaN
    losing to any other value, equal values and two NaNs to the smaller index."""
    pred = ">" if kind == "argmax" else "<"
    smaller_index = b.icmp_signed("<", i2, i1)
    if dtype not in FLOAT_DTYPES:
        strict = b.icmp_signed(pred, v2, v1)
        return b.or_(strict, b.and_(b.icmp_signed("==", v2, v1), smaller_index))
    x1, x2 = to_f32(b, v1, dtype), to_f32(b, v2, dtype)
    nan1, nan2 = b.fcmp_unordered("uno", x1, x1), b.fcmp_unordered("uno", x2, x2)
    wins = b.and_(b.not_(nan2), b.or_(nan1, b.fcmp_ordered(pred, x2, x1)))
    tie = b.or_(b.fcmp_ordered("==", x2, x1), b.and_(nan1, nan2))
    return b.or_(wins, b.and_(tie, smaller_index))


def _pick(b: ir.IRBuilder, kind: str, dtype: str, a: tuple[ir.Value, ir.Value],
          c: tuple[ir.Value, ir.Value]) -> tuple[ir.Value, ir.Value]:
    take = arg_better(b, kind, dtype, a[0], a[1], c[0], c[1])
    return b.select(take, c[0], a[0]), b.select(take, c[1], a[1])


@lowers("arg_combine")
def _arg_combine(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    kind, dtype = op.attrs["kind"], op.results[0].type.dtype
    n = op.results[0].type.n if hasattr(op.results[0].type, "n") else None
    pairs = [_pick(lw.b, kind, dtype, (v1, i1), (v2, i2)) for v1, i1, v2, i2 in per_register(args, n)]
    if n is None:
        return list(pairs[0])
    return [[p[0] for p in pairs], [p[1] for p in pairs]]


@lowers("reg_argreduce")
def _reg_argreduce(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    values, indices = args
    kind, dtype = op.attrs["kind"], op.results[0].type.dtype
    pairs = [tree(lw.b, [(values[g], indices[g]) for g in group], lambda a, c: _pick(lw.b, kind, dtype, a, c))
             for group in op.attrs["groups"]]
    return [[p[0] for p in pairs], [p[1] for p in pairs]]


@lowers("reg_scan")
def _reg_scan(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """Each run summed from its first register on (in f32 for f16/bf16, rounded per element)."""
    b, (src,) = lw.b, args
    dtype = op.result.type.dtype
    out = list(src)
    for run in op.attrs["runs"]:
        acc = None
        for r in run:
            if dtype in FLOAT_DTYPES:
                x = to_f32(b, src[r], dtype)
                acc = x if acc is None else b.fadd(acc, x)
                out[r] = from_f32(b, acc, dtype)
            else:
                acc = src[r] if acc is None else b.add(acc, src[r])
                out[r] = acc
    assert result_count(op) == len(out)
    return [out]
