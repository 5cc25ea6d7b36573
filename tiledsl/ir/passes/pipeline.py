"""Software pipelining of the copies into LDS in ``for ... pipeline S`` loops.

A loop marked ``pipeline = S`` (S >= 2) has its *pipelined copies* — the ``copy`` ops at
the top level of its body whose starts depend on the loop variable — issued S-1
iterations ahead, so that copying tile j+S-1 overlaps computing on tile j::

    for n in lo .. hi step st {             lds ks_stage0 .. ks_stage{S-1}
      sync                                  for i in 0 .. S-2:                     (prologue)
      ks <- K[n : +BN]          ==>           if lo + i*st < hi { ks_stage{i} <- async K[lo + i*st : +BN] }
      sync                                    async_commit
      s = dot(q, ks^T) ...                  for nb in lo .. hi step S*st {
    }                                         for u in 0 .. S-1:                  (unrolled; u > 0 under
                                                n = nb + u*st                        `if n < hi`)
                                                async_wait {pending = S-2}        tile n has landed
                                                sync                              ... for every thread; and
                                                                                  every read of the buffer
                                                                                  refilled next is done
                                                if n + (S-1)*st < hi { ks_stage{(u+S-1)%S} <- async K[n + (S-1)*st : +BN] }
                                                async_commit                      one group per iteration
                                                s = dot(q, ks_stage{u}^T) ...
                                            }

Iteration k reads buffer k mod S. The loop body is unrolled S times rather than selecting
the buffer at run time: LDS offsets stay static ints (``lds_alloc``), so distribution, the
FMA ``lds_dot`` fallback and the LDS race checker need nothing new; the price is S copies of
the body's code. Groups are committed uniformly (empty past the end), so ``wait_group S-2``
at iteration k always leaves exactly the groups of tiles k+1 .. k+S-2 in flight. The ``sync``s
that the original body had around its copies order nothing more than the inserted one does
and are dropped.

The copies become ``copy {async = true}``; targets without asynchronous copies run them
synchronously at the issue point (``tiledsl.thread.distribute``), where pipelining gains
nothing, so the thread level only pipelines for targets with ``has_async_copy``
(``run(kernel, async_copy=...)``); the checks below run on every target alike.
"""

from __future__ import annotations

from collections.abc import Callable

from tiledsl.diagnostics import TdslError
from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, Value, clone_op, erase, replace_all_uses
from tiledsl.ir.types import LdsType, scalar

#: Set on each LDS tile the pass makes: which stage of which tile it is.
STAGE_ATTR = "pipeline_stage"


def run(kernel: Op, async_copy: bool = True) -> bool:
    """Pipeline every ``for`` with a ``pipeline`` attribute (inner loops first). With
    ``async_copy`` False the loops are checked and left as they are."""
    changed = False
    loops = [op for op in kernel.walk() if isinstance(op, ops.ForOp) and "pipeline" in op.attrs]
    for loop in reversed(loops):
        stages = loop.attrs.pop("pipeline")
        plan = Plan.of(loop)
        if async_copy and stages > 1:
            Pipeliner(loop, plan, stages).run()
            changed = True
    return changed


def check(kernel: Op) -> bool:
    """The checks of ``run`` alone, leaving the IR as it is: run on sema's tile IR, so that
    what cannot be pipelined is an error on every target, as early as any type error."""
    for loop in kernel.walk():
        if isinstance(loop, ops.ForOp) and "pipeline" in loop.attrs:
            Plan.of(loop)
    return False


def pipelined_loop(alloc: Op) -> Op | None:
    """The pipelined loop that uses an LDS tile made by this pass (for LDS-size errors)."""
    if STAGE_ATTR not in alloc.attrs:
        return None
    for use in alloc.result.uses:
        cur: Op | None = use
        while cur is not None:
            if isinstance(cur, ops.ForOp) and "pipelined" in cur.attrs:
                return cur
            cur = cur.parent.parent if cur.parent is not None else None
    return None


# ---------------------------------------------------------------- what to pipeline

def _inside(op: Op, region_owner: Op) -> bool:
    cur: Op | None = op
    while cur is not None:
        if cur is region_owner:
            return True
        cur = cur.parent.parent if cur.parent is not None else None
    return False


