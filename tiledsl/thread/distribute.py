"""Distribution: tile IR (with layouts and LDS offsets) → thread IR.

Each register tile becomes ``regs<dtype, R>`` in every thread, R being its layout's
registers per thread; uniform scalars stay scalars. Memory ops get per-register
indices and masks computed from the layout's coordinates, with vector widths where
consecutive registers are consecutive in memory; LDS byte offsets follow each tile's
storage layout (``LdsStorage``: dim order and padding, chosen by the lds-layout pass),
so a transposed or column-major read vectorises too; ``dot`` becomes ``mma_tile`` (or the
``lds_dot`` FMA fallback); reductions go in-thread, then across lanes by xor
shuffles, then across waves through LDS; ``sync`` becomes ``barrier``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, Value
from tiledsl.ir.lds_storage import LdsStorage, buffer_coords, vector_width
from tiledsl.ir.types import (
    DTYPE_BYTES,
    INT_DTYPES,
    LdsType,
    RegsType,
    TensorType,
    TileType,
    int_range,
    scalar,
)
from tiledsl.layout import Layout
from tiledsl.thread import distribute_argreduce, distribute_scan
from tiledsl.thread import layouts as layout_assignment
from tiledsl.thread import ops as tops
from tiledsl.thread.context import ThreadContext, axis_mapping, register_mapping
from tiledsl.thread.reduction import reduce_plan, result_layout

_NAN = float("nan")     # one object, so that hoisting keys holding it compare equal


def identity(kind: str, dtype: str) -> float | int:
    """The value that leaves a ``kind`` reduction of ``dtype`` unchanged: what the waves'
    combination starts from and what stands for the elements a wave does not hold. An i32
    max starts from INT_MIN (not -inf); float max/min start from NaN, the identity of
    maxNum/minNum (maxNum(NaN, x) = x), so a line of NaNs stays NaN as in the interpreters,
    where starting from -inf would make it -inf."""
    if kind == "sum":
        return 0 if dtype in INT_DTYPES else 0.0
    if dtype in INT_DTYPES:
        lo, hi = int_range(dtype)
        return lo if kind == "max" else hi
    return _NAN


@dataclass(frozen=True)
class PlacedLds:
    """An LDS tile as distribution addresses it: where it starts and how it is stored."""

    base: int
    storage: LdsStorage

    def dim_strides(self, transposed: bool) -> list[int]:
        """Byte stride of each dim of the tile as read (a transposed read swaps the dims)."""
        strides = list(self.storage.strides)
        return strides[::-1] if transposed else strides

    def terms(self, transposed: bool) -> list[tuple[int, int, int, int]]:
        """The storage's offset terms (dim, div, mod, stride) in the dims of the tile as read."""
        rank = len(self.storage.shape)
        return [(rank - 1 - t.dim if transposed else t.dim, t.div, t.mod, t.stride) for t in self.storage.terms]


def _layout_attrs(layout: Layout, dtype: str) -> dict[str, Any]:
    return {"layout": str(layout.spec), "shape": list(layout.shape), "dtype": dtype}


