"""Lowering of the math functions (``ops.MATH_UNARY``, ``isnan``, ``isinf``, ``pow``, ``clamp``).

Semantics are ``numerics.MATH64``: f16/bf16 operands are widened to f32, the function computed in
f32 and rounded once to the result's dtype. Where LLVM lowers a function correctly on every target
without a libm it is used (``floor``, ``ceil``, ``roundeven`` for ``round``: one instruction on
AMDGPU and NVPTX, docs/targets/math.md §2); the others go through the target (``GpuTarget.math``),
which gives the instruction sequences of ``tiledsl.llvm.math_f32`` unless it has a better one
(``log`` on AMDGPU; ``tanh.approx.f32`` on NVPTX where the result is f16/bf16, whose rounding hides
its error). The error bound of each is in docs/targets/math.md.
"""

from __future__ import annotations

import math
from typing import Any

from tiledsl.ir.core import Op
from tiledsl.ir.types import FLOAT_DTYPES
from tiledsl.llvm.irgen import F32, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_arith import _FLOAT_BINARY, _INT_BINARY, _apply, _dtype, _float_op
from tiledsl.llvm.lower_core import KernelLowering, lowers, to_f32

#: The LLVM intrinsic of each function that every target lowers without a libm call.
INTRINSICS = {"floor": "llvm.floor.f32", "ceil": "llvm.ceil.f32", "round": "llvm.roundeven.f32"}


@lowers(*INTRINSICS)
def _rounding(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    name = INTRINSICS[op.name]
    return _float_op(lw, op, args, lambda b, xs: call_intrinsic(b, name, F32, xs))


@lowers("tanh", "sigmoid", "erf", "log", "log1p", "sin", "cos", "pow")
def _function(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    result = op.result.type.dtype
    return _float_op(lw, op, args, lambda b, xs: lw.target.math(b, op.name, xs, result))


@lowers("isnan")
def _isnan(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    src = _dtype(op)
    return _apply(lw, op, args, lambda b, xs: b.fcmp_unordered("uno", to_f32(b, xs[0], src), to_f32(b, xs[0], src)))


@lowers("isinf")
def _isinf(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    src = _dtype(op)
    inf = ir.Constant(F32, math.inf)
    return _apply(lw, op, args, lambda b, xs: b.fcmp_ordered(
        "==", call_intrinsic(b, "llvm.fabs.f32", F32, [to_f32(b, xs[0], src)]), inf))


@lowers("clamp")
def _clamp(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """max then min (maxnum/minnum: a NaN bound is ignored), a NaN x kept."""
    if _dtype(op) in FLOAT_DTYPES:
        hi, lo = _FLOAT_BINARY["min"], _FLOAT_BINARY["max"]

        def f(b: ir.IRBuilder, xs: list[ir.Value]) -> ir.Value:
            r = hi(b, lo(b, xs[0], xs[1]), xs[2])
            return b.select(b.fcmp_unordered("uno", xs[0], xs[0]), xs[0], r)
        return _float_op(lw, op, args, f)
    imax, imin = _INT_BINARY["max"], _INT_BINARY["min"]
    return _apply(lw, op, args, lambda b, xs: imin(b, imax(b, xs[0], xs[1]), xs[2]))