def _top_level(op: Op, body: Block) -> Op:
    """The op of ``body`` that is or contains ``op``."""
    cur = op
    while cur.parent is not body:
        cur = cur.parent.parent
    return cur


def _name(v: Value) -> str:
    return v.hint or "the tile"


class Plan:
    """The pipelined copies of one loop and the body ops their starts are computed from."""

    def __init__(self, loop: ops.ForOp, copies: list[ops.CopyOp], slice_ops: list[Op]) -> None:
        self.loop = loop
        self.copies = copies
        self.slice_ops = slice_ops       # in body order
        self.buffers = [c.operands[-1] for c in copies]

    @classmethod
    def of(cls, loop: ops.ForOp) -> Plan:
        """Find and check the pipelined copies; a located TdslError for what cannot be."""
        body = loop.regions[0]
        iv, carried = body.args[0], body.args[1:]
        depends = {id(iv)}
        for op in body.ops:
            if not op.regions and any(id(v) in depends for v in op.operands):
                depends.update(id(r) for r in op.results)
        copies = [op for op in body.ops if isinstance(op, ops.CopyOp)
                  and any(id(v) in depends for v in op.operands[1:-1])]
        if not copies:
            raise TdslError(loop.loc, f"'pipeline' needs a copy 'lds_tile <- Tensor[...]' in the loop body whose "
                                      f"indices depend on the loop variable '{_name(iv)}'")
        seen: dict[int, ops.CopyOp] = {}
        for c in copies:
            buf = c.operands[-1]
            if id(buf) in seen:
                raise TdslError(c.loc, f"LDS tile '{_name(buf)}' is copied twice in the pipelined loop "
                                       f"(first at line {seen[id(buf)].loc.line})")
            seen[id(buf)] = c
            if _inside(buf.owner, loop):
                raise TdslError(buf.owner.loc, f"LDS tile '{_name(buf)}' is declared inside the pipelined loop",
                                ["declare it before the loop"])
        slice_ops = _start_slice(loop, copies, {id(a) for a in carried})
        for c in copies:
            cls._check_uses(loop, c)
        return cls(loop, copies, slice_ops)

    @staticmethod
    def _check_uses(loop: ops.ForOp, c: ops.CopyOp) -> None:
        buf = c.operands[-1]
        body = loop.regions[0]
        root = loop
        while root.parent is not None and root.parent.parent is not None:
            root = root.parent.parent
        order = {id(o): i for i, o in enumerate(root.walk())}
        after_note = "the last tile of a pipelined loop is not in the declared buffer; copy it again after the loop"
        write_note = "besides its one copy, a pipelined tile may only be read in the loop"
        read_note = "with 'pipeline' the tile holds this iteration's data from the copy on; move the read after it"
        for use in buf.uses:
            if use is c:
                continue
            if not _inside(use, loop):
                if order[id(use)] > order[id(loop)] and not _tail_of(use, loop):
                    raise TdslError(use.loc, f"LDS tile '{_name(buf)}' is used after the loop that pipelines "
                                             f"its copies (line {loop.loc.line})", [after_note])
                continue
            if not isinstance(use, ops.LdsReadOp):
                raise TdslError(use.loc, f"LDS tile '{_name(buf)}' is written here and also by the pipelined "
                                         f"copy at line {c.loc.line}", [write_note])
            if body.ops.index(_top_level(use, body)) < body.ops.index(c):
                raise TdslError(use.loc, f"LDS tile '{_name(buf)}' is read here before its pipelined copy "
                                         f"(line {c.loc.line}) in the loop body", [read_note])


def _tail_of(use: Op, loop: ops.ForOp) -> bool:
    """``use`` is in the tail loop that split-tail made from the same source loop as ``loop``
    (which copies the tile again before reading it)."""
    if loop.attrs.get("split") != "full":
        return False
    cur: Op | None = use
    while cur is not None:
        if isinstance(cur, ops.ForOp) and cur.attrs.get("split") == "tail" and cur.loc == loop.loc:
            return True
        cur = cur.parent.parent if cur.parent is not None else None
    return False


