"""Layout assignment (a pass of the thread level): give every register tile a thread layout.

Anchors come first: ``@ layout`` annotations, then ``dot`` results (an ``mma`` layout
of the target's matrix instruction; the kernel's own ``layout`` declarations are tried
before the defaults) and their operands (the matching ``dot_operand`` layouts), and
reductions (the ``slice`` of their operand's layout). Layouts then flow forwards and
backwards through element-wise ops, broadcasts, loops and ifs until nothing changes;
what is left gets a default ``blocked`` layout. Where two layouts meet a conversion is
inserted: a ``convert_layout`` when every thread already holds the data it needs (a
register shuffle), otherwise a round trip through an LDS scratch tile, written out as
ordinary LDS ops between two ``sync``s.

A ``dot`` tile smaller than its waves' instruction tiles takes an ``mma`` layout whose waves
replicate data (``tiledsl.layout.mma``): a declared one where it fits, else the default that
replicates least. A ``dot`` that no matrix-instruction layout fits (a dim that is not a whole
number of instruction tiles, f32 operands) keeps its operands in LDS and is computed with FMAs
(``lds_dot`` in thread IR).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value, replace_all_uses
from tiledsl.ir.types import INT_DTYPES, LdsType, TileType
from tiledsl.layout import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    LayoutError,
    LayoutSpec,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
    parse_layout_spec,
)
from tiledsl.layout.blocked import resolve_blocked
from tiledsl.thread.context import ThreadContext, register_mapping
from tiledsl.thread.reduction import ReducePlan, reduce_plan, result_layout
from tiledsl.thread.scan import accumulator, scan_lines, scan_plan

LDS_DOT = "lds_dot"


def _is_tile(v: Value) -> bool:
    return isinstance(v.type, TileType) and v.type.rank > 0


def _shape(v: Value) -> tuple[int, ...]:
    return tuple(v.type.shape)


class LayoutAssignment:
    def __init__(self, kernel: ops.KernelOp, ctx: ThreadContext) -> None:
        self.kernel = kernel
        self.ctx = ctx
        self.lay: dict[int, LayoutSpec] = {}
        self.values: dict[int, Value] = {}
        self.declared = [parse_layout_spec(t) for t in self._declared_texts()]
        # A loop's carried block argument and its result are one value across the loop:
        # they must always get the same layout.
        self.ties: dict[int, Value] = {}
        for op in kernel.walk():
            if isinstance(op, ops.ForOp):
                for arg, res in zip(op.regions[0].args[1:], op.results):
                    self.ties[id(arg)], self.ties[id(res)] = res, arg

    def _declared_texts(self) -> list[str]:
        seen = []
        for op in self.kernel.walk():
            for r in op.results:
                t = r.type
                if isinstance(t, TileType) and t.layout and t.layout.startswith("mma(") and t.layout not in seen:
                    seen.append(t.layout)
        return seen

    # ------------------------------------------------------------ bookkeeping
    def get(self, v: Value) -> LayoutSpec | None:
        return self.lay.get(id(v))

    def set(self, v: Value, spec: LayoutSpec | None) -> bool:
        """Record ``spec`` for ``v`` unless it has one or the spec cannot lay out its
        shape (a layout flowing in from a tile of another shape)."""
        if spec is None or not _is_tile(v) or id(v) in self.lay:
            return False
        spec = self.fit_instr(spec, v)
        if not self.fits(spec, v):
            return False
        self.lay[id(v)] = spec
        self.values[id(v)] = v
        partner = self.ties.get(id(v))
        if partner is not None and id(partner) not in self.lay:
            self.lay[id(partner)] = spec
            self.values[id(partner)] = partner
        return True

    def fits(self, spec: LayoutSpec, v: Value | tuple, dtype: str | None = None) -> bool:
        shape = _shape(v) if isinstance(v, Value) else v
        try:
            self.ctx.bind(spec, shape, dtype or (v.type.dtype if isinstance(v, Value) else "f32"))
            return True
        except LayoutError:
            return False

    # ------------------------------------------------------------ anchors
    def dot_spec(self, op: ops.DotOp) -> LayoutSpec | None:
        """The accumulator layout of a dot, or None for the LDS/FMA fallback."""
        a = op.operands[0]
        if a.type.dtype not in ("f16", "bf16") and self.ctx.target.matrix_instrs:
            return None
        w = self.ctx.num_waves
        splits = [(w // d, d) for d in range(1, w + 1) if w % d == 0]
        candidates = [self.fit_instr(d, op.result) for d in self.declared] + [MmaSpec(waves=s) for s in splits]
        candidates += [MmaSpec(waves=s, instr=i.name) for i in self.ctx.target.matrix_instrs for s in splits
                       if i.in_dtype == a.type.dtype]
        # A declared layout that fits, even where its waves replicate data (a tile smaller than
        # the waves' instruction tiles: the kernel said how it wants its waves used); then the
        # first default whose waves each hold their own part of the tile, else the default whose
        # waves replicate the least.
        declared = len(self.declared)
        for spec in candidates[:declared]:
            if self.dot_fits(spec, op):
                return spec
        for spec in candidates[declared:]:
            if self.dot_fits(spec, op) and self.copies(spec, op.result) == 1:
                return spec
        best: tuple[int, LayoutSpec] | None = None
        for spec in candidates[declared:]:
            spec = self.fit_instr(spec, op.result)
            if self.dot_fits(spec, op) and (best is None or self.copies(spec, op.result) < best[0]):
                best = (self.copies(spec, op.result), spec)
        return None if best is None else best[1]

    def copies(self, spec: LayoutSpec, v: Value) -> int:
        """How many threads hold each element of ``v`` in ``spec`` (at most); ``spec`` must fit."""
        return int(self.ctx.bind(spec, _shape(v), "f32").replication().max())

    def dot_fits(self, spec: LayoutSpec, op: ops.DotOp) -> bool:
        if not isinstance(spec, MmaSpec):
            return False
        a, b = op.operands[0], op.operands[1]
        return (self.fits(spec, op.result, "f32") and self.fits(DotOperandSpec(spec, 0), a)
                and self.fits(DotOperandSpec(spec, 1), b))

    def fit_instr(self, spec: LayoutSpec, v: Value) -> LayoutSpec:
        """An ``mma`` spec that names no instruction takes the first of the target's
        instructions whose fragments tile this value; one that does not say ``swap=`` takes
        the target's choice (``Target.mma_swap``) where it fits."""
        if not isinstance(spec, MmaSpec):
            return spec
        swaps = [True, None] if spec.swap is None and self.ctx.target.mma_swap else [spec.swap]
        candidates = []
        for swap in swaps:
            candidates.append(replace(spec, swap=swap))
            if spec.instr is None:
                candidates += [MmaSpec(waves=spec.waves, instr=i.name, swap=swap)
                               for i in self.ctx.target.matrix_instrs]
        # Waves that each hold their own part first; else the instruction whose tiles leave the
        # fewest waves replicating (a 16-row tile on MFMA takes 16x16x16 rather than 32x32x8).
        best: tuple[int, LayoutSpec] | None = None
        for cand in candidates:
            if not self.fits(cand, v, "f32"):
                continue
            copies = self.copies(cand, v)
            if copies == 1:
                return cand
            if best is None or copies < best[0]:
                best = (copies, cand)
        return spec if best is None else best[1]

    def seed(self) -> None:
        for op in self.kernel.walk():
            for r in op.results:
                if _is_tile(r) and r.type.layout:
                    spec = self.fit_instr(parse_layout_spec(r.type.layout), r)
                    try:
                        self.ctx.bind(spec, _shape(r), r.type.dtype)
                    except LayoutError as e:
                        from tiledsl.diagnostics import TdslError
                        raise TdslError(op.loc, f"layout {spec} does not fit {r.type.without_layout()} on "
                                                f"{self.ctx.target.name}: {e}") from None
                    self.set(r, spec)
        for op in self.kernel.walk():
            if isinstance(op, ops.DotOp):
                spec = self.get(op.result)
                if spec is None:
                    spec = self.dot_spec(op)
                    if spec is not None:
                        self.set(op.result, spec)
                    else:
                        op.attrs["strategy"] = LDS_DOT
                elif not self.dot_fits(spec, op):
                    if isinstance(spec, MmaSpec):
                        self.raise_layout(op, spec)
                    op.attrs["strategy"] = LDS_DOT

    def raise_layout(self, op: Op, spec: LayoutSpec) -> None:
        from tiledsl.diagnostics import TdslError
        for v, s, dt in ((op.result, spec, "f32"), (op.operands[0], DotOperandSpec(spec, 0), None),
                         (op.operands[1], DotOperandSpec(spec, 1), None)):
            try:
                self.ctx.bind(s, _shape(v), dt or v.type.dtype)
            except LayoutError as e:
                raise TdslError(op.loc, f"layout {spec} does not fit this dot on {self.ctx.target.name}: {e}") \
                    from None

    # ------------------------------------------------------------ propagation
    def demands(self, op: Op) -> list[tuple[Value, LayoutSpec | None]]:
        """(operand, layout it must have) pairs implied by op's known layouts."""
        out: list[tuple[Value, LayoutSpec | None]] = []
        if isinstance(op, (ops.ElementwiseOp, ops.ConvertLayoutOp)) and not isinstance(op, ops.ConvertLayoutOp):
            spec = self.get(op.result) if _is_tile(op.result) else None
            out += [(v, spec) for v in op.operands if _is_tile(v)]
        elif isinstance(op, ops.BroadcastOp):
            src = op.operands[0]
            spec = self.get(op.result)
            if _marks_broadcast(src) and spec is not None:
                axis = src.owner.attrs["axis"]
                out.append((src.owner.operands[0], slice_of(spec, axis, _shape(op.result))))
            elif _is_tile(src) and spec is not None:
                out.append((src, broadcast_source(spec, _shape(src), _shape(op.result))))
        elif isinstance(op, ops.ExpandDimsOp):
            spec = self.get(op.result)
            if spec is not None:
                out.append((op.operands[0], slice_of(spec, op.attrs["axis"], _shape(op.result))))
        elif isinstance(op, ops.DotOp) and op.attrs.get("strategy") != LDS_DOT:
            spec = self.get(op.result)
            if spec is not None:
                out += [(op.operands[0], DotOperandSpec(spec, 0)), (op.operands[1], DotOperandSpec(spec, 1))]
                if len(op.operands) == 3:
                    out.append((op.operands[2], spec))
        elif isinstance(op, ops.DotOp):
            spec = self.get(op.result)
            if len(op.operands) == 3:
                out.append((op.operands[2], spec))
        elif isinstance(op, ops.ReduceOp):
            spec = self.get(op.result)
            # A parent that cannot lay out the operand (its result's layout came from a tile of
            # another width): the reduction converts its result instead (``reduce_differently``).
            if isinstance(spec, SliceSpec) and spec.dim == op.attrs["axis"] \
                    and self.fits(spec.parent, op.operands[0]):
                out.append((op.operands[0], spec.parent))
        elif isinstance(op, ops.ArgReduceOp):
            spec = self.get(op.results[0])
            if isinstance(spec, SliceSpec) and spec.dim == op.attrs["axis"] \
                    and self.fits(spec.parent, op.operands[0]):
                out.append((op.operands[0], spec.parent))
        elif isinstance(op, ops.ScanOp):
            out.append((op.operands[0], self.get(op.result)))
        elif isinstance(op, ops.ForOp):
            body = op.regions[0]
            for init, arg, res, nxt in zip(op.operands[3:], body.args[1:], op.results, body.terminator.operands):
                spec = self.get(arg) or self.get(res)
                out += [(init, spec), (nxt, spec)]
        elif isinstance(op, ops.IfOp):
            for i, res in enumerate(op.results):
                spec = self.get(res)
                out += [(r.terminator.operands[i], spec) for r in op.regions]
        elif isinstance(op, ops.GlobalAccess):
            if op.attrs.get("gather"):
                out += self.gather_demands(op)
            if isinstance(op, ops.AtomicOp) and op.results:
                # The old values come back in the registers that held the value.
                out.append((op.value, self.get(op.result)))
        return [(v, s) for v, s in out if _is_tile(v)]

    def gather_demands(self, op: ops.GlobalAccess) -> list[tuple[Value, LayoutSpec | None]]:
        """A gather's index tiles are laid out as the gathered axis of its data tile, so that every
        thread holds the index of each row it reads or writes (``gather_index_spec``)."""
        if isinstance(op, ops.CopyOp):
            t = op.operands[-1].type
            data: LayoutSpec | None = self.default_blocked_of(tuple(t.shape), t.dtype)
            shape, dtype = tuple(t.shape), t.dtype
        else:
            v = op.result if isinstance(op, ops.LoadOp) else op.operands[-1]
            data, shape, dtype = self.get(v), _shape(v), v.type.dtype
        if data is None:
            return []
        spec = gather_index_spec(self.explicit(data, shape, dtype), shape, op.gather_axis())
        rank = len(op.operands[0].type.dims)
        return [(op.operands[1 + d], spec) for d in op.attrs["gather"] if d < rank]

    def explicit(self, spec: LayoutSpec, shape: tuple[int, ...], dtype: str) -> LayoutSpec:
        """``spec`` with the blocked fields it leaves to the dtype filled in (through slices and
        expands), so that it means the same registers for a tile of another dtype (an index tile)."""
        if isinstance(spec, BlockedSpec):
            spt, _, waves, order = resolve_blocked(spec, shape, self.ctx.num_waves, self.ctx.target.wave_size, dtype)
            return BlockedSpec(size_per_thread=spt, order=order, waves=waves)
        if isinstance(spec, SliceSpec) and spec.size is not None:
            parent_shape = shape[:spec.dim] + (spec.size,) + shape[spec.dim:]
            return replace(spec, parent=self.explicit(spec.parent, parent_shape, dtype))
        if isinstance(spec, ExpandSpec):
            return replace(spec, parent=self.explicit(spec.parent, shape[:spec.dim] + shape[spec.dim + 1:], dtype))
        return spec

    def default_blocked_of(self, shape: tuple[int, ...], dtype: str) -> BlockedSpec:
        """The default blocked layout of a ``shape`` tile of ``dtype``, with every field explicit
        (``ThreadContext.copy_layout`` binds it)."""
        spt, _, waves, order = resolve_blocked(BlockedSpec(), shape, self.ctx.num_waves, self.ctx.target.wave_size,
                                               dtype)
        return BlockedSpec(size_per_thread=spt, order=order, waves=waves)

    def forward(self, op: Op) -> bool:
        changed = False
        if isinstance(op, ops.ElementwiseOp) and _is_tile(op.result):
            for v in op.operands:
                if _is_tile(v) and self.get(v) is not None:
                    changed |= self.set(op.result, self.get(v))
                    break
        elif isinstance(op, ops.BroadcastOp):
            src = op.operands[0]
            if _marks_broadcast(src):
                inner = self.get(src.owner.operands[0])
                if isinstance(inner, SliceSpec) and inner.dim == src.owner.attrs["axis"]:
                    changed |= self.set(op.result, inner.parent)
        elif isinstance(op, ops.ExpandDimsOp) and not _marks_broadcast(op.result):
            inner = self.get(op.operands[0])
            if inner is not None:
                changed |= self.set(op.result, expand_of(inner, op.attrs["axis"]))
        elif isinstance(op, ops.ReduceOp) and _is_tile(op.result) and self.get(op.operands[0]) is not None:
            changed |= self.set(op.result, slice_of(self.get(op.operands[0]), op.attrs["axis"],
                                                    _shape(op.operands[0])))
        elif isinstance(op, ops.ArgReduceOp) and self.get(op.operands[0]) is not None:
            spec = slice_of(self.get(op.operands[0]), op.attrs["axis"], _shape(op.operands[0]))
            for r in op.results:
                changed |= self.set(r, spec)
        elif isinstance(op, ops.ScanOp) and self.get(op.operands[0]) is not None:
            changed |= self.set(op.result, self.scan_spec(op))
        elif isinstance(op, ops.ForOp):
            body = op.regions[0]
            for init, arg, res, nxt in zip(op.operands[3:], body.args[1:], op.results, body.terminator.operands):
                spec = self.get(arg) or self.get(res) or self.get(init) or self.get(nxt)
                changed |= self.set(arg, spec) | self.set(res, spec)
        elif isinstance(op, ops.IfOp):
            for i, res in enumerate(op.results):
                for r in op.regions:
                    changed |= self.set(res, self.get(r.terminator.operands[i]))
        elif isinstance(op, ops.AtomicOp) and op.results and _is_tile(op.result):
            changed |= self.set(op.result, self.get(op.value))
        return changed

    def propagate(self) -> None:
        changed = True
        while changed:
            changed = False
            all_ops = list(self.kernel.walk())
            for op in all_ops:
                changed |= self.forward(op)
            for op in reversed(all_ops):
                for v, spec in self.demands(op):
                    if spec is not None and self.get(v) is None and self.accepts(v, spec):
                        changed |= self.set(v, spec)

    def accepts(self, v: Value, spec: LayoutSpec) -> bool:
        """Values that can be produced directly in any layout take a demanded one."""
        owner = v.owner
        if isinstance(owner, (ops.ArgReduceOp, ops.ScanOp)):
            return False        # laid out after their operand (``forward``)
        if isinstance(owner, (ops.LdsReadOp, ops.LoadOp, ops.FillOp, ops.IotaOp, ops.TransposeOp,
                              ops.ElementwiseOp, ops.BroadcastOp, ops.ReduceOp, ops.DotOp, ops.ForOp, ops.IfOp)):
            return self.fits(spec, v)
        return self.fits(spec, v)

    def defaults(self) -> bool:
        """Give the default blocked layout to one value: the highest-rank, largest
        unassigned tile (so that 1-D row statistics inherit the slice of a 2-D tile
        rather than the other way round)."""
        best: Value | None = None
        for op in self.kernel.walk():
            for r in op.results:
                if _is_tile(r) and self.get(r) is None and not _marks_broadcast(r):
                    key = (r.type.rank, int(np.prod(r.type.shape)))
                    if best is None or key > (best.type.rank, int(np.prod(best.type.shape))):
                        best = r
        if best is None:
            return False
        spec = self.default_blocked(best)
        if not self.set(best, spec):    # else the same value would come back here forever
            self.ctx.bind(spec, _shape(best), best.type.dtype)      # raises the LayoutError saying why
            raise AssertionError(f"the default layout {spec} was refused for {best.type}")
        return True

    def default_blocked(self, v: Value) -> BlockedSpec:
        """The default blocked layout of ``v``, resolved to explicit numbers: the defaults depend
        on the dtype (16-byte vectors) and the layout must mean the same registers for every
        value that shares it."""
        spt, _, waves, order = resolve_blocked(BlockedSpec(), _shape(v), self.ctx.num_waves,
                                               self.ctx.target.wave_size, v.type.dtype)
        return BlockedSpec(size_per_thread=spt, order=order, waves=waves)

    # ------------------------------------------------------------ materialise
    def run(self) -> None:
        for op in list(self.kernel.walk()):
            if isinstance(op, ops.ExpandDimsOp):
                self.split_expand(op)
        self.seed()
        self.propagate()
        while self.defaults():
            self.propagate()
        for op in list(self.kernel.walk()):
            for r in op.results:
                spec = self.get(r)
                if spec is not None:
                    r.type = TileType(r.type.dtype, r.type.shape, str(spec))
            if isinstance(op, ops.ForOp):
                for a in op.regions[0].args[1:]:
                    spec = self.get(a)
                    if spec is not None:
                        a.type = TileType(a.type.dtype, a.type.shape, str(spec))
        for op in list(self.kernel.walk()):
            if op.parent is None:
                continue
            if isinstance(op, ops.TransposeOp) and not isinstance(op.operands[0].owner, ops.LdsReadOp):
                self.transpose_through_lds(op)
            if isinstance(op, ops.ArgReduceOp):
                self.arg_reduce_layouts(op)
            if isinstance(op, ops.ScanOp):
                self.scan_layouts(op)
            for v, spec in self.demands(op):
                if spec is None:
                    continue
                user = op
                if isinstance(op, ops.BroadcastOp) and _marks_broadcast(op.operands[0]):
                    user = op.operands[0].owner
                if isinstance(op, ops.ForOp) and any(v is x for x in op.operands[3:]):
                    self.convert_operand(op, v, spec)
                elif isinstance(op, (ops.ForOp, ops.IfOp)):
                    term = next(r.terminator for r in op.regions if any(v is x for x in r.terminator.operands))
                    self.convert_operand(term, v, spec)
                else:
                    self.convert_operand(user, v, spec)
            if isinstance(op, ops.DotOp) and op.attrs.get("strategy") == LDS_DOT:
                self.stage_lds_dot(op)
            if isinstance(op, ops.ReduceOp):
                self.reduce_scratch(op)
            if isinstance(op, ops.AtomicOp):
                self.atomic_scratch(op)
            if isinstance(op, (ops.ArgReduceOp, ops.ScanOp)):
                self.line_scratch(op)

    def split_expand(self, op: ops.ExpandDimsOp) -> None:
        """An ``x[:, _]`` that feeds broadcasts along its new axis and other ops is two: one for
        those broadcasts (which read ``x`` itself, ``_marks_broadcast``), one a tile of its own."""
        users = list(op.result.uses)
        wide = [u for u in users if _widens_new_axis(u, op)]
        if not wide or len(wide) == len(users):
            return
        twin = ops.ExpandDimsOp(list(op.operands), [op.result.type], dict(op.attrs), loc=op.loc)
        op.parent.insert(op.parent.ops.index(op), twin)
        for u in wide:
            u.set_operand(0, twin.result)

    def convert_operand(self, user: Op, v: Value, spec: LayoutSpec) -> None:
        have = self.get(v)
        if have == spec:
            return
        if isinstance(v.owner, (ops.LdsReadOp, ops.TransposeOp)) and len(v.uses) == 1 and have is not None:
            # A read of LDS can be done in any layout: re-type it instead of converting.
            self.lay[id(v)] = spec
            v.type = TileType(v.type.dtype, v.type.shape, str(spec))
            return
        new = self.converted(v, spec, self.conversion_point(user), user.loc)
        for i, x in enumerate(user.operands):
            if x is v:
                user.set_operand(i, new)

    def conversion_point(self, user: Op) -> Op:
        """Where the conversion of an operand of ``user`` goes: right before it, but before the
        LDS reads of a dot's other operand that come right before the dot. Those reads then stay
        next to their dot, with nothing in between that writes LDS or syncs, and the LLVM lowering
        can load them k-step by k-step (``can_defer``) instead of all before P's trip through LDS.

        Reading them after the conversion's syncs is reading them at the dot, as the program
        wrote it: those syncs only guard the conversion's own scratch tile (targets that convert
        in registers have none), so no correct program relies on them to order its own tiles."""
        if not isinstance(user, ops.DotOp):
            return user
        block = user.parent
        pos = block.ops.index(user)
        while pos > 0 and _reads_operand_of(block.ops[pos - 1], user):
            pos -= 1
        return block.ops[pos]

    def converted(self, v: Value, spec: LayoutSpec, before: Op, loc: Any) -> Value:
        """v in layout ``spec``, converted just before ``before`` (ops located at ``loc``)."""
        dtype = v.type.dtype
        src = self.ctx.bind(self.get(v), _shape(v), dtype)
        dst = self.ctx.bind(spec, _shape(v), dtype)
        new_type = TileType(dtype, v.type.shape, str(spec))
        block = before.parent
        pos = block.ops.index(before)
        if register_mapping(src, dst) is not None:
            op = ops.ConvertLayoutOp([v], [new_type], loc=loc)
            block.insert(pos, op)
            self.set(op.result, spec)
            return op.result
        return self.through_lds(v, new_type, before, transpose=False, loc=loc)

    def through_lds(self, v: Value, new_type: TileType, before: Op, transpose: bool, loc: Any) -> Value:
        """Write v to a scratch LDS tile and read it back (transposed, if asked)."""
        scratch = ops.LdsAllocOp([], [LdsType(v.type.dtype, v.type.shape)], {"scratch": True}, loc=loc)
        self.insert_scratch(scratch)       # first: in the kernel body it moves ``before``
        block = before.parent
        pos = block.ops.index(before)
        shape = new_type.shape
        seq: list[Op] = [ops.SyncOp([], [], loc=loc), ops.LdsWriteOp([scratch.result, v], [], loc=loc),
                         ops.SyncOp([], [], loc=loc)]
        read_t = TileType(v.type.dtype, v.type.shape, None if transpose else new_type.layout)
        read = ops.LdsReadOp([scratch.result], [read_t], loc=loc)
        seq.append(read)
        result = read.result
        if transpose:
            tr = ops.TransposeOp([read.result], [new_type], loc=loc)
            seq.append(tr)
            result = tr.result
        seq.append(ops.SyncOp([], [], loc=loc))
        for i, op in enumerate(seq):
            block.insert(pos + i, op)
        self.lay[id(result)] = parse_layout_spec(new_type.layout)
        del shape
        return result

    def insert_scratch(self, alloc: Op) -> None:
        body = self.kernel.body
        first = next(i for i, o in enumerate(body.ops) if not isinstance(o, (ops.BlockIdOp, ops.LdsAllocOp)))
        body.insert(first, alloc)

    def transpose_through_lds(self, op: ops.TransposeOp) -> None:
        x = op.operands[0]
        new = self.through_lds(x, op.result.type, op, transpose=True, loc=op.loc)
        replace_all_uses(op.result, new)
        from tiledsl.ir.core import erase
        erase(op)

    def stage_lds_dot(self, op: ops.DotOp) -> None:
        """The FMA fallback reads its operands from LDS: make sure they are there."""
        for i in (0, 1):
            v = op.operands[i]
            base = v.owner.operands[0].owner if isinstance(v.owner, ops.TransposeOp) else v.owner
            if isinstance(base, ops.LdsReadOp) and len(v.uses) == 1:
                continue
            scratch = ops.LdsAllocOp([], [LdsType(v.type.dtype, v.type.shape)], {"scratch": True}, loc=op.loc)
            self.insert_scratch(scratch)       # first: in the kernel body it moves ``op``
            block = op.parent
            pos = block.ops.index(op)
            read_t = TileType(v.type.dtype, v.type.shape)
            seq = [ops.SyncOp([], [], loc=op.loc), ops.LdsWriteOp([scratch.result, v], [], loc=op.loc),
                   ops.SyncOp([], [], loc=op.loc), ops.LdsReadOp([scratch.result], [read_t], loc=op.loc)]
            for j, o in enumerate(seq):
                block.insert(pos + j, o)
            op.set_operand(i, seq[-1].result)
            after = ops.SyncOp([], [], loc=op.loc)
            block.insert(block.ops.index(op) + 1, after)

    def reduce_scratch(self, op: ops.ReduceOp) -> None:
        """A reduction whose axis is spread over several waves combines them in LDS."""
        plan = self.reduce_plan(op) or self.reduce_differently(op)
        res = op.result
        if plan.across_waves and len(op.operands) == 1:
            # One slot per (output element, wave): wave w writes its partial at [i, w].
            out_len = int(np.prod(res.type.shape)) if res.type.shape else 1
            # The scratch's element size sets its strides: every integer keeps its own (an i64
            # partial needs 8 bytes), floats are stored in f32 slots.
            dtype = res.type.dtype if res.type.dtype in INT_DTYPES else "f32"
            scratch = ops.LdsAllocOp([], [LdsType(dtype, (out_len, self.ctx.num_waves))],
                                     {"scratch": True}, loc=op.loc)
            self.insert_scratch(scratch)
            op._add_operand(scratch.result)

    def atomic_scratch(self, op: ops.AtomicOp) -> None:
        """An atomic is made once per element, by the element's first holder; where its old values
        are used and other threads hold the element too (a replicated layout, or a scalar, which
        every thread holds), they reach those threads through an LDS scratch tile of the value's
        shape (one element for a scalar)."""
        if not op.results or not op.result.uses or op.scratch is not None:
            return
        t = op.result.type
        if t.shape and self.ctx.bind(t.layout, _shape(op.result), t.dtype).replication().max() == 1:
            return
        scratch = ops.LdsAllocOp([], [LdsType(t.dtype, tuple(t.shape) or (1,))], {"scratch": True}, loc=op.loc)
        self.insert_scratch(scratch)
        op._add_operand(scratch.result)

    def reduce_differently(self, op: ops.ReduceOp) -> ReducePlan:
        """A reduction whose layouts the lane butterfly cannot reduce (``reduce_plan``, e.g. a
        result pinned to an unrelated layout): reduce into the slice of the operand's layout,
        failing that reduce a blocked copy of the operand, and convert the result."""
        x, res = op.operands[0], op.result
        axis = op.attrs["axis"]
        want = self.get(res)
        plan = None
        if want is not None:
            self.retype(res, slice_of(self.get(x), axis, _shape(x)))
            plan = self.reduce_plan(op)
        if plan is None:
            blocked = self.default_blocked(x)
            self.convert_operand(op, x, blocked)
            if want is not None:
                self.retype(res, slice_of(blocked, axis, _shape(x)))
            plan = self.reduce_plan(op)
        if plan is None:
            raise RuntimeError(f"internal: {op.loc}: not even a blocked layout reduces this tile")
        if want is not None:
            users = list(res.uses)
            new = self.converted(res, want, op.parent.ops[op.parent.ops.index(op) + 1], op.loc)
            for user in users:
                for i, operand in enumerate(user.operands):
                    if operand is res:
                        user.set_operand(i, new)
        return plan

    def reduce_plan(self, op: ops.ReduceOp) -> ReducePlan | None:
        x = op.operands[0]
        src = self.ctx.bind(self.get(x), _shape(x), x.type.dtype)
        return reduce_plan(src, result_layout(self.ctx, op.result), op.attrs["axis"])

    def retype(self, v: Value, spec: LayoutSpec) -> None:
        self.lay[id(v)] = spec
        v.type = TileType(v.type.dtype, v.type.shape, str(spec))

    # ------------------------------------------------------------ arg-reductions and scans
    def scan_spec(self, op: ops.ScanOp) -> LayoutSpec:
        """The layout a scan runs in: its operand's where that is one ``scan_plan`` takes (blocked),
        else the default blocked layout of the operand."""
        x = op.operands[0]
        spec = self.get(x)
        if spec is not None and scan_plan(self.ctx.bind(spec, _shape(x), x.type.dtype), op.attrs["axis"]):
            return spec
        return self.default_blocked(x)

    def scan_layouts(self, op: ops.ScanOp) -> None:
        """A scan's result is in the layout it runs in; where its result was pinned to another (an
        ``@ layout``), it converts after the scan."""
        res = op.result
        want, spec = self.get(res), self.get(res)
        if spec is None or not scan_plan(self.ctx.bind(spec, _shape(res), res.type.dtype), op.attrs["axis"]):
            spec = self.scan_spec(op)
        if spec != want:
            self.relayout_results(op, [spec])

    def arg_reduce_layouts(self, op: ops.ArgReduceOp) -> None:
        """Both results of an arg-reduction in the slice of its operand's layout, where the reduction's
        plan takes it and the layout is the same for the values and the i32 indices; else in the slice
        of a blocked copy of the operand (the operand converts; results pinned elsewhere convert after)."""
        x, axis = op.operands[0], op.attrs["axis"]
        for parent in (self.get(x), self.default_blocked(x)):
            spec = slice_of(parent, axis, _shape(x))
            src = self.ctx.bind(parent, _shape(x), x.type.dtype)
            shape = _shape(op.results[0])
            dst = self.ctx.bind(spec if shape else ReplicatedSpec(), shape, x.type.dtype)
            if reduce_plan(src, dst, axis) is not None and (
                    not shape or dst.equivalent(self.ctx.bind(spec, shape, "i32"))):
                break
        else:
            raise RuntimeError(f"internal: {op.loc}: not even a blocked layout arg-reduces this tile")
        if parent != self.get(x):
            self.convert_operand(op, x, parent)
        if shape and any(self.get(r) != spec for r in op.results):
            self.relayout_results(op, [spec, spec])

    def relayout_results(self, op: Op, specs: list[LayoutSpec]) -> None:
        """Give ``op``'s results these layouts; users of a result that had another layout read it
        converted back, right after ``op``."""
        after = op.parent.ops[op.parent.ops.index(op) + 1]
        for res, spec in zip(op.results, specs):
            want, users = self.get(res), list(res.uses)
            self.retype(res, spec)
            if want is None or want == spec or not users:
                continue
            new = self.converted(res, want, after, op.loc)
            for user in users:
                for i, operand in enumerate(user.operands):
                    if operand is res:
                        user.set_operand(i, new)

    def line_scratch(self, op: ops.ArgReduceOp | ops.ScanOp) -> None:
        """The LDS scratch tiles of an arg-reduction or a scan whose axis spans several waves: an
        arg-reduction's waves write their (value, index) pairs at [element, wave] (two tiles, as a
        reduction's), a scan's their totals at [line x repetition, wave] (``distribute_scan``)."""
        x, axis = op.operands[0], op.attrs["axis"]
        src = self.ctx.bind(self.get(x), _shape(x), x.type.dtype)
        if isinstance(op, ops.ScanOp):
            plan = scan_plan(src, axis)
            if plan is None or plan.waves == 1 or len(op.operands) > 1:
                return
            acc = accumulator(x.type.dtype)
            tiles = [(acc if acc == "i32" else "f32", (scan_lines(_shape(x), axis, plan), plan.waves))]
        else:
            shape = _shape(op.results[0])
            dst = self.ctx.bind(self.get(op.results[0]) if shape else ReplicatedSpec(), shape, x.type.dtype)
            if not reduce_plan(src, dst, axis).across_waves or len(op.operands) > 1:
                return
            out_len = int(np.prod(shape)) if shape else 1
            tiles = [("i32" if x.type.dtype == "i32" else "f32", (out_len, self.ctx.num_waves)),
                     ("i32", (out_len, self.ctx.num_waves))]
        for dtype, shape in tiles:
            scratch = ops.LdsAllocOp([], [LdsType(dtype, shape)], {"scratch": True}, loc=op.loc)
            self.insert_scratch(scratch)
            op._add_operand(scratch.result)


