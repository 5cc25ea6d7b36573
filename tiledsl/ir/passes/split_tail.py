"""Index-set splitting: run a loop's full tiles without their bounds masks.

A loop ``for n in lo .. hi step S`` whose body masks against a bound ``B`` — a compare
``n + r < B`` with ``r`` at most ``S - 1`` (``where(n + iota(S) < N, ...)``), more generally
``n + r < y`` or ``<=`` with ``y`` loop-invariant and at least ``w + s`` (the causal mask
``n + iota(BN) <= bm*BM + iota(BM)``: true below the diagonal), or a global slice
``T[.., n : +E, ..]`` with ``E <= S`` along a dim of size ``B`` (and, for ``n : +E until C``,
a loop-invariant ``C``: the split then also keeps ``n + S <= C``) — needs those masks only in
the iterations where ``n + S > B``. Bounds may be run-time values (a loop from ``Off[g]`` to
``Off[g + 1]``). The loop becomes two over the same iteration sequence::

    split = lo + max(0, (B - lo) // S) * S          # first n with n + S > B (on the grid)
    for n in lo .. min(hi, split) step S { body, masks known true }
    for n in min(hi, split) .. hi step S { body }   # at most the partial tile, usually

In the first copy such compares feed ``select``/``and`` no more (they are known true) and the
slices are marked ``inbounds`` (distribution then emits no bounds test for those dims; the
block interpreter checks the claim). Loop-carried values flow from the first loop into the
second. With several bounds the split uses the smallest.
"""

from __future__ import annotations

from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, Value, clone_block, replace_all_uses
from tiledsl.ir.types import TensorType, scalar

Range = tuple[int, int]


def _const(v: Value) -> int | None:
    if isinstance(v.owner, ops.ConstOp) and isinstance(v.owner.attrs["value"], int) \
            and not isinstance(v.owner.attrs["value"], bool):
        return int(v.owner.attrs["value"])
    return None


class _Ranges:
    """Values of the loop body as ``iv + r`` with ``r`` in a known range (``relative``), or a
    known range on their own (``absolute``), seen through broadcasts and expand_dims."""

    def __init__(self, iv: Value) -> None:
        self.iv = iv

    def absolute(self, v: Value) -> Range | None:
        op = v.owner
        c = _const(v)
        if c is not None:
            return c, c
        if isinstance(op, ops.IotaOp):
            return 0, op.result.type.shape[0] - 1
        if isinstance(op, (ops.BroadcastOp, ops.ExpandDimsOp)):
            return self.absolute(op.operands[0])
        return None

    def offset(self, v: Value, loop: ops.ForOp) -> tuple[Value | None, int] | None:
        """``(w, s_lo)`` with every element of ``v`` at least ``w + s_lo``, ``w`` a scalar from
        outside ``loop`` (None: 0) and the rest from constants and iotas: loop-invariant."""
        if v.type.shape == () and _defined_outside(v, loop):
            c = _const(v)
            return (None, c) if c is not None else (v, 0)
        a = self.absolute(v)
        if a is not None:
            return None, a[0]
        op = v.owner
        if isinstance(op, (ops.BroadcastOp, ops.ExpandDimsOp)):
            return self.offset(op.operands[0], loop)
        if isinstance(op, Op) and op.name == "add":
            for p, q in (op.operands, op.operands[::-1]):
                form, rq = self.offset(p, loop), self.absolute(q)
                if form is not None and rq is not None:
                    return form[0], form[1] + rq[0]
        return None

    def relative(self, v: Value) -> Range | None:
        if v is self.iv:
            return 0, 0
        op = v.owner
        if isinstance(op, (ops.BroadcastOp, ops.ExpandDimsOp)):
            return self.relative(op.operands[0])
        if isinstance(op, Op) and op.name in ("add", "sub"):
            a, b = op.operands
            rb = self.absolute(b)
            ra = self.relative(a)
            if ra is not None and rb is not None:
                return (ra[0] + rb[0], ra[1] + rb[1]) if op.name == "add" else (ra[0] - rb[1], ra[1] - rb[0])
            if op.name == "add":
                ra, rb = self.absolute(a), self.relative(b)
                if ra is not None and rb is not None:
                    return ra[0] + rb[0], ra[1] + rb[1]
        return None


def _defined_outside(v: Value, loop: ops.ForOp) -> bool:
    owner = v.owner
    block = owner.parent if isinstance(owner, Op) else owner
    while block is not None:
        if block is loop.regions[0]:
            return False
        parent = block.parent
        block = parent.parent if isinstance(parent, Op) else None
    return True


def _bound_key(v: Value) -> tuple:
    if isinstance(v.owner, ops.DimOp):
        return "dim", v.owner.attrs["name"]
    c = _const(v)
    return ("const", c) if c is not None else ("value", id(v))