class Distributor:
    """Builds the thread IR kernel for one tile IR kernel."""

    def __init__(self, kernel: ops.KernelOp, ctx: ThreadContext) -> None:
        self.kernel = kernel
        self.ctx = ctx
        self.env: dict[int, Any] = {}
        self.blocks: list[Block] = []
        self.prologue: Block | None = None
        self.prologue_pos = 0
        self.hoisted: dict[tuple, Value] = {}
        self.loc = kernel.loc      # the tile op being distributed: its location goes on every op it makes

    # ------------------------------------------------------------ building
    def emit(self, op: Op) -> Op:
        if op.loc is None:
            op.loc = self.loc
        self.blocks[-1].append(op)
        return op

    def hoist(self, key: tuple, make: Callable[[], Op]) -> Value:
        """Loop-invariant per-thread data (coordinates, masks, constants), emitted once
        at the top of the kernel body."""
        if key not in self.hoisted:
            op = make()
            op.loc = op.loc or self.loc
            assert self.prologue is not None
            self.prologue.insert(self.prologue_pos, op)
            self.prologue_pos += 1
            self.hoisted[key] = op.result
        return self.hoisted[key]

    def layout(self, v: Value) -> Layout:
        t = v.type
        if not t.layout:
            raise RuntimeError(f"internal: value {v!r} has no layout")
        return self.ctx.bind(t.layout, tuple(t.shape), t.dtype)

    def const(self, value: float | bool, dtype: str) -> Value:
        return self.hoist(("const", value, dtype), lambda: ops.ConstOp([], [scalar(dtype)], {"value": value}))

    def splat(self, s: Value, n: int) -> Value:
        return self.emit(tops.SplatOp([s], [RegsType(s.type.dtype, n)])).result

    def splat_const(self, value: float | bool, dtype: str, n: int) -> Value:
        c = self.const(value, dtype)
        return self.hoist(("splat", value, dtype, n), lambda: tops.SplatOp([c], [RegsType(dtype, n)]))

    def coord(self, layout: Layout, dim: int, dtype: str) -> Value:
        attrs = {**_layout_attrs(layout, dtype), "dim": dim}
        return self.hoist(("coord", str(layout.spec), layout.shape, dtype, dim),
                          lambda: tops.CoordOp([], [RegsType("i32", layout.regs)], attrs))

    def linear_coord(self, layout: Layout, dtype: str) -> Value:
        """The row-major linear index of the element each register holds (0 for a scalar)."""
        n = layout.regs
        total = None
        for d in range(len(layout.shape)):
            c = self.coord(layout, d, dtype)
            stride = int(np.prod(layout.shape[d + 1:]))
            term = c if stride == 1 else self.binop("mul", c, self.splat_const(stride, "i32", n))
            total = term if total is None else self.binop("add", total, term)
        return total if total is not None else self.splat_const(0, "i32", n)

    def valid(self, layout: Layout, dtype: str, owner: str | None = None) -> Value:
        attrs = _layout_attrs(layout, dtype)
        if owner:
            attrs["owner"] = owner
        return self.hoist(("valid", str(layout.spec), layout.shape, dtype, owner),
                          lambda: tops.ValidOp([], [RegsType("i1", layout.regs)], attrs))

    def binop(self, name: str, a: Value, b: Value) -> Value:
        t = a.type
        rt = RegsType("i1", t.n) if name in ops.COMPARE_OPS else t
        cls = ops.COMPARE_OPS.get(name) or ops.BINARY_OPS[name]
        return self.emit(cls([a, b], [rt])).result

    # ------------------------------------------------------------ driver
    def run(self) -> ops.KernelOp:
        k = self.kernel
        grid = Block()
        self.blocks.append(grid)
        for op in k.grid.ops:
            self.visit(op)
        self.blocks.pop()
        body = Block([a.type for a in k.body.args], [a.hint for a in k.body.args])
        for a, b in zip(k.body.args, body.args):
            self.env[id(a)] = b
        self.prologue = body
        self.blocks.append(body)
        for op in k.body.ops:
            self.visit(op)
        self.blocks.pop()
        attrs = dict(k.attrs)
        attrs.update(target=self.ctx.target.name, waves=self.ctx.num_waves,
                     wave_size=self.ctx.target.wave_size, threads=self.ctx.threads)
        return ops.KernelOp([], [], attrs, [grid, body], loc=k.loc)

    def visit(self, op: Op) -> None:
        self.loc = op.loc or self.loc
        handler = getattr(self, "op_" + op.name, None)
        if handler is None:
            if isinstance(op, ops.ElementwiseOp):
                handler = self.op_elementwise
            elif isinstance(op, ops.ReduceOp):
                handler = self.op_reduce
            else:
                raise NotImplementedError(f"distribution has no rule for '{op.name}' ({op.loc})")
        handler(op)

    def get(self, v: Value) -> Any:
        return self.env[id(v)]

    def clone_uniform(self, op: Op) -> None:
        new = type(op)([self.get(v) for v in op.operands], [r.type for r in op.results], dict(op.attrs),
                       loc=op.loc, hints=[r.hint for r in op.results])
        self.emit(new)
        for r, n in zip(op.results, new.results):
            self.env[id(r)] = n

    # ------------------------------------------------------------ simple ops
    op_const = op_dim = op_block_id = op_scalar_arg = clone_uniform

    def op_yield(self, op: Op) -> None:
        self.emit(ops.YieldOp([self.get(v) for v in op.operands], [], loc=op.loc))

    def op_elementwise(self, op: Op) -> None:
        if op.result.type.shape == ():
            return self.clone_uniform(op)
        n = self.layout(op.result).regs
        new = type(op)([self.get(v) for v in op.operands], [RegsType(op.result.type.dtype, n)], dict(op.attrs),
                       loc=op.loc)
        self.env[id(op.result)] = self.emit(new).result

    def op_fill(self, op: Op) -> None:
        n = self.layout(op.result).regs
        self.env[id(op.result)] = self.emit(tops.SplatOp([self.get(op.operands[0])],
                                                         [RegsType(op.result.type.dtype, n)], loc=op.loc)).result

    def op_iota(self, op: Op) -> None:
        self.env[id(op.result)] = self.coord(self.layout(op.result), 0, "i32")

    def op_expand_dims(self, op: Op) -> None:
        if not op.result.type.layout:
            return          # read only by broadcasts, which read its operand (see op_broadcast)
        mapping = register_mapping(self.layout(op.operands[0]), self.layout(op.result), drop_axis=op.attrs["axis"])
        if mapping is None:
            raise RuntimeError(f"internal: {op.loc}: expand_dims needs data from other threads")
        self.env[id(op.result)] = self.gather(self.get(op.operands[0]), mapping, op)

    def op_broadcast(self, op: Op) -> None:
        src = op.operands[0]
        dst = self.layout(op.result)
        if src.type.shape == ():
            self.env[id(op.result)] = self.emit(tops.SplatOp([self.get(src)], [RegsType(src.type.dtype, dst.regs)],
                                                             loc=op.loc)).result
            return
        if isinstance(src.owner, ops.ExpandDimsOp) and not src.type.layout:
            # x[:, _] broadcast: x is laid out as the slice of the result's layout.
            inner = src.owner.operands[0]
            mapping = register_mapping(self.layout(inner), dst, drop_axis=src.owner.attrs["axis"])
        else:
            inner = src
            widened = [d for d, (a, b) in enumerate(zip(src.type.shape, op.result.type.shape)) if a != b]
            mapping = register_mapping(self.layout(src), dst, broadcast=widened)
        if mapping is None:
            raise RuntimeError(f"internal: {op.loc}: broadcast needs data from other threads")
        self.env[id(op.result)] = self.gather(self.get(inner), mapping, op)

    def gather(self, v: Value, mapping: list[int], op: Op) -> Value:
        if mapping == list(range(v.type.n)):
            return v
        return self.emit(tops.RegGatherOp([v], [RegsType(v.type.dtype, len(mapping))], {"indices": mapping},
                                          loc=op.loc)).result

    def op_convert_layout(self, op: Op) -> None:
        mapping = register_mapping(self.layout(op.operands[0]), self.layout(op.result))
        if mapping is None:
            raise RuntimeError(f"internal: {op.loc}: convert_layout needs data from other threads")
        self.env[id(op.result)] = self.gather(self.get(op.operands[0]), mapping, op)

    def op_sync(self, op: Op) -> None:
        self.emit(tops.BarrierOp([], [], loc=op.loc))

    def op_lds_alloc(self, op: Op) -> None:
        self.env[id(op.result)] = PlacedLds(op.attrs["offset"], LdsStorage.of(op))

    # ------------------------------------------------------------ memory
    def vec_width(self, layout: Layout, dtype: str, contiguous_dim: int | None) -> int:
        """The widest register group contiguous along ``contiguous_dim`` of a global tensor
        (see ``vector_width``)."""
        return vector_width(layout.index_map(), layout.regs, DTYPE_BYTES[dtype], contiguous_dim)

    def lds_vec_width(self, layout: Layout, buf: PlacedLds, transposed: bool) -> int:
        """The widest register group contiguous along the LDS tile's storage order and
        aligned whatever the other coordinates are."""
        st = buf.storage
        return vector_width(buffer_coords(layout.index_map(), transposed), layout.regs, st.elem_bytes, st.contiguous_dim,
                            st.align_strides)

    def lds_offsets(self, layout: Layout, buf: PlacedLds, transposed: bool = False) -> Value:
        """Byte offsets of the LDS elements each register holds."""
        dtype = buf.storage.dtype
        n = layout.regs
        total = None
        for d, div, mod, stride in buf.terms(transposed):
            c = self.coord(layout, d, dtype)
            if div > 1:
                c = self.binop("floordiv", c, self.splat_const(div, "i32", n))
            if mod:
                c = self.binop("mod", c, self.splat_const(mod, "i32", n))
            term = self.binop("mul", c, self.splat_const(stride, "i32", n))
            total = term if total is None else self.binop("add", total, term)
        if total is None:
            total = self.splat_const(0, "i32", n)
        if buf.storage.swizzle:
            total = self.swizzle128(total, n)
        return self.binop("add", self.splat_const(buf.base, "i32", n), total)

    def swizzle128(self, x: Value, n: int) -> Value:
        """``lds_storage.swizzle128`` (bits 4-6 ^= bits 7-9) in the ops the thread IR has: for each
        bit, (a + b) % 2 is a ^ b."""
        def bit(i: int) -> Value:
            return self.binop("mod", self.binop("floordiv", x, self.splat_const(1 << i, "i32", n)),
                              self.splat_const(2, "i32", n))
        chunk = self.binop("mod", self.binop("floordiv", x, self.splat_const(16, "i32", n)),
                           self.splat_const(8, "i32", n))
        out = self.binop("sub", x, self.binop("mul", chunk, self.splat_const(16, "i32", n)))
        for b in range(3):
            xor = self.binop("mod", self.binop("add", bit(4 + b), bit(7 + b)), self.splat_const(2, "i32", n))
            out = self.binop("add", out, self.binop("mul", xor, self.splat_const(16 << b, "i32", n)))
        return out

    def op_lds_read(self, op: Op) -> None:
        lds_dot = layout_assignment.LDS_DOT
        if op.result.uses and all(isinstance(u, ops.DotOp) and u.attrs.get("strategy") == lds_dot
                                  for u in op.result.uses):
            # The FMA fallback reads its operands from LDS itself (``lds_operand``).
            self.env[id(op.result)] = ("lds", op.operands[0])
            return
        if all(isinstance(u, ops.TransposeOp) for u in op.result.uses) and op.result.uses:
            self.env[id(op.result)] = ("lds", op.operands[0])
            return
        if not op.result.type.layout and all(u.attrs.get("strategy") == layout_assignment.LDS_DOT
                                             for u in op.result.uses):
            return          # staged for the FMA fallback of a dot, which reads the LDS tile itself
        self.env[id(op.result)] = self.read_lds(op.operands[0], self.layout(op.result), op, transpose=False)

    def read_lds(self, buf: Value, layout: Layout, op: Op, transpose: bool) -> Value:
        t: LdsType = buf.type
        placed = self.get(buf)
        off = self.lds_offsets(layout, placed, transpose)
        vec = self.lds_vec_width(layout, placed, transpose)
        mask = self.valid(layout, t.dtype)
        return self.emit(tops.LdsLoadOp([off, mask], [RegsType(t.dtype, layout.regs)], {"vec": vec},
                                        loc=op.loc)).result

    def op_transpose(self, op: Op) -> None:
        marker = self.get(op.operands[0])
        if not (isinstance(marker, tuple) and marker[0] == "lds"):
            raise RuntimeError(f"internal: {op.loc}: transpose of a register tile survived layout assignment")
        self.env[id(op.result)] = self.read_lds(marker[1], self.layout(op.result), op, transpose=True)

    def op_lds_write(self, op: Op) -> None:
        buf, v = op.operands
        layout = self.layout(v)
        t: LdsType = buf.type
        placed = self.get(buf)
        off = self.lds_offsets(layout, placed)
        mask = self.valid(layout, t.dtype, owner="block")
        vec = _one_writer_groups(layout, self.lds_vec_width(layout, placed, False))
        self.emit(tops.LdsStoreOp([off, mask, self.get(v)], [], {"vec": vec}, loc=op.loc))

    def global_access(self, op: Op, layout: Layout, dtype: str, owner: str | None
                      ) -> tuple[list[Value], Value, int]:
        """Per-dim indices, the mask (bounds of the sliced dims, valid slots) and the
        vector width of a global slice read or written in ``layout``."""
        tensor = op.operands[0]
        tt: TensorType = tensor.type
        extents = op.attrs["extents"]
        starts = op.operands[1:1 + len(tt.dims)]
        n = layout.regs
        mask = self.valid(layout, dtype, owner)
        indices: list[Value] = []
        pos = 0
        inbounds = set(op.attrs.get("inbounds", ()))
        gather = op.attrs.get("gather", ())
        bounds = dict(zip(op.attrs.get("bounded", ()), op.bounds()))
        for d, (ext, st) in enumerate(zip(extents, starts)):
            s = self.get(st)
            if d in gather:
                idx = self.gathered_index(op, st, layout)
                pos += ext != 0
                if d in bounds:
                    mask = self.binop("and", mask, self.inside(idx, self.limit(tt, d, bounds[d]), n))
                indices.append(idx)
                continue
            if ext == 0:
                indices.append(s)
                continue
            index_dtype = st.type.dtype     # i32, or i64 for a start computed in 64 bits
            idx = self.binop("add", self.splat(s, n), self.widen(self.coord(layout, pos, dtype), index_dtype))
            pos += 1
            static = self.static_dim(tt.dims[d])
            start = st.owner.attrs["value"] if isinstance(st.owner, ops.ConstOp) else None
            if d not in inbounds and (d in bounds or not (static is not None and start is not None and 0 <= start
                                                          and start + ext <= static)):
                mask = self.binop("and", mask, self.inside(idx, self.limit(tt, d, bounds.get(d)), n))
            indices.append(idx)
        last_full = extents[-1] != 0 and isinstance(tt.dims[-1], int) or (
            extents[-1] != 0 and self.static_dim(tt.dims[-1]) == extents[-1] and self.is_zero(starts[-1]))
        if len(extents) - 1 in gather or len(extents) - 1 in bounds:
            last_full = False       # per-element indices or a bound inside a row: no vectors
        vec = self.vec_width(layout, dtype, len(layout.shape) - 1) if last_full else 1
        if owner is not None:
            vec = _one_writer_groups(layout, vec)
        return indices, mask, vec

    def gathered_index(self, op: Op, tile: Value, layout: Layout) -> Value:
        """Per register of a gather's data tile (in ``layout``), the index its row comes from: the
        index tile's registers, laid out as the gathered axis (``layouts.gather_index_spec``),
        picked per register."""
        mapping = axis_mapping(self.layout(tile), layout, op.gather_axis())
        if mapping is None:
            raise RuntimeError(f"internal: {op.loc}: the index tile's layout {tile.type.layout} does not give "
                               f"each thread the indices of its rows in {layout.spec}")
        return self.gather(self.get(tile), mapping, op)

    def limit(self, tt: TensorType, d: int, bound: Value | None) -> Value:
        """Where dim ``d`` ends for an access: its size, or the access's bound where that is less."""
        size = self.dim_size(tt, d)
        if bound is None:
            return size
        return self.emit(ops.BINARY_OPS["min"]([size, self.get(bound)], [scalar("i32")])).result

    def inside(self, idx: Value, limit: Value, n: int) -> Value:
        """``0 <= idx < limit``, per register, in the index's width (i32, or i64)."""
        dtype = idx.type.dtype
        return self.binop("and", self.binop("lt", idx, self.splat(self.widen(limit, dtype), n)),
                          self.binop("ge", idx, self.splat_const(0, dtype, n)))

    def widen(self, v: Value, dtype: str) -> Value:
        """An i32 index (registers or a uniform scalar) as ``dtype`` (itself, or i64)."""
        if v.type.dtype == dtype:
            return v
        rtype = RegsType(dtype, v.type.n) if isinstance(v.type, RegsType) else scalar(dtype)
        return self.emit(ops.CastOp([v], [rtype])).result

    def static_dim(self, d: str | int) -> int | None:
        if isinstance(d, int):
            return d
        v = self.kernel.attrs["params"].get(d)
        return int(v) if isinstance(v, int) else None

    def is_zero(self, v: Value) -> bool:
        return isinstance(v.owner, ops.ConstOp) and v.owner.attrs["value"] == 0

    def dim_size(self, tt: TensorType, d: int) -> Value:
        name = tt.dims[d]
        static = self.static_dim(name)
        if static is not None:
            return self.const(static, "i32")
        return self.hoist(("dim", name), lambda: ops.DimOp([], [scalar("i32")], {"name": name}))

    def op_load(self, op: Op) -> None:
        if op.result.type.shape == ():
            return self.uniform_load(op)
        layout = self.layout(op.result)
        dtype = op.result.type.dtype
        indices, mask, vec = self.global_access(op, layout, dtype, None)
        self.env[id(op.result)] = self.emit(tops.GlobalLoadOp(
            [self.get(op.operands[0]), *indices, mask], [RegsType(dtype, layout.regs)],
            {"pad": op.attrs["pad"], "vec": vec}, loc=op.loc)).result

    def uniform_load(self, op: Op) -> None:
        """One element (every index a scalar), read alike by every thread: a one-register load at
        uniform indices, unmasked (an index out of bounds is an error, as at block level), made
        uniform (a scalar load on AMDGPU where LLVM proves the address uniform)."""
        dtype = op.result.type.dtype
        indices = [self.get(v) for v in op.operands[1:]]
        v = self.emit(tops.GlobalLoadOp([self.get(op.operands[0]), *indices, self.splat_const(True, "i1", 1)],
                                        [RegsType(dtype, 1)], {"pad": op.attrs["pad"], "vec": 1},
                                        loc=op.loc)).result
        self.env[id(op.result)] = self.emit(tops.UniformOp([v], [scalar(dtype)], loc=op.loc)).result

    def op_store(self, op: Op) -> None:
        v = op.operands[-1]
        layout = self.layout(v)
        indices, mask, vec = self.global_access(op, layout, v.type.dtype, "block")
        self.emit(tops.GlobalStoreOp([self.get(op.operands[0]), *indices, mask, self.get(v)], [],
                                     {"vec": vec}, loc=op.loc))

    def op_atomic(self, op: ops.AtomicOp) -> None:
        """One atomic per element, made by the element's first holder (``valid`` with
        ``owner="block"``, as a store writes); an atomic on one element (a scalar value) by thread
        0 alone: one per block. Paired registers where the target adds two f16/bf16 elements in one
        instruction. Old values that other holders need go through the LDS scratch that layout
        assignment added (``share_old_values``)."""
        v = op.value
        dtype = v.type.dtype
        tensor = self.get(op.operands[0])
        want = bool(op.results and op.result.uses)
        if v.type.shape == ():
            layout = self.ctx.bind("replicated", (), dtype)
            rank = len(op.operands[0].type.dims)
            indices = [self.get(s) for s in op.operands[1:1 + rank]]
            mask = self.valid(layout, dtype, owner="block")
            value, vec = self.splat(self.get(v), 1), 1
        else:
            layout = self.layout(v)
            indices, mask, vec = self.global_access(op, layout, dtype, "block")
            packed = op.kind == "add" and dtype in self.ctx.target.packed_atomic_add
            vec = min(vec, 2) if packed else 1
            value = self.get(v)
        regs = RegsType(dtype, layout.regs)
        atomic = self.emit(tops.GlobalAtomicOp([tensor, *indices, mask, value], [regs] if want else [],
                                               {"kind": op.kind, "vec": vec}, loc=op.loc))
        if not want:
            return
        old = atomic.result
        if op.scratch is not None:
            old = self.share_old_values(op, layout, old)
        if v.type.shape == ():
            old = self.emit(tops.UniformOp([old], [scalar(dtype)], loc=op.loc)).result
        self.env[id(op.result)] = old

    op_atomic_add = op_atomic_max = op_atomic_min = op_atomic

    def share_old_values(self, op: ops.AtomicOp, layout: Layout, old: Value) -> Value:
        """Each element's first holder writes the old value it got to the scratch tile, and every
        holder reads it back after a barrier. In a loop a second barrier keeps the next iteration's
        write after these reads; elsewhere LDS allocation puts a sync before any other tile takes
        the scratch's bytes."""
        placed: PlacedLds = self.get(op.scratch)
        dtype, n = old.type.dtype, old.type.n
        off = self.lds_offsets(layout, placed) if layout.shape else self.splat_const(placed.base, "i32", n)
        self.emit(tops.LdsStoreOp([off, self.valid(layout, dtype, owner="block"), old], [], {"vec": 1},
                                  loc=op.loc))
        self.emit(tops.BarrierOp([], [], loc=op.loc))
        shared = self.emit(tops.LdsLoadOp([off, self.valid(layout, dtype)], [old.type], {"vec": 1},
                                          loc=op.loc)).result
        if _in_loop(op):
            self.emit(tops.BarrierOp([], [], loc=op.loc))
        return shared

    def op_copy(self, op: Op) -> None:
        if op.attrs.get("async") and self.ctx.target.has_async_copy:
            return self.async_copy(op)
        buf = op.operands[-1]
        t: LdsType = buf.type
        layout = self.ctx.copy_layout(tuple(t.shape), t.dtype)
        indices, mask, vec = self.global_access(op, layout, t.dtype, None)
        regs = self.emit(tops.GlobalLoadOp([self.get(op.operands[0]), *indices, mask],
                                           [RegsType(t.dtype, layout.regs)],
                                           {"pad": op.attrs["pad"], "vec": vec}, loc=op.loc)).result
        placed = self.get(buf)
        off = self.lds_offsets(layout, placed)
        store_mask = self.valid(layout, t.dtype, owner="block")
        self.emit(tops.LdsStoreOp([off, store_mask, regs], [], {"vec": self.lds_vec_width(layout, placed, False)},
                                  loc=op.loc))

    # ------------------------------------------------------------ asynchronous copies
    def async_copy(self, op: Op) -> None:
        """A pipelined copy straight from global memory to LDS (``async_copy``), where the
        target can: the pad must be 0 (masked-off bytes are zero-filled) and each group 4, 8
        or 16 bytes, contiguous in the tensor and in LDS. Otherwise the synchronous copy,
        which is correct anywhere an async one is (its data only lands earlier)."""
        buf = op.operands[-1]
        t: LdsType = buf.type
        es = DTYPE_BYTES[t.dtype]
        layout = self.ctx.copy_layout(tuple(t.shape), t.dtype)
        indices, mask, vec = self.global_access(op, layout, t.dtype, None)
        placed = self.get(buf)
        vec = min(vec, self.lds_vec_width(layout, placed, False))
        off = self.lds_offsets(layout, placed)
        store_mask = self.valid(layout, t.dtype, owner="block")
        tensor = self.get(op.operands[0])
        if op.attrs["pad"] == 0 and vec * es in (4, 8, 16):
            self.emit(tops.AsyncCopyOp([tensor, *indices, mask, off, store_mask], [], {"vec": vec}, loc=op.loc))
            return
        regs = self.emit(tops.GlobalLoadOp([tensor, *indices, mask], [RegsType(t.dtype, layout.regs)],
                                           {"pad": op.attrs["pad"], "vec": vec}, loc=op.loc)).result
        self.emit(tops.LdsStoreOp([off, store_mask, regs], [], {"vec": vec}, loc=op.loc))

    def op_async_commit(self, op: Op) -> None:
        if self.ctx.target.has_async_copy:
            self.emit(ops.AsyncCommitOp([], [], loc=op.loc))

    def op_async_wait(self, op: Op) -> None:
        if self.ctx.target.has_async_copy:
            self.emit(ops.AsyncWaitOp([], [], dict(op.attrs), loc=op.loc))

    # ------------------------------------------------------------ compute
    def op_dot(self, op: Op) -> None:
        c_layout = self.layout(op.result)
        acc = self.get(op.operands[2]) if len(op.operands) == 3 else \
            self.splat_const(0.0, "f32", c_layout.regs)
        if op.attrs.get("strategy") == layout_assignment.LDS_DOT:
            return self.lds_dot(op, c_layout, acc)
        a, b = op.operands[0], op.operands[1]
        dtype = a.type.dtype
        instr = c_layout.instr
        if instr is not None and instr.family != "fma" and instr.in_dtype != dtype:
            twin = next(i for i in self.ctx.target.matrix_instrs
                        if i.in_dtype == dtype and (i.m, i.n, i.k) == (instr.m, instr.n, instr.k))
            instr = twin
        attrs = {"instr": instr.name if instr else "fma", "a_layout": a.type.layout, "b_layout": b.type.layout,
                 "c_layout": op.result.type.layout, "m": c_layout.shape[0], "n": c_layout.shape[1],
                 "k": a.type.shape[1], "dtype": dtype}
        self.env[id(op.result)] = self.emit(tops.MmaTileOp([self.get(a), self.get(b), acc],
                                                           [RegsType("f32", c_layout.regs)], attrs,
                                                           loc=op.loc)).result

    def lds_operand(self, v: Value) -> tuple[int, list[int]]:
        """(byte offset, element strides [row, col]) of a dot operand staged in LDS."""
        owner = v.owner
        transposed = isinstance(owner, ops.TransposeOp)
        read = owner.operands[0].owner if transposed else owner
        placed: PlacedLds = self.get(read.operands[0])
        es = placed.storage.elem_bytes
        return placed.base, [s // es for s in placed.dim_strides(transposed)]

    def lds_dot(self, op: Op, c_layout: Layout, acc: Value) -> None:
        a_off, a_str = self.lds_operand(op.operands[0])
        b_off, b_str = self.lds_operand(op.operands[1])
        attrs = {"a_offset": a_off, "a_strides": a_str, "b_offset": b_off, "b_strides": b_str,
                 "k": op.operands[0].type.shape[1], "dtype": op.operands[0].type.dtype,
                 "c_layout": op.result.type.layout, "shape": list(c_layout.shape)}
        self.env[id(op.result)] = self.emit(tops.LdsDotOp([acc], [RegsType("f32", c_layout.regs)], attrs,
                                                          loc=op.loc)).result

    def op_reduce(self, op: Op) -> None:
        kind = op.kind
        src, dst = self.layout(op.operands[0]), result_layout(self.ctx, op.result)
        x = self.get(op.operands[0])
        plan = reduce_plan(src, dst, op.attrs["axis"])
        if plan is None or plan.across_waves != (len(op.operands) == 2):
            raise RuntimeError(f"internal: {op.loc}: layout assignment left a reduction that its layouts "
                               f"cannot do ({src} to {dst})")
        if plan.identity_mask:
            x = self.identity_where_empty(x, src, identity(kind, x.type.dtype), plan.first_holders)
        v = self.emit(tops.RegReduceOp([x], [RegsType(x.type.dtype, dst.regs)],
                                       {"kind": kind, "groups": plan.groups}, loc=op.loc)).result
        combine = ops.BINARY_OPS[op.combine]
        for mask in plan.masks:
            other = self.emit(tops.ShuffleXorOp([v], [v.type], {"mask": mask}, loc=op.loc)).result
            v = self.emit(combine([v, other], [v.type], loc=op.loc)).result
        if plan.across_waves:
            v = self.across_waves(op, v, dst, kind, combine)
        if not dst.shape:
            v = self.emit(tops.UniformOp([v], [scalar(v.type.dtype)], loc=op.loc)).result
        self.env[id(op.result)] = v

    def identity_where_empty(self, x: Value, layout: Layout, fill: float, first_holders: bool) -> Value:
        """``x`` with the identity in the slots a reduction must not count: those holding no
        element, and (``first_holders``) all but the first copy of a replicated element."""
        n = layout.regs
        keep = self.valid(layout, x.type.dtype, "block" if first_holders else None)
        ident = self.splat_const(fill, x.type.dtype, n)
        return self.emit(ops.SelectOp([keep, x, ident], [x.type])).result

    def across_waves(self, op: Op, v: Value, dst: Layout, kind: str, combine: type[Op]) -> Value:
        """Each wave writes its partial per output element to LDS; every thread then
        combines the partials of the waves that hold its elements, each wave's data once (a
        wave that replicates an earlier one is left out)."""
        placed: PlacedLds = self.get(op.operands[1])
        base = placed.base
        elem_stride, wave_stride = placed.storage.strides    # the scratch is [element, wave]
        dtype = v.type.dtype
        n = dst.regs
        lin = self.linear_coord(dst, dtype)
        waves = self.ctx.num_waves
        wave_col = self.binop("mul", lin, self.splat_const(elem_stride, "i32", n))
        tid = self.emit(tops.ThreadIdOp([], [RegsType("i32", 1)], loc=op.loc)).result
        wave = self.binop("floordiv", tid, self.splat_const(self.ctx.target.wave_size, "i32", 1))
        wave_n = self.gather(wave, [0] * n, op)
        off = self.binop("add", self.splat_const(base, "i32", n),
                         self.binop("add", wave_col, self.binop("mul", wave_n,
                                                                self.splat_const(wave_stride, "i32", n))))
        writer = self.valid(dst, dtype, owner="wave")
        self.emit(tops.LdsStoreOp([off, writer, v], [], {"vec": 1}, loc=op.loc))
        self.emit(tops.BarrierOp([], [], loc=op.loc))
        acc = self.splat_const(identity(kind, dtype), dtype, n)
        for w in range(waves):
            held = self.hoist(("held", str(dst.spec), dst.shape, w), lambda w=w: tops.HeldByWaveOp(
                [], [RegsType("i1", n)], {**_layout_attrs(dst, dtype), "wave": w}))
            off_w = self.binop("add", self.splat_const(base + w * wave_stride, "i32", n), wave_col)
            part = self.emit(tops.LdsLoadOp([off_w, held], [RegsType(dtype, n)],
                                            {"vec": 1, "pad": identity(kind, dtype)}, loc=op.loc)).result
            acc = self.emit(combine([acc, part], [acc.type], loc=op.loc)).result
        self.emit(tops.BarrierOp([], [], loc=op.loc))
        return acc

    # ------------------------------------------------------------ arg-reductions and scans
    op_reduce_argmax = op_reduce_argmin = distribute_argreduce.arg_reduce
    op_cumsum = distribute_scan.scan

    # ------------------------------------------------------------ control flow
    def op_for(self, op: Op) -> None:
        lo, hi, step = (self.get(v) for v in op.operands[:3])
        inits = [self.get(v) for v in op.operands[3:]]
        old = op.regions[0]
        body = Block([scalar("i32"), *[v.type for v in inits]], [a.hint for a in old.args])
        for a, b in zip(old.args, body.args):
            self.env[id(a)] = b
        self.blocks.append(body)
        for inner in old.ops:
            self.visit(inner)
        self.blocks.pop()
        new = self.emit(ops.ForOp([lo, hi, step, *inits], [v.type for v in inits], regions=[body], loc=op.loc,
                                  hints=[r.hint for r in op.results]))
        for r, n in zip(op.results, new.results):
            self.env[id(r)] = n

    def op_if(self, op: Op) -> None:
        regions = []
        types = None
        for old in op.regions:
            blk = Block()
            self.blocks.append(blk)
            for inner in old.ops:
                self.visit(inner)
            self.blocks.pop()
            regions.append(blk)
            types = [v.type for v in blk.terminator.operands]
        new = self.emit(ops.IfOp([self.get(op.operands[0])], types or [], regions=regions, loc=op.loc,
                                 hints=[r.hint for r in op.results]))
        for r, n in zip(op.results, new.results):
            self.env[id(r)] = n


def _in_loop(op: Op) -> bool:
    """Whether ``op`` is inside a ``for``."""
    cur = op.parent.parent if op.parent is not None else None
    while cur is not None:
        if isinstance(cur, ops.ForOp):
            return True
        cur = cur.parent.parent if cur.parent is not None else None
    return False


def _one_writer_groups(layout: Layout, vec: int) -> int:
    """``vec``, halved until each group of ``vec`` registers has one mask under one writer per
    element (``valid`` with ``owner="block"``: the first thread holding it). Where whole waves
    replicate, a thread owns all of its registers or none and keeps its vectors."""
    if vec == 1 or layout.replication().max() == 1:
        return vec
    wave, lane, reg = (a.ravel() for a in layout.owner_of())
    held = wave >= 0
    first = np.zeros(layout.index_map().shape[:3], dtype=bool)
    first[wave[held], lane[held], reg[held]] = True
    first = first.reshape(-1, layout.regs)
    while vec > 1:
        groups = first.reshape(first.shape[0], -1, vec)
        if (groups == groups[..., :1]).all():
            break
        vec //= 2
    return vec


def distribute(kernel: ops.KernelOp, ctx: ThreadContext) -> ops.KernelOp:
    """Thread IR for a tile IR kernel whose values all have layouts and whose LDS
    tiles all have offsets."""
    return Distributor(kernel, ctx).run()


__all__ = ["TileType", "distribute"]
