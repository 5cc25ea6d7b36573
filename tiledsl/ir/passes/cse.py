"""Common subexpression elimination.

Two ops that are ``cse``-able (pure and not reading memory), with the same name,
operands, attributes and result types, compute the same value: the later one is
replaced by the earlier. Structured regions see the ops of the regions around them,
never the other way round.
"""

from __future__ import annotations

from tiledsl.ir.core import Block, Op, erase, replace_all_uses
from tiledsl.ir.printer import format_attr


def _key(op: Op) -> tuple:
    return (op.name, tuple(id(v) for v in op.operands),
            tuple((k, format_attr(v)) for k, v in op.attrs.items()),
            tuple(str(r.type) for r in op.results))


def _run_block(block: Block, scopes: list[dict]) -> bool:
    changed = False
    scopes.append({})
    for op in list(block.ops):
        if op.cse and not op.regions:
            key = _key(op)
            prev = next((s[key] for s in reversed(scopes) if key in s), None)
            if prev is not None:
                for old, new in zip(op.results, prev.results):
                    replace_all_uses(old, new)
                erase(op)
                changed = True
                continue
            scopes[-1][key] = op
        for r in op.regions:
            changed |= _run_block(r, scopes)
    scopes.pop()
    return changed


def run(kernel: Op) -> bool:
    changed = False
    for r in kernel.regions:
        changed |= _run_block(r, [])
    return changed
