"""LDS layout: choose how each LDS tile is stored, from the accesses that use it.

Runs after layout assignment, when every read and write of an LDS tile has its register
layout: each access is known thread by thread and register by register. For each tile the
pass tries every dim order (row-major, column-major, ... — ``lds_storage``) and a few
paddings of the leading lines, and keeps, in this order of priority:

0. an asynchronous copy into the tile (where the target has them) keeps its widest groups:
   a narrower one falls back to a copy through registers, which overlaps nothing;
1. the fewest read instructions (reads vectorise along the storage's contiguous dim; a read
   inside a loop weighs 16× more per loop level);
2. the fewest write instructions, likewise weighted: the copy into LDS may become narrower
   stores, the right trade when every wave re-reads the whole tile;
3. the fewest LDS cycles by a bank-conflict estimate (``bank_cycles``) over all accesses;
4. the smallest size.

Paddings that would misalign a vector access lose under 1 (its width drops).

Padding only saves bank conflicts, so it gives way to room: tile by tile (the least
re-read first) a tile is chosen again without padding while the padded tiles do not fit
the target's LDS, or fit fewer blocks in it than unpadded ones would, counting up to
``KEPT_BLOCKS``. The choice is recorded as ``order`` and ``pad`` on the ``lds_alloc``;
LDS allocation sizes the tile by it and distribution addresses it through ``LdsStorage``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value
from tiledsl.ir.lds_storage import LdsStorage, aligned_width, buffer_coords, contiguous_width, row_major
from tiledsl.ir.types import DTYPE_BYTES, LdsType
from tiledsl.layout import Layout
from tiledsl.targets import Target
from tiledsl.thread import layouts as layout_assignment
from tiledsl.thread import lds_alloc
from tiledsl.thread.context import ThreadContext
from tiledsl.thread.reduction import result_layout

PAD_CANDIDATES = (0, 4, 8, 16, 32)
LOOP_WEIGHT = 16

# A second resident block is what hides one block's barriers and memory latency (FA2 runs at
# two waves per SIMD on CDNA): padding may not cost it. Beyond two, registers or threads
# bound the blocks per CU/SM before LDS does for the tiles we make, and padding keeps its place.
KEPT_BLOCKS = 2


@dataclass
class LdsAccess:
    """One op's access of an LDS tile, as the threads of the block make it.

    ``coords``: [waves, lanes, regs, rank] coordinates in the tile's dims (-1: no element);
    ``vectorise``: whether distribution may group registers into vector accesses.
    """

    op: Op
    coords: np.ndarray
    write: bool
    weight: int
    vectorise: bool = True
    _contiguous: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def regs(self) -> int:
        return self.coords.shape[2]

    def vec(self, storage: LdsStorage) -> int:
        """The vector width distribution gives this access in ``storage`` (``vector_width``)."""
        dim = storage.contiguous_dim
        if not self.vectorise or dim is None:
            return 1
        if dim not in self._contiguous:
            self._contiguous[dim] = contiguous_width(self.coords, self.regs, storage.elem_bytes, dim)
        return aligned_width(self._contiguous[dim], storage.elem_bytes, dim, storage.align_strides)

    def label(self) -> str:
        line = f" (line {self.op.loc.line})" if self.op.loc is not None else ""
        return f"{'write' if self.write else 'read'} by {self.op.name}{line}"


def scratch_coords(dst: Layout, read_wave: int | None) -> np.ndarray:
    """(element, wave) coordinates of a cross-wave reduction's scratch: every thread writes its
    partial of element ``lin`` at [lin, own wave] and reads back [lin, w] for each wave w."""
    lin = dst.linear_map()
    shape = lin.shape
    valid = dst.valid()
    wave = np.broadcast_to(np.arange(shape[0])[:, None, None], shape) if read_wave is None \
        else np.full(shape, read_wave)
    out = np.stack([lin, wave], axis=-1)
    return np.where(valid[..., None], out, -1)


def _loop_depth(op: Op) -> int:
    depth = 0
    cur = op.parent.parent if op.parent is not None else None
    while cur is not None:
        depth += isinstance(cur, ops.ForOp)
        cur = cur.parent.parent if cur.parent is not None else None
    return depth


def _weight(op: Op) -> int:
    return LOOP_WEIGHT ** _loop_depth(op)


def _lds_dot_coords(dot: Op, operand: int, c: Layout, transposed: bool) -> np.ndarray:
    """The FMA fallback reads, for each accumulator register, a row of A or a column of B."""
    k = dot.operands[0].type.shape[1]
    m = c.index_map()
    valid = m[..., :1] >= 0
    kk = np.broadcast_to(np.arange(k), (*m.shape[:3], k))
    other = np.broadcast_to(m[..., operand][..., None], kk.shape)
    coords = np.stack([other, kk] if operand == 0 else [kk, other], axis=-1)
    coords = np.where(valid[..., None, :], coords, -1)
    coords = coords.reshape(m.shape[0], m.shape[1], -1, 2)
    return coords[..., ::-1] if transposed else coords


def accesses(alloc: Op, ctx: ThreadContext) -> Iterator[LdsAccess]:
    """Every access of ``alloc``'s tile, as distribution will make it."""
    buf: Value = alloc.result
    t: LdsType = buf.type
    for use in buf.uses:
        if isinstance(use, ops.CopyOp):
            yield LdsAccess(use, ctx.copy_layout(tuple(t.shape), t.dtype).index_map(), True, _weight(use))
        elif isinstance(use, ops.LdsWriteOp):
            v = use.operands[1]
            lay = ctx.bind(v.type.layout, tuple(v.type.shape), v.type.dtype)
            yield LdsAccess(use, lay.index_map(), True, _weight(use), lay.replication().max() == 1)
        elif isinstance(use, ops.LdsReadOp):
            yield from _read_accesses(use, ctx)
        elif isinstance(use, ops.ReduceOp):
            dst = result_layout(ctx, use.result)
            w = _weight(use)
            yield LdsAccess(use, scratch_coords(dst, None), True, w, False)
            for wave in range(ctx.num_waves):
                yield LdsAccess(use, scratch_coords(dst, wave), False, w, False)
        elif isinstance(use, ops.AtomicOp):
            # The old values: written by each element's first holder, read back by every holder.
            v = use.result
            coords = ctx.bind(v.type.layout, tuple(v.type.shape), v.type.dtype).index_map() if v.type.shape \
                else np.zeros((ctx.num_waves, ctx.target.wave_size, 1, 1), dtype=np.int64)
            yield LdsAccess(use, coords, True, _weight(use), False)
            yield LdsAccess(use, coords, False, _weight(use), False)


