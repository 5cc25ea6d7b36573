"""Thread-IR pass: a loop-carried sum of lane reductions keeps per-lane partial sums.

FA2's row sum ``l = l * alpha + rowsum(p)`` reduces each key block's ``p`` across the lanes that
share a row (shuffles) and only then adds it to ``l``. The shuffles can wait: the lanes keep
partial sums ``l_i = l_i * alpha + (the lane's own part of rowsum(p))`` through the loop, and one
shuffle reduction after the loop gives ``l``. That is exact algebra (``alpha`` is one value per
row, the same in every lane that holds the row, so it distributes over the sum; the float
additions are only regrouped), and it takes the shuffles and their latency out of every
iteration — FA2 does the same by hand.

A carried value qualifies when, in the body, every op that reads it (or a value computed from
it) is ``x * a`` (``a`` not computed from it), ``x + R`` where ``R`` is a butterfly sum across
lanes (``w + shuffle_xor(w, mask)``, repeated; the same masks all along), an ``if`` that passes
it on, or the loop's yield. Its initial value must be 0, or the partial result of an earlier such
loop (the full loop and the tail loop of ``split-tail``). After the last loop the partial sums
are reduced once with the same masks.

Why ``a`` is the same in every lane of the butterfly: distribution takes the masks of a
reduction from the lanes that hold parts of one output element, so those lanes replicate the
result's elements, and ``a`` has the carried value's layout (``x * a`` is elementwise). That
premise fails where the butterfly also spans lanes that hold nothing of the line (a row of 96 on
32 lanes): distribution then sets the empty slots to the identity first (a ``select`` on a
``valid`` query before the ``reg_reduce``), and such sums are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value
from tiledsl.thread import ops as tops


@dataclass
class _Chain:
    """One carried value of one loop: the ``add`` ops whose lane reduction is cut to its
    partial (operand index, partial value), and the lane masks of the reduction."""

    loop: Op
    index: int
    cuts: list[tuple[Op, int, Value]]
    masks: tuple[int, ...]


def _lane_sum(v: Value) -> tuple[Value, tuple[int, ...]] | None:
    """(w0, masks) when ``v`` is ``w0`` summed across lanes by xor shuffles, innermost mask first."""
    masks: list[int] = []
    while isinstance(v.owner, Op) and v.owner.name == "add":
        x, y = v.owner.operands
        if isinstance(y.owner, Op) and y.owner.name == "shuffle_xor" and y.owner.operands[0] is x:
            masks.append(y.owner.attrs["mask"])
        elif isinstance(x.owner, Op) and x.owner.name == "shuffle_xor" and x.owner.operands[0] is y:
            masks.append(x.owner.attrs["mask"])
            x = y
        else:
            break
        v = x
    return (v, tuple(reversed(masks))) if masks else None


def _padded(partial: Value) -> bool:
    """``partial`` is an in-thread reduction of a value whose empty slots were set to the identity
    (``Distributor.identity_where_empty``): its butterfly may span lanes that hold no element."""
    op = partial.owner
    if not (isinstance(op, Op) and op.name == "reg_reduce"):
        return False
    masked = op.operands[0].owner
    return isinstance(masked, Op) and masked.name == "select" and masked.operands[0].owner.name == "valid"


def _chain(loop: Op, index: int) -> _Chain | None:
    """The chain of carried value ``index`` of ``loop``, or None where it does not qualify.

    The values that carry the sum are followed from the body argument through its uses, which
    must all be ``x * a``, ``x + lane_sum``, a yield of an ``if`` (whose result then carries it,
    where both branches yield a carrying value: the guarded bodies ``pipeline`` unrolls) or the
    loop's yield at ``index``.
    """
    body = loop.regions[0]
    start = body.args[1 + index]
    carrying = {id(start)}
    work = [start]
    cuts: list[tuple[Op, int, Value]] = []
    masks: tuple[int, ...] | None = None
    joins: list[tuple[Op, int]] = []          # (if op, result index) that carry the sum
    yielded = False
    while work:
        v = work.pop()
        for user in v.uses:
            if user.name == "yield":
                if user.operands.count(v) != 1:
                    return None
                j = user.operands.index(v)
                owner = user.parent.parent if user.parent is not None else None
                if user is body.terminator:
                    if j != index:
                        return None
                    yielded = True
                elif owner is not None and owner.name == "if" and user is user.parent.terminator:
                    joins.append((owner, j))
                    if id(owner.results[j]) not in carrying:
                        carrying.add(id(owner.results[j]))
                        work.append(owner.results[j])
                else:
                    return None
                continue
            if user.name not in ("mul", "add") or len(user.operands) != 2 or user.operands[0] is user.operands[1]:
                return None
            k = 0 if user.operands[0] is v else 1
            other = user.operands[1 - k]
            if id(other) in carrying:
                return None
            if user.name == "add":
                found = _lane_sum(other)
                if found is None or (masks is not None and found[1] != masks) or _padded(found[0]):
                    return None
                masks = found[1]
                cuts.append((user, 1 - k, found[0]))
            if id(user.result) not in carrying:
                carrying.add(id(user.result))
                work.append(user.result)
    # Every branch of an if that carries the sum yields a carrying value there.
    for op, j in joins:
        if any(id(r.terminator.operands[j]) not in carrying for r in op.regions):
            return None
    if masks is None or not yielded:
        return None
    return _Chain(loop, index, cuts, masks)


def _is_zero(v: Value) -> bool:
    op = v.owner
    if isinstance(op, Op) and op.name == "splat":
        op = op.operands[0].owner
    return isinstance(op, Op) and op.name == "const" and op.attrs.get("value") == 0


def run(kernel: Op) -> int:
    """Rewrite every qualifying carried sum; returns how many were rewritten."""
    chains: dict[int, _Chain] = {}            # id(loop result) -> its chain
    consumed: set[int] = set()                # partial results that a later chain starts from
    for loop in [op for op in kernel.walk() if op.name == "for"]:
        for i in range(len(loop.results)):
            c = _chain(loop, i)
            if c is None:
                continue
            init = loop.operands[3 + i]
            earlier = chains.get(id(init))
            if _is_zero(init):
                chains[id(loop.results[i])] = c
            elif earlier is not None and earlier.masks == c.masks and init.uses == [loop] \
                    and loop.operands.count(init) == 1:
                chains[id(loop.results[i])] = c
                consumed.add(id(init))
    for c in chains.values():
        for user, k, partial in c.cuts:
            user.set_operand(k, partial)
    for key, c in chains.items():
        if key not in consumed:
            _reduce_after(c.loop, c.loop.results[c.index], c.masks)
    return len(chains)


def _reduce_after(loop: Op, res: Value, masks: tuple[int, ...]) -> None:
    """Sum ``res`` across lanes (xor butterflies over ``masks``) right after ``loop`` and make
    every use of ``res`` read the sum."""
    users = list(res.uses)
    v = res
    new: list[Op] = []
    for mask in masks:
        other = tops.ShuffleXorOp([v], [v.type], {"mask": mask}, loc=loop.loc)
        total = ops.BINARY_OPS["add"]([v, other.result], [v.type], loc=loop.loc)
        new += [other, total]
        v = total.result
    block = loop.parent
    at = block.ops.index(loop) + 1
    for i, op in enumerate(new):
        block.insert(at + i, op)
    for user in users:
        for i, operand in enumerate(user.operands):
            if operand is res:
                user.set_operand(i, v)
