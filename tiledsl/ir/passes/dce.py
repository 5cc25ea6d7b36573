"""Dead code elimination: pure ops whose results nobody uses are removed, until
nothing more can be."""

from __future__ import annotations

from tiledsl.ir.core import Op, erase


def run(kernel: Op) -> bool:
    changed_any = False
    changed = True
    while changed:
        changed = False
        for op in reversed(list(kernel.walk())):
            if op is kernel or op.parent is None or not op.pure or op.regions:
                continue
            if all(not r.uses for r in op.results):
                erase(op)
                changed = changed_any = True
    return changed_any
