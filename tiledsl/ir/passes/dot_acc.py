"""Accumulate into a dot: ``x + dot(a, b)`` becomes ``dot(a, b, x)``.

The matrix instructions add their product to an accumulator operand, so an f32 tile added to
a dot's result can be that accumulator. Without this, FA2's ``acc * alpha + dot(p, v)`` keeps
two accumulator tiles live across the second matrix-instruction chain (the dot's, started from
zeros, and ``acc * alpha``) and adds them element by element after it: on AMD, 64 more VGPRs a
thread and 64 more adds per loop iteration at D=128.

The interpreters define ``dot(a, b, x)`` as ``a·b + x``, the same f32 sum as the add, so the
rewrite changes no value they compute. Only a dot with no accumulator, used by this add alone
and in the same block, is rewritten (moving a dot into a loop would repeat it). Layouts do not
stop it: an accumulator pinned with ``@`` (FA2 backward's ``dk = dk + dot(ds, q)``, with ``dk``
carried from a pinned ``fill``) meets the dot's layout-less result; the fused dot takes the add's
type, and layout assignment converts the accumulator if the two layouts differ.
"""

from __future__ import annotations

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value, erase, replace_all_uses
from tiledsl.ir.types import TileType


def _fusable_dot(v: Value, add: Op) -> ops.DotOp | None:
    dot = v.owner
    if not isinstance(dot, ops.DotOp) or len(dot.operands) != 2:
        return None
    if dot.parent is not add.parent or len(v.uses) != 1:
        return None
    return dot


def run(kernel: Op) -> bool:
    changed = False
    for op in list(kernel.walk()):
        if op.name != "add" or op.parent is None or not isinstance(op.result.type, TileType):
            continue
        for i in (0, 1):
            dot = _fusable_dot(op.operands[i], op)
            other = op.operands[1 - i]
            if dot is None or not isinstance(other.type, TileType) or \
                    other.type.without_layout() != dot.result.type.without_layout():
                continue
            block = op.parent
            fused = ops.DotOp([dot.operands[0], dot.operands[1], other], [op.result.type], dict(dot.attrs),
                              loc=dot.loc)
            block.insert(block.ops.index(op), fused)
            replace_all_uses(op.result, fused.result)
            erase(op)
            erase(dot)
            changed = True
            break
    return changed