def _read_accesses(read: Op, ctx: ThreadContext) -> Iterator[LdsAccess]:
    """A read takes the layout of its result, or, when only transposes use it, each
    transpose reads the tile in its own layout; a ``dot`` of the FMA fallback reads its
    operand from LDS itself."""
    uses = list(read.result.uses)
    transposed = bool(uses) and all(isinstance(u, ops.TransposeOp) for u in uses)
    readers = [(u, u.result) for u in uses] if transposed else [(read, read.result)]
    for op, v in readers:
        fma = [u for u in v.uses if isinstance(u, ops.DotOp) and u.attrs.get("strategy") == layout_assignment.LDS_DOT]
        for dot in fma:
            c = dot.result
            c_lay = ctx.bind(c.type.layout, tuple(c.type.shape), "f32")
            for i in (0, 1):
                if dot.operands[i] is v:
                    yield LdsAccess(dot, _lds_dot_coords(dot, i, c_lay, transposed), False, _weight(dot), False)
        if len(fma) < len(v.uses) or not v.uses:
            lay = ctx.bind(v.type.layout, tuple(v.type.shape), v.type.dtype)
            yield LdsAccess(op, buffer_coords(lay.index_map(), transposed), False, _weight(op))


def bank_cycles(access: LdsAccess, storage: LdsStorage, target: Target, vec: int | None = None
                ) -> tuple[int, int]:
    """(cycles, conflict-free cycles) of one execution of ``access`` by the whole block.

    Each vector group of registers is one instruction; a wave's instruction is served in
    phases of ``target.lds_phase_bytes``. In a phase, every distinct word a bank must
    deliver costs a cycle (lanes reading the same word share it)."""
    vec = access.vec(storage) if vec is None else vec
    c = access.coords
    waves, lanes, regs, rank = c.shape
    first = c.reshape(waves, lanes, regs // vec, vec, rank)[..., 0, :]
    addr = storage.offsets(first).transpose(0, 2, 1)                     # [waves, groups, lanes]
    nbytes = vec * storage.elem_bytes
    per_phase = max(1, min(lanes, target.lds_phase_bytes // nbytes))
    phases = -(-lanes // per_phase)
    pad = phases * per_phase - lanes
    addr = np.pad(addr, ((0, 0), (0, 0), (0, pad)), constant_values=-1).reshape(-1, per_phase)
    nwords = max(1, nbytes // target.lds_bank_bytes)
    words = addr[..., None] // target.lds_bank_bytes + np.arange(nwords)
    words = np.where(addr[..., None] >= 0, words, -1).reshape(addr.shape[0], -1)
    words.sort(axis=-1)
    new = np.ones_like(words, bool)
    new[:, 1:] = words[:, 1:] != words[:, :-1]
    new &= words >= 0
    rows = np.broadcast_to(np.arange(words.shape[0])[:, None], words.shape)
    slot = rows[new] * target.lds_banks + words[new] % target.lds_banks
    counts = np.bincount(slot, minlength=words.shape[0] * target.lds_banks).reshape(-1, target.lds_banks)
    cycles = int(counts.max(-1).sum())
    ideal = int((-(-new.sum(-1) // target.lds_banks)).sum())
    return cycles, ideal


@dataclass
class Choice:
    storage: LdsStorage
    key: tuple[int, int, int, int]


def candidates(t: LdsType, pads: tuple[int, ...] = PAD_CANDIDATES, matrix: bool = False) -> list[LdsStorage]:
    """Every order and padding of ``t``; with ``matrix`` (a tile that only feeds wgmma-capable
    dots), the storages wgmma descriptors address instead: the 128-byte swizzle where the shape
    takes it, else core matrices (paddings that are multiples of 16 bytes); either contiguous dim."""
    shape = tuple(int(d) for d in t.shape)
    rank = len(shape)
    if matrix:
        for kinds in ([{"swizzle": True, "pad": 0}], [{"cores": True, "pad": p} for p in pads]):
            out = []
            for o in ((1, 0), (0, 1)):
                for kind in kinds:
                    try:
                        out.append(LdsStorage(shape, t.dtype, o, **kind))
                    except ValueError:
                        pass
            if out:
                return out
        return []
    orders = [row_major(rank)] + [o for o in itertools.permutations(range(rank)) if o != row_major(rank)]
    pads = tuple(p for p in pads if p % DTYPE_BYTES[t.dtype] == 0) if rank > 1 else (0,)
    return [LdsStorage(shape, t.dtype, o, p) for o in orders for p in pads]


def instructions(storage: LdsStorage, found: list[LdsAccess]) -> tuple[int, int]:
    """Weighted (read, write) instructions per thread."""
    reads = writes = 0
    for a in found:
        instrs = a.weight * (a.regs // a.vec(storage))
        if a.write:
            writes += instrs
        else:
            reads += instrs
    return reads, writes


def choose(alloc: Op, ctx: ThreadContext, pads: tuple[int, ...] = PAD_CANDIDATES,
           found: list[LdsAccess] | None = None) -> Choice:
    """The best storage for ``alloc``'s tile (see the module docstring); ``found``: its
    accesses, when already collected."""
    found = list(accesses(alloc, ctx)) if found is None else found
    storages = []
    if ctx.target.has_wgmma and feeds_matrix_only(alloc):
        storages = candidates(alloc.result.type, pads, matrix=True)
    storages = storages or candidates(alloc.result.type, pads)
    # An asynchronous copy (cp.async) moves whole 4..16-byte groups from global memory to LDS, or
    # falls back to a copy through registers that overlaps nothing: its width comes first.
    copies = [a for a in found if a.write and a.op.attrs.get("async") and ctx.target.has_async_copy]
    if copies:
        widest = max(min(a.vec(s) for a in copies) for s in storages)
        storages = [s for s in storages if min(a.vec(s) for a in copies) == widest]
    counted = [(instructions(s, found), s) for s in storages]
    fewest = min(c for c, _ in counted)
    best: Choice | None = None
    for count, storage in counted:
        if count != fewest:
            continue      # the bank estimate only breaks ties between equally vectorised storages
        cycles = sum(a.weight * bank_cycles(a, storage, ctx.target)[0] for a in found)
        key = (*count, cycles, storage.nbytes)
        if best is None or key < best.key:
            best = Choice(storage, key)
    assert best is not None
    return best


def feeds_matrix_only(alloc: Op) -> bool:
    """Whether every read of the tile (directly or through a transpose) is an operand of a
    ``dot`` on matrix instructions, and there is at least one."""
    reads = [u for u in alloc.result.uses if isinstance(u, ops.LdsReadOp)]
    if not reads:
        return False
    for read in reads:
        for use in read.result.uses:
            users = use.result.uses if isinstance(use, ops.TransposeOp) else [use]
            for u in users:
                if not isinstance(u, ops.DotOp) or u.attrs.get("strategy") == layout_assignment.LDS_DOT:
                    return False
    return True


def _blocks(total: int, lds_limit: int) -> int:
    return min(KEPT_BLOCKS, lds_limit // total) if total else KEPT_BLOCKS


def _reuse_depth(alloc: Op) -> int:
    return max((_loop_depth(u) for u in alloc.result.uses), default=0)


def run(kernel: Op, ctx: ThreadContext) -> bool:
    """Record the chosen ``order`` and ``pad`` on every ``lds_alloc`` of ``kernel``."""
    allocs = [op for op in kernel.walk() if isinstance(op, ops.LdsAllocOp)]
    before = {id(op): LdsStorage.of(op) for op in allocs}
    found = {id(op): list(accesses(op, ctx)) for op in allocs}
    for op in allocs:
        op.attrs.update(choose(op, ctx, found=found[id(op)]).storage.attrs())
    limit = ctx.target.lds_bytes
    total = lds_alloc.footprint(kernel)
    want = _blocks(lds_alloc.footprint(kernel, padded=False), limit)
    padded = sorted((op for op in allocs if op.attrs["pad"]), key=lambda a: (_reuse_depth(a), a.result.type.nbytes))
    while padded and (total > limit or _blocks(total, limit) < want):
        op = padded.pop(0)
        op.attrs.update(choose(op, ctx, pads=(0,), found=found[id(op)]).storage.attrs())
        total = lds_alloc.footprint(kernel)
    return any(LdsStorage.of(op) != before[id(op)] for op in allocs)
