"""Sink broadcasts through element-wise ops.

``broadcast(f(a, b))`` becomes ``f(broadcast(a), broadcast(b))`` until every broadcast
takes a scalar, an ``expand_dims`` (``x[:, _]``) or a non-element-wise value. Thread
layouts then only ever meet a broadcast of a 1-D tile along a new axis, which every
thread can do from its own registers; tiles of shape (M, 1) or (1, N) disappear.
"""

from __future__ import annotations

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value, erase, replace_all_uses
from tiledsl.ir.types import TileType


def _insert_before(anchor: Op, op: Op) -> Op:
    block = anchor.parent
    return block.insert(block.ops.index(anchor), op)


def _broadcast(v: Value, shape: tuple, anchor: Op) -> Value:
    if tuple(v.type.shape) == tuple(shape):
        return v
    if isinstance(v.owner, ops.BroadcastOp):
        v = v.owner.operands[0]
    return _insert_before(anchor, ops.BroadcastOp([v], [TileType(v.type.dtype, tuple(shape))], loc=anchor.loc)).result


def run(kernel: Op) -> bool:
    changed_any = False
    changed = True
    while changed:
        changed = False
        for op in list(kernel.walk()):
            if not isinstance(op, ops.BroadcastOp) or op.parent is None:
                continue
            src = op.operands[0]
            shape = tuple(op.result.type.shape)
            if tuple(src.type.shape) == shape:
                replace_all_uses(op.result, src)
                erase(op)
                changed = True
                continue
            inner = src.owner
            if isinstance(inner, ops.BroadcastOp):
                op.set_operand(0, inner.operands[0])
                changed = True
                continue
            if not isinstance(inner, ops.ElementwiseOp) or src.type.rank == 0:
                continue
            new_operands = [_broadcast(x, shape, op) for x in inner.operands]
            new = _insert_before(op, type(inner)(new_operands, [TileType(src.type.dtype, shape)],
                                                 dict(inner.attrs), loc=inner.loc))
            replace_all_uses(op.result, new.result)
            erase(op)
            changed = True
        changed_any |= changed
    return changed_any
