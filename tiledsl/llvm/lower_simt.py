"""Lowering of the SIMT structure: ids and dims, register moves and in-thread reductions,
cross-lane shuffles, the barrier, and structured control flow (``for``, ``if``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tiledsl.ir.core import Op
from tiledsl.ir.types import FLOAT_DTYPES, FP8_DTYPES, INT_BITS, UNSIGNED_DTYPES
from tiledsl.llvm.irgen import I1, I32, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import (
    KernelLowering,
    flatten,
    from_f32,
    lowers,
    maxnum,
    minnum,
    narrow_from_f32,
    to_f32,
    unflatten,
    widen_to_f32,
)
from tiledsl.llvm.static_ints import static_table


@lowers("dim")
def _dim(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    name = op.attrs["name"]
    if name not in lw.dims:
        raise RuntimeError(f"internal: dim '{name}' is not a dim of any tensor parameter")
    return [lw.dims[name]]


@lowers("block_id")
def _block_id(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    axis = op.attrs["axis"]
    if not 0 <= axis < 3:
        raise NotImplementedError(f"grid axis {axis}: GPUs launch grids of at most 3 axes")
    return [lw.target.block_id(lw.b, axis)]


@lowers("thread_id")
def _thread_id(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [[lw.tid]]


@lowers("splat")
def _splat(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [[args[0]] * op.result.type.n]


@lowers("reg_gather")
def _reg_gather(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    src = args[0]
    return [[src[i] for i in op.attrs["indices"]]]


def tree(b: ir.IRBuilder, values: list[ir.Value], combine: Callable[[ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """Combine pairwise (a balanced tree): short dependency chains. For sums the order differs
    from NumPy's, within f32 rounding."""
    while len(values) > 1:
        nxt = [combine(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


_FLOAT_COMBINE: dict[str, Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]] = {
    "sum": lambda b, x, y: b.fadd(x, y),
    "max": maxnum,
    "min": minnum,
}
def _int_combine(kind: str, dtype: str) -> Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]:
    """Integer sum (wrapping) or max/min (``llvm.{s,u}{max,min}.iN``) of the integer ``dtype``."""
    if kind == "sum":
        return lambda b, x, y: b.add(x, y)
    name = f"llvm.{'u' if dtype in UNSIGNED_DTYPES else 's'}{kind}.i{INT_BITS[dtype]}"
    return lambda b, x, y: call_intrinsic(b, name, x.type, [x, y])


@lowers("reg_reduce")
def _reg_reduce(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    b = lw.b
    src = args[0]
    dtype = op.result.type.dtype
    kind = op.attrs["kind"]
    if dtype in FP8_DTYPES:
        widened = widen_to_f32(lw, list(src), dtype)
        fcombine = _FLOAT_COMBINE[kind]
        sums = [tree(b, [widened[i] for i in g], lambda x, y: fcombine(b, x, y)) for g in op.attrs["groups"]]
        return [narrow_from_f32(lw, sums, dtype)]
    if dtype in FLOAT_DTYPES:
        # In f32 and rounded once at the end, as the interpreter sums the f32 storage.
        widened = [to_f32(b, v, dtype) for v in src]
        fcombine = _FLOAT_COMBINE[kind]
        return [[from_f32(b, tree(b, [widened[i] for i in g], lambda x, y: fcombine(b, x, y)), dtype)
                 for g in op.attrs["groups"]]]
    icombine = _int_combine(kind, dtype)
    return [[tree(b, [src[i] for i in g], lambda x, y: icombine(b, x, y)) for g in op.attrs["groups"]]]


@lowers("shuffle_xor")
def _shuffle_xor(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    b, mask = lw.b, op.attrs["mask"]
    out = []
    for v in args[0]:
        if v.type == I1:  # cross-lane hardware moves 32-bit words
            out.append(b.trunc(lw.target.shuffle_xor(b, b.zext(v, I32), mask), I1))
        else:
            out.append(lw.target.shuffle_xor(b, v, mask))
    return [out]


@lowers("uniform")
def _uniform(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    return [lw.target.uniform(lw.b, args[0][0])]


@lowers("barrier")
def _barrier(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    lw.target.barrier(lw.b)
    return []


# ---------------------------------------------------------------- control flow

@lowers("for")
def _for(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """A rotated loop: a guard, then a body that ends in the exit test, one phi per induction
    variable and per carried register; the results are phis in the exit block (the initial
    values when the loop runs zero times)."""
    b = lw.b
    lo, hi, step, *inits = args
    _trap_unless_positive(lw, op, step)
    flat_init, shape = flatten(inits)
    pre = b.block
    body = lw.fn.append_basic_block("for.body")
    done = lw.fn.append_basic_block("for.end")
    b.cbranch(b.icmp_signed("<", lo, hi), body, done)

    b.position_at_end(body)
    iv = b.phi(I32, "iv")
    iv.add_incoming(lo, pre)
    phis = []
    for v in flat_init:
        phi = b.phi(v.type)
        phi.add_incoming(v, pre)
        phis.append(phi)
    yielded = lw.lower_block(op.regions[0], [iv, *unflatten(phis, shape)])
    flat_next, _ = flatten(yielded)
    latch = b.block
    nxt = b.add(iv, step, "iv.next")
    iv.add_incoming(nxt, latch)
    for phi, v in zip(phis, flat_next):
        phi.add_incoming(v, latch)
    b.cbranch(b.icmp_signed("<", nxt, hi), body, done)

    b.position_at_end(done)
    results = []
    for init, v in zip(flat_init, flat_next):
        phi = b.phi(v.type)
        phi.add_incoming(init, pre)
        phi.add_incoming(v, latch)
        results.append(phi)
    return unflatten(results, shape)


def _trap_unless_positive(lw: KernelLowering, op: Op, step: ir.Value) -> None:
    """A step that is not positive would loop forever (or until i32 wraps): trap instead, as the
    interpreters stop with an error at the loop. Steps known at compile time (all of them, unless
    the program computes one at run time) are positive already (sema) and need no test."""
    known = static_table(lw, op.operands[2])
    if known is not None and (known > 0).all():
        return
    b = lw.b
    with b.if_then(b.icmp_signed("<=", step, ir.Constant(I32, 0)), likely=False):
        call_intrinsic(b, "llvm.trap", ir.VoidType(), [])
        b.unreachable()


@lowers("if")
def _if(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    """Branches on a uniform condition; each region's yield meets the other's in phis."""
    b = lw.b
    then_bb = lw.fn.append_basic_block("if.then")
    else_bb = lw.fn.append_basic_block("if.else")
    merge = lw.fn.append_basic_block("if.end")
    b.cbranch(args[0], then_bb, else_bb)
    ends = []
    for bb, region in ((then_bb, op.regions[0]), (else_bb, op.regions[1])):
        b.position_at_end(bb)
        values = lw.lower_block(region, [])
        ends.append((b.block, flatten(values)))
        b.branch(merge)
    b.position_at_end(merge)
    (then_end, (then_flat, shape)), (else_end, (else_flat, _)) = ends
    results = []
    for tv, ev in zip(then_flat, else_flat):
        phi = b.phi(tv.type)
        phi.add_incoming(tv, then_end)
        phi.add_incoming(ev, else_end)
        results.append(phi)
    return unflatten(results, shape)