class _Split:
    """What can be dropped in the full-tile copy of one loop."""

    def __init__(self, loop: ops.ForOp, step: int) -> None:
        self.loop = loop
        self.step = step
        self.ranges = _Ranges(loop.regions[0].args[0])
        # key -> bound: a value, a dim name, a static size, or ("offset", w, c) for w + c
        self.bounds: dict[tuple, Value | str | int | tuple] = {}
        self.true_compares: list[Op] = []
        self.inbounds: dict[int, list[int]] = {}             # id(global access op) -> dims

    def scan(self) -> bool:
        lo = _const(self.loop.operands[0])
        for op in self.loop.walk():
            if op is self.loop:
                continue
            if op.name in ("lt", "le", "gt", "ge") and isinstance(op, ops.ElementwiseOp):
                x, y = op.operands if op.name in ("lt", "le") else op.operands[::-1]
                r = self.ranges.relative(x)
                form = self.ranges.offset(y, self.loop)
                if r is not None and form is not None:
                    # x = n + r <= n + r_hi and y = w + s >= w + s_lo, so x < y (x <= y: x < y + 1)
                    # holds when n + r_hi - s_lo + 1 <= w: for n + S <= w + c with this c.
                    w, s_lo = form
                    c = s_lo - r[1] + self.step - (1 if op.name in ("lt", "gt") else 0)
                    if w is not None and c == 0:
                        self.bounds.setdefault(_bound_key(w), w)
                    else:
                        self.bounds.setdefault(("offset", None if w is None else _bound_key(w), c), ("offset", w, c))
                    self.true_compares.append(op)
            elif isinstance(op, (ops.LoadOp, ops.CopyOp, ops.StoreOp)):
                t: TensorType = op.operands[0].type
                dims = []
                # A gathered dim's indices are data, not n + r; a bound ('until') joins the
                # dim's size as a bound of the split only when it is the same in every iteration.
                gather = op.attrs.get("gather", ())
                cuts = dict(zip(op.attrs.get("bounded", ()), op.bounds()))
                for d, (ext, start) in enumerate(zip(op.attrs["extents"], op.operands[1:1 + len(t.dims)])):
                    if d in gather or (d in cuts and not _defined_outside(cuts[d], self.loop)):
                        continue
                    r = self.ranges.relative(start)
                    # idx = n + r + (0 .. ext-1): below the bound when n + S <= B; not negative
                    # when n >= lo >= -r.
                    if ext and r is not None and r[1] + ext <= self.step and lo is not None and lo + r[0] >= 0:
                        name = t.dims[d]
                        self.bounds.setdefault(("dim", name) if isinstance(name, str) else ("const", name), name)
                        if d in cuts:
                            self.bounds.setdefault(_bound_key(cuts[d]), cuts[d])
                        dims.append(d)
                if dims:
                    self.inbounds[id(op)] = dims
        return bool(self.true_compares or self.inbounds)


def _emit(block: Block, pos: int, op: Op) -> tuple[Value, int]:
    block.insert(pos, op)
    return op.result, pos + 1


def _known_true(fast_body: Block, compares: list[Op]) -> None:
    """Drop the known-true compares from the selects and ands they feed (through broadcasts)."""
    true_values = [c.result for c in compares]
    while true_values:
        v = true_values.pop()
        for user in list(v.uses):
            if user.parent is None:
                continue
            if isinstance(user, (ops.BroadcastOp, ops.ExpandDimsOp)):
                true_values.append(user.result)
            elif isinstance(user, ops.SelectOp) and user.operands[0] is v:
                replace_all_uses(user.result, user.operands[1])
            elif user.name == "and":
                other = user.operands[1] if user.operands[0] is v else user.operands[0]
                if other.type == user.result.type:
                    replace_all_uses(user.result, other)


def _split(loop: ops.ForOp, split: _Split) -> None:
    block = loop.parent
    assert block is not None
    pos = block.ops.index(loop)
    lo, hi, step = loop.operands[:3]
    i32 = scalar("i32")
    loc = loop.loc

    def op(name: str, *args: Value) -> Value:
        nonlocal pos
        v, pos = _emit(block, pos, ops.BINARY_OPS[name](list(args), [i32], loc=loc))
        return v

    def const(c: int) -> Value:
        nonlocal pos
        v, pos = _emit(block, pos, ops.ConstOp([], [i32], {"value": c}, loc=loc))
        return v

    bound: Value | None = None
    for b in split.bounds.values():
        if isinstance(b, Value):
            val = b
        elif isinstance(b, tuple):
            _, w, c = b
            val = const(c) if w is None else op("add", w, const(c))
        elif isinstance(b, str):
            val, pos = _emit(block, pos, ops.DimOp([], [i32], {"name": b}, loc=loc))
        else:
            val = const(int(b))
        bound = val if bound is None else op("min", bound, val)
    assert bound is not None
    count = op("max", op("floordiv", op("sub", bound, lo), step), const(0))
    mid = op("min", hi, op("add", lo, op("mul", count, step)))

    mapping: dict[int, Value] = {}
    twins: dict[int, Op] = {}
    fast_body = clone_block(loop.regions[0], mapping, twins)
    fast = ops.ForOp([lo, mid, step, *loop.operands[3:]], [r.type for r in loop.results],
                     {**loop.attrs, "split": "full"}, regions=[fast_body], loc=loc,
                     hints=[r.hint for r in loop.results])
    block.insert(pos, fast)
    for key, dims in split.inbounds.items():
        twins[key].attrs["inbounds"] = dims
    _known_true(fast_body, [twins[id(c)] for c in split.true_compares])
    loop.set_operand(0, mid)
    for i, r in enumerate(fast.results):
        loop.set_operand(3 + i, r)
    loop.attrs["split"] = "tail"


def run(kernel: Op) -> bool:
    changed = False
    for loop in [op for op in kernel.walk() if isinstance(op, ops.ForOp)]:
        if loop.attrs.get("split") or loop.parent is None:
            continue
        step = _const(loop.operands[2])
        if step is None or step <= 0:
            continue
        split = _Split(loop, step)
        if not split.scan():
            continue
        _split(loop, split)
        changed = True
    return changed


__all__ = ["run"]