def _start_slice(loop: ops.ForOp, copies: list[ops.CopyOp], carried: set[int]) -> list[Op]:
    """The body ops the copies' starts are computed from (pure scalar ops of the iv and of
    values from outside the loop), so they can be recomputed for a later iteration."""
    body = loop.regions[0]
    need: set[int] = set()
    work = [v for c in copies for v in c.operands[1:-1]]
    while work:
        v = work.pop()
        if id(v) in need:
            continue
        need.add(id(v))
        if id(v) in carried:
            user = next(c for c in copies if _feeds(c, v))
            note = "only copies whose indices are computed from the loop variable can be issued ahead"
            raise TdslError(user.loc, f"the indices of this copy depend on '{_name(v)}', which changes from one "
                                      f"iteration to the next", [note])
        owner = v.owner
        if isinstance(owner, Op) and _inside(owner, loop):
            if owner.regions or not owner.pure or owner.parent is not body:
                raise TdslError(owner.loc, f"the indices of a pipelined copy use this '{owner.name}', which "
                                           f"cannot be recomputed for a later iteration")
            work.extend(owner.operands)
    return [op for op in body.ops if any(id(r) in need for r in op.results)]


def _feeds(c: ops.CopyOp, v: Value) -> bool:
    work, seen = list(c.operands[1:-1]), set()
    while work:
        x = work.pop()
        if x is v:
            return True
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x.owner, Op):
            work.extend(x.owner.operands)
    return False


# ---------------------------------------------------------------- the transformation

def _touches_lds(op: Op) -> bool:
    """Whether ``op`` (or an op inside it) reads or writes LDS, or synchronises."""
    for inner in op.walk():
        if inner is not op and isinstance(inner, ops.SyncOp):
            return True
        if isinstance(inner, (ops.CopyOp, ops.LdsReadOp, ops.LdsWriteOp, ops.AsyncWaitOp)):
            return True
        if any(isinstance(v.type, LdsType) for v in inner.operands):
            return True
    return False


