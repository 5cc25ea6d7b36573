"""Constant folding.

Pure element-wise ops on scalar constants become constants (with the dtype's
arithmetic: i32 wraps, f16/bf16 round), and an ``if`` whose condition is a constant
is replaced by the ops of the branch it takes — this is how ``if CAUSAL { ... }``
disappears from a non-causal kernel.
"""

from __future__ import annotations

import numpy as np

from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, erase, replace_all_uses
from tiledsl.ir.types import TileType


def _const_value(op: Op | None) -> object | None:
    if isinstance(op, ops.ConstOp):
        return op.attrs["value"]
    return None


def _fold_scalar(op: Op) -> object | None:
    from tiledsl.interp.numerics import ELEMENTWISE, to_python, to_storage
    if not isinstance(op, ops.ElementwiseOp) or op.name not in ELEMENTWISE:
        return None
    t = op.result.type
    if not isinstance(t, TileType) or t.shape != ():
        return None
    vals = [_const_value(v.owner) if isinstance(v.owner, Op) else None for v in op.operands]
    if any(v is None for v in vals):
        return None
    args = [to_storage(np.asarray(v), o.type.dtype) for v, o in zip(vals, op.operands)]
    with np.errstate(all="ignore"):
        out = ELEMENTWISE[op.name](op, *args)
    return to_python(out, t.dtype)


def _inline_branch(op: ops.IfOp, block: Block) -> None:
    parent = op.parent
    assert parent is not None
    pos = parent.ops.index(op)
    term = block.terminator
    for inner in block.ops[:-1]:
        parent.insert(pos, inner)
        pos += 1
    for r, v in zip(op.results, term.operands):
        replace_all_uses(r, v)
    block.ops = [term]
    erase(op)


def run(kernel: Op) -> bool:
    changed = False
    for op in list(kernel.walk()):
        if op.parent is None and op is not kernel:
            continue
        if isinstance(op, ops.IfOp):
            c = _const_value(op.operands[0].owner if isinstance(op.operands[0].owner, Op) else None)
            if c is not None:
                _inline_branch(op, op.regions[0] if c else op.regions[1])
                changed = True
            continue
        value = _fold_scalar(op)
        if value is not None:
            new = ops.ConstOp([], [op.result.type], {"value": value}, loc=op.loc, hints=[op.result.hint])
            block = op.parent
            block.insert(block.ops.index(op), new)
            replace_all_uses(op.result, new.result)
            erase(op)
            changed = True
    return changed