def _reads_operand_of(op: Op, dot: Op) -> bool:
    """``op`` is an LDS read (or its transpose) whose value goes only into ``dot``, through at most
    a transpose."""
    if not isinstance(op, (ops.LdsReadOp, ops.TransposeOp)):
        return False
    return all(u is dot or (isinstance(u, ops.TransposeOp) and all(w is dot for w in u.result.uses))
               for u in op.result.uses)


def _marks_broadcast(v: Value) -> bool:
    """``v`` is an ``x[:, _]`` read only by broadcasts along its new axis: it gets no layout of
    its own, each broadcast reads ``x`` in the slice of its result's layout."""
    return isinstance(v.owner, ops.ExpandDimsOp) and bool(v.uses) and all(
        _widens_new_axis(u, v.owner) for u in v.uses)


def _widens_new_axis(user: Op, expand: Op) -> bool:
    """``user`` broadcasts ``expand``'s result along the new axis only."""
    if not isinstance(user, ops.BroadcastOp):
        return False
    axis = expand.attrs["axis"]
    shape = _shape(user.result)
    return shape[:axis] + shape[axis + 1:] == _shape(expand.operands[0])


def slice_of(parent: LayoutSpec, axis: int, parent_shape: tuple[int, ...]) -> LayoutSpec:
    """The layout of a reduction of ``parent`` along ``axis`` (layouts other than mma ones need
    the extent of the removed dim to know how lanes were split); of an ``expand`` along
    ``axis``, what it expanded."""
    if isinstance(parent, ExpandSpec) and parent.dim == axis:
        return parent.parent
    if isinstance(parent, (MmaSpec, DotOperandSpec)):
        return SliceSpec(parent, axis)
    return SliceSpec(parent, axis, size=parent_shape[axis])


