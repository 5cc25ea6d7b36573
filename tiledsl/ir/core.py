"""The IR skeleton shared by tile IR and thread IR: values, ops, blocks, the op registry.

An op is a small class registered under its textual name; it declares how many
operands and results it takes and verifies itself. Regions hold one block each
(control flow is structured: ``for`` and ``if`` own their bodies).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, ClassVar

from tiledsl.diagnostics import Loc
from tiledsl.ir.types import Type


class VerifyError(Exception):
    """An internal invariant of the IR is broken (a compiler bug, not a user error)."""

    def __init__(self, op: Op | None, message: str) -> None:
        where = f" at {op.loc}" if op is not None and op.loc else ""
        name = f"'{op.name}'" if op is not None else "IR"
        super().__init__(f"{name}{where}: {message}")
        self.op = op


class Value:
    """An SSA value: an op result or a block argument."""

    __slots__ = ("hint", "index", "owner", "type", "uses")

    def __init__(self, type: Type, owner: Op | Block | None = None, index: int = 0,
                 hint: str | None = None) -> None:
        self.type = type
        self.owner = owner
        self.index = index
        self.hint = hint
        self.uses: list[Op] = []

    def __repr__(self) -> str:
        return f"<Value {self.hint or '?'}: {self.type}>"


class Block:
    """A list of ops with typed arguments (the body of a region)."""

    def __init__(self, arg_types: list[Type] | None = None, arg_hints: list[str | None] | None = None) -> None:
        hints = arg_hints or [None] * len(arg_types or [])
        self.args = [Value(t, self, i, h) for i, (t, h) in enumerate(zip(arg_types or [], hints))]
        self.ops: list[Op] = []
        self.parent: Op | None = None

    def append(self, op: Op) -> Op:
        op.parent = self
        self.ops.append(op)
        return op

    def insert(self, index: int, op: Op) -> Op:
        """Put ``op`` at ``index`` of this block's ops (before the op now there)."""
        op.parent = self
        self.ops.insert(index, op)
        return op

    @property
    def terminator(self) -> Op | None:
        return self.ops[-1] if self.ops else None


OPS: dict[str, type[Op]] = {}

#: The modules that define ops (the IR's dialects): tile IR, then thread IR. ``op_class`` imports
#: them before it answers, so what a caller imported first never decides which ops exist.
DIALECTS = ("tiledsl.ir.ops", "tiledsl.thread.ops")


def register(cls: type[Op]) -> type[Op]:
    """Class decorator of the dialect modules: make an op known to the parser and the tables."""
    if cls.name in OPS:
        raise RuntimeError(f"op {cls.name!r} registered twice")
    OPS[cls.name] = cls
    return cls


def op_class(name: str) -> type[Op] | None:
    """The op class called ``name`` in any dialect, or None."""
    load_dialects()
    return OPS.get(name)


def load_dialects() -> dict[str, type[Op]]:
    """Every op of every dialect, by name (the dialect modules are imported on first use)."""
    import importlib
    for module in DIALECTS:
        importlib.import_module(module)
    return OPS


class Op:
    """Base class of every op. Subclasses set ``name`` and override ``verify``.

    ``pure`` ops have no side effects (DCE may drop them); ``cse`` ops may also be
    merged with an identical op (CSE) — memory reads are pure but not merged.
    """

    name: ClassVar[str] = "?"
    pure: ClassVar[bool] = False
    cse: ClassVar[bool] = False
    num_regions: ClassVar[int] = 0

    def __init__(self, operands: list[Value], result_types: list[Type], attrs: dict[str, Any] | None = None,
                 regions: list[Block] | None = None, loc: Loc | None = None,
                 hints: list[str | None] | None = None) -> None:
        self.operands: list[Value] = []
        for v in operands:
            self._add_operand(v)
        hints = hints or [None] * len(result_types)
        self.results = [Value(t, self, i, h) for i, (t, h) in enumerate(zip(result_types, hints))]
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.regions: list[Block] = list(regions or [])
        for r in self.regions:
            r.parent = self
        self.loc = loc
        self.parent: Block | None = None

    def _add_operand(self, v: Value) -> None:
        if not isinstance(v, Value):
            raise TypeError(f"operand of {self.name} is {v!r}, not a Value")
        self.operands.append(v)
        v.uses.append(self)

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise VerifyError(self, f"has {len(self.results)} results, not 1")
        return self.results[0]

    def set_operand(self, i: int, v: Value) -> None:
        old = self.operands[i]
        old.uses.remove(self)
        self.operands[i] = v
        v.uses.append(self)

    def drop_operands(self) -> None:
        for v in self.operands:
            v.uses.remove(self)
        self.operands = []

    def walk(self) -> Iterator[Op]:
        """This op and every op nested in its regions, in program order."""
        yield self
        for r in self.regions:
            for op in list(r.ops):
                yield from op.walk()

    def verify(self) -> None:
        """Check this op's own invariants; raise VerifyError. Subclasses extend."""
        if self.num_regions != len(self.regions):
            raise VerifyError(self, f"expects {self.num_regions} regions, has {len(self.regions)}")

    def __repr__(self) -> str:
        return f"<{self.name} at {self.loc}>"


def replace_all_uses(old: Value, new: Value) -> None:
    for user in list(old.uses):
        for i, v in enumerate(user.operands):
            if v is old:
                user.set_operand(i, new)


def clone_block(block: Block, vmap: dict[int, Value], op_map: dict[int, Op] | None = None) -> Block:
    """A deep copy of ``block``: operands renamed by ``vmap`` (outer values by id, to the values
    the copy uses instead), which learns the copied values; ``op_map`` (if given) learns each
    copied op's twin by id."""
    new = Block([a.type for a in block.args], [a.hint for a in block.args])
    for a, na in zip(block.args, new.args):
        vmap[id(a)] = na
    for op in block.ops:
        new.append(clone_op(op, vmap, op_map))
    return new


def clone_op(op: Op, vmap: dict[int, Value], op_map: dict[int, Op] | None = None) -> Op:
    """A deep copy of ``op`` (regions and attrs too); see :func:`clone_block`."""
    regions = [clone_block(r, vmap, op_map) for r in op.regions]
    new = type(op)([vmap.get(id(v), v) for v in op.operands], [r.type for r in op.results],
                   copy.deepcopy(op.attrs), regions, op.loc, [r.hint for r in op.results])
    for r, nr in zip(op.results, new.results):
        vmap[id(r)] = nr
    if op_map is not None:
        op_map[id(op)] = new
    return new


def erase(op: Op) -> None:
    """Remove an op (and everything nested in it) from its block."""
    for inner in list(op.walk()):
        inner.drop_operands()
        if inner is not op:
            inner.parent = None
    if op.parent is not None:
        op.parent.ops.remove(op)
        op.parent = None


def verify_tree(root: Op) -> None:
    """Verify every op, that every operand is defined before use (dominance in
    structured regions) and that every operand's definition is visible."""
    visible: list[set[int]] = []

    def visit_block(block: Block) -> None:
        visible.append({id(a) for a in block.args})
        for op in block.ops:
            for v in op.operands:
                if not any(id(v) in s for s in visible):
                    raise VerifyError(op, f"operand {v!r} is used before it is defined or out of scope")
            op.verify()
            for r in op.regions:
                visit_block(r)
            visible[-1].update(id(r) for r in op.results)
        visible.pop()

    root.verify()
    for r in root.regions:
        visit_block(r)