class Pipeliner:
    """Rewrites one checked loop (see the module docstring for the shape of the result)."""

    def __init__(self, loop: ops.ForOp, plan: Plan, stages: int) -> None:
        self.loop = loop
        self.plan = plan
        self.S = stages
        self.block: Block = loop.parent
        self.pos = self.block.ops.index(loop)
        self.loc = loop.loc
        body = loop.regions[0]
        self.iv = body.args[0]
        self.carried = body.args[1:]
        self.lo, self.hi, self.step = loop.operands[:3]
        self.buffers: dict[int, list[Value]] = {}
        self.current: Block = self.block

    # ---- building helpers
    def emit(self, op: Op) -> Op:
        if self.current is self.block:
            self.block.insert(self.pos, op)
            self.pos += 1
        else:
            self.current.append(op)
        return op

    def i32(self, value: int) -> Value:
        return self.emit(ops.ConstOp([], [scalar("i32")], {"value": value}, loc=self.loc)).result

    def binop(self, name: str, a: Value, b: Value, hint: str | None = None) -> Value:
        cls = ops.COMPARE_OPS.get(name) or ops.BINARY_OPS[name]
        rt = scalar("i1") if name in ops.COMPARE_OPS else scalar("i32")
        return self.emit(cls([a, b], [rt], loc=self.loc, hints=[hint])).result

    def ahead(self, base: Value, k: int, hint: str | None = None) -> Value:
        """``base + k*step``."""
        if k == 0:
            return base
        offset = self.step if k == 1 else self.binop("mul", self.i32(k), self.step)
        return self.binop("add", base, offset, hint)

    def guarded(self, cond: Value, then: Callable[[], list[Value]], results: list[Value]) -> list[Value]:
        """``if cond { then() } else { results }``; ``then`` returns the values it yields."""
        outer = self.current
        t, e = Block(), Block()
        self.current = t
        yields = then()
        t.append(ops.YieldOp(yields, [], loc=self.loc))
        e.append(ops.YieldOp(list(results), [], loc=self.loc))
        self.current = outer
        op = self.emit(ops.IfOp([cond], [v.type for v in results], regions=[t, e], loc=self.loc,
                                hints=[v.hint for v in results]))
        return list(op.results)

    # ---- pieces
    def issue(self, n: Value, stage: int) -> None:
        """``if n < hi``: the pipelined copies of iteration ``n`` into buffers ``stage``."""
        def copies() -> list[Value]:
            vmap = {id(self.iv): n}
            for op in self.plan.slice_ops:
                self.emit(clone_op(op, vmap))
            for c in self.plan.copies:
                new = clone_op(c, vmap)
                new.set_operand(len(new.operands) - 1, self.buffers[id(c.operands[-1])][stage])
                new.attrs["async"] = True
                self.emit(new)
            return []
        self.guarded(self.binop("lt", n, self.hi), copies, [])

    def iteration(self, n: Value, carried: list[Value], u: int) -> list[Value]:
        """The body for iteration ``n``, reading buffers ``u``; returns the next carried values."""
        body = self.loop.regions[0]
        vmap: dict[int, Value] = {id(self.iv): n}
        vmap.update({id(a): v for a, v in zip(self.carried, carried)})
        for buf, stages in self.buffers.items():
            vmap[buf] = stages[u]
        skip = {id(c) for c in self.plan.copies}
        first = self.plan.copies[0]
        for op in body.ops:
            if isinstance(op, ops.YieldOp):
                return [vmap.get(id(v), v) for v in op.operands]
            if op is first:
                self.emit(ops.AsyncWaitOp([], [], {"pending": self.S - 2}, loc=op.loc))
                self.emit(ops.SyncOp([], [], loc=op.loc))
                self.issue(self.ahead(n, self.S - 1), (u + self.S - 1) % self.S)
                self.emit(ops.AsyncCommitOp([], [], loc=op.loc))
            if id(op) in skip:
                continue
            self.emit(clone_op(op, vmap))
        raise AssertionError("loop body without yield")

    def drop_redundant_syncs(self, blk: Block) -> None:
        """Syncs separated from the inserted one by nothing that touches LDS order nothing more."""
        ours = [i for i, op in enumerate(blk.ops) if isinstance(op, ops.AsyncWaitOp)]
        if not ours:
            return
        wait = ours[0]
        sync = wait + 1
        drop = []
        i = wait - 1
        while i >= 0 and not _touches_lds(blk.ops[i]):
            if isinstance(blk.ops[i], ops.SyncOp):
                drop.append(blk.ops[i])
            i -= 1
        i = next(j for j in range(sync, len(blk.ops)) if isinstance(blk.ops[j], ops.AsyncCommitOp)) + 1
        while i < len(blk.ops) and not _touches_lds(blk.ops[i]):
            if isinstance(blk.ops[i], ops.SyncOp):
                drop.append(blk.ops[i])
            i += 1
        for op in drop:
            erase(op)

    # ---- driver
    def run(self) -> None:
        S, loop = self.S, self.loop
        for buf in self.plan.buffers:
            alloc = buf.owner
            self.buffers[id(buf)] = [
                self.emit(ops.LdsAllocOp([], [buf.type], {STAGE_ATTR: i}, loc=alloc.loc,
                                         hints=[f"{_name(buf)}_stage{i}"])).result
                for i in range(S)]
        for i in range(S - 1):
            self.issue(self.ahead(self.lo, i), i)
            self.emit(ops.AsyncCommitOp([], [], loc=self.loc))
        step_s = self.binop("mul", self.step, self.i32(S))
        inits = list(loop.operands[3:])
        body = Block([scalar("i32"), *[a.type for a in self.carried]], [self.iv.hint, *[a.hint for a in self.carried]])
        outer = self.current
        self.current = body
        carried = list(body.args[1:])
        for u in range(S):
            n = self.ahead(body.args[0], u, self.iv.hint)
            if u == 0:
                carried = self.iteration(n, carried, u)
                self.drop_redundant_syncs(body)
                continue

            def one(n: Value = n, carried: list[Value] = carried, u: int = u) -> list[Value]:
                out = self.iteration(n, carried, u)
                self.drop_redundant_syncs(self.current)
                return out
            carried = self.guarded(self.binop("lt", n, self.hi), one, carried)
        body.append(ops.YieldOp(carried, [], loc=loop.regions[0].terminator.loc))
        self.current = outer
        new = self.emit(ops.ForOp([self.lo, self.hi, step_s, *inits], [r.type for r in loop.results],
                                  {"pipelined": S}, regions=[body], loc=loop.loc,
                                  hints=[r.hint for r in loop.results]))
        for old, r in zip(loop.results, new.results):
            replace_all_uses(old, r)
        erase(loop)
        for buf in self.plan.buffers:
            if not buf.uses:
                erase(buf.owner)