def expand_of(inner: LayoutSpec, axis: int) -> LayoutSpec:
    """The layout of ``x[:, _]`` for ``x`` in ``inner``: ``inner`` with a size-1 dim at ``axis``
    (a slice of extent 1 along it is its parent)."""
    if isinstance(inner, SliceSpec) and inner.dim == axis and inner.size == 1:
        return inner.parent
    return ExpandSpec(axis, inner)


def gather_index_spec(spec: LayoutSpec, shape: tuple[int, ...], axis: int) -> LayoutSpec:
    """The layout of a gather's index tile for a data tile of ``shape`` in ``spec`` gathered along
    ``axis``: ``spec`` with every other dim sliced away (a thread holds the index of each of its
    rows; threads that share a row hold it alike)."""
    for d in reversed(range(len(shape))):
        if d != axis:
            spec = slice_of(spec, d, shape)
            shape = shape[:d] + shape[d + 1:]
    return spec


def broadcast_source(spec: LayoutSpec, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> LayoutSpec:
    """The layout in which a broadcast's source (extent 1 where the result is wider) gives every
    thread what its part of the result, laid out as ``spec``, needs: ``spec`` with each widened
    dim sliced away and put back with extent 1."""
    dims = [d for d, (a, b) in enumerate(zip(src_shape, dst_shape)) if a == 1 and b != 1]
    shape = tuple(dst_shape)
    for d in reversed(dims):
        spec = slice_of(spec, d, shape)
        shape = shape[:d] + shape[d + 1:]
    for d in dims:
        spec = expand_of(spec, d)
    return spec


def run(kernel: Op, ctx: ThreadContext) -> bool:
    """Assign layouts to every register tile of ``kernel`` for ``ctx``'s target."""
    LayoutAssignment(kernel, ctx).run()
    return True
