"""How a reduction runs in a given pair of layouts: registers, then lanes, then waves.

``reduce_plan(src, dst, axis)`` says how the threads of a block reduce a tile laid out as ``src``
along ``axis`` into the tile laid out as ``dst`` (a rank-0 ``dst`` is a full reduction to one
value that every thread ends up holding):

1. in each thread, the registers on one line are combined (``reg_reduce``, register groups the
   same in every thread);
2. across the lanes of a wave, an xor butterfly (``shuffle_xor`` by each mask) over the smallest
   xor group that joins every lane holding part of a line;
3. across waves, when a line is spread over several, through LDS (each wave writes its partial,
   every thread combines the waves that hold its elements).

Slots that hold no element of the tile (padding of a layout that does not divide the tile: a row
of 96 on 32 lanes leaves 8 lanes empty), and all but the first copy of an element that several
threads hold, count as the reduction's identity: distribution replaces them by it first
(``identity_mask``), so the butterfly over a power-of-two lane group stays correct whatever the
width. Every step is checked here on the layouts' index maps, by counting what each destination
register ends up combining; a pair of layouts the scheme cannot reduce gets None (layout
assignment then reduces into the slice of the operand's layout, or a blocked copy of the operand,
and converts the result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiledsl.ir.core import Value
from tiledsl.layout import Layout, ReplicatedSpec
from tiledsl.thread.context import ThreadContext


@dataclass(frozen=True)
class ReducePlan:
    """``groups[r]``: the source registers combined into destination register r; ``masks``: the
    butterfly's xor masks, in order; ``identity_mask``: some combined slot must first be replaced
    by the identity, keeping the slots of the ``valid`` query (with ``owner="block"`` when
    ``first_holders``: only each element's first holder counts); ``across_waves``: the waves'
    partials are combined through LDS."""

    groups: list[list[int]]
    masks: list[int]
    identity_mask: bool
    first_holders: bool
    across_waves: bool


def result_layout(ctx: ThreadContext, v: Value) -> Layout:
    """The layout of a reduction's result ``v``; a full reduction's (rank 0, which has none in the
    IR) is one register that every thread holds."""
    spec = v.type.layout if v.type.shape else ReplicatedSpec()
    return ctx.bind(spec, tuple(v.type.shape), v.type.dtype)


def _line_ids(layout: Layout, axis: int | None, out_shape: tuple[int, ...]) -> np.ndarray:
    """``[threads, regs]``: the linear index in ``out_shape`` of the line each slot's element lies
    on (its coordinates with ``axis`` removed), -1 for empty slots."""
    m = layout.index_map()
    coords = m if axis is None else np.delete(m, axis, axis=-1)
    valid = layout.valid()
    if out_shape:
        flat = np.ravel_multi_index(tuple(np.moveaxis(np.maximum(coords, 0), -1, 0)), out_shape)
    else:
        flat = np.zeros(valid.shape, np.int64)
    return np.where(valid, flat, -1).reshape(layout.num_threads, layout.regs)


def _first_holders(layout: Layout) -> np.ndarray:
    """``[threads, regs]``: the slot is the first, in (wave, lane, register) order, to hold its
    element (the ``valid(owner="block")`` query)."""
    lin = layout.linear_map().reshape(-1)
    keep = np.zeros(lin.shape, bool)
    _, first = np.unique(lin, return_index=True)
    keep[first] = True
    return (keep & (lin >= 0)).reshape(layout.num_threads, layout.regs)


def _xor_basis(diffs: set[int]) -> list[int]:
    """The smallest masks, in increasing order, whose xor span contains ``diffs``."""
    span = {0}
    for d in sorted(diffs):
        if d not in span:
            span |= {x ^ d for x in span}
    masks: list[int] = []
    got = {0}
    for d in sorted(span):
        if d not in got:
            masks.append(d)
            got |= {x ^ d for x in got}
    return masks


def _first_per_wave(layout: Layout) -> np.ndarray:
    """``[threads, regs]``: the slot is the first of its wave, in (lane, register) order, to hold
    its element (the ``valid(owner="wave")`` query: the writer of a wave's partial)."""
    lin = layout.linear_map().reshape(layout.num_waves, -1)
    keep = np.zeros(lin.shape, bool)
    for w in range(layout.num_waves):
        _, first = np.unique(lin[w], return_index=True)
        keep[w, first] = True
    return (keep & (lin >= 0)).reshape(layout.num_threads, layout.regs)


def _butterfly(part_line: np.ndarray, part_count: np.ndarray, dline: np.ndarray | None, lanes: int
               ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The masks of the butterfly joining, in each wave and register, the lanes whose partials lie
    on one line (and, given ``dline``, the lanes holding that line in the result), and what each
    slot holds after it: (line, -1 none or -2 mixed; element count)."""
    threads, regs = part_line.shape
    diffs: set[int] = set()
    for r in range(regs):
        for w in range(threads // lanes):
            lines = part_line[w * lanes:(w + 1) * lanes, r]
            joined = lines if dline is None else np.where(lines >= 0, lines, dline[w * lanes:(w + 1) * lanes, r])
            for e in np.unique(joined[joined >= 0]):
                held = np.nonzero(joined == e)[0]
                diffs |= {int(x) for x in held ^ held[0]}
    masks = _xor_basis(diffs)
    line, count = part_line.copy(), part_count.copy()
    t = np.arange(threads)
    for m in masks:
        partner = t - t % lanes + ((t % lanes) ^ m)
        pl, pc = line[partner], count[partner]
        line = np.where(line == -1, pl, np.where((pl == -1) | (pl == line), line, -2))
        count = count + pc
    return masks, line, count


def reduce_plan(src: Layout, dst: Layout, axis: int) -> ReducePlan | None:
    """The plan that reduces ``src`` along ``axis`` into ``dst``, or None when registers, an xor
    butterfly and LDS across waves cannot do it in these layouts."""
    if src.num_threads != dst.num_threads:
        return None
    lanes = src.wave_size
    threads = src.num_threads
    key = _line_ids(src, axis, dst.shape)                       # [T, S] line of each source slot
    dline = _line_ids(dst, None, dst.shape)                     # [T, R] line of each destination slot
    contrib = _first_holders(src)                               # each element counted once, by its first holder
    # 1. Registers: every source register that holds, in some thread, the line of register r.
    groups: list[list[int]] = []
    for r in range(dst.regs):
        hit = (key == dline[:, r:r + 1]) & (dline[:, r:r + 1] >= 0) & contrib
        g = [int(s) for s in np.nonzero(hit.any(axis=0))[0]]
        groups.append(g or [0])
    part_line = np.full((threads, dst.regs), -1, np.int64)     # line of each partial, -1 none, -2 mixed
    part_count = np.zeros((threads, dst.regs), np.int64)
    for r, g in enumerate(groups):
        k = np.where(contrib[:, g], key[:, g], -1)
        hi = k.max(axis=1)
        lo = np.where(k >= 0, k, np.iinfo(np.int64).max).min(axis=1)
        part_line[:, r] = np.where((hi < 0) | (hi == lo), hi, -2)
        part_count[:, r] = (k >= 0).sum(axis=1)
    used = np.zeros_like(contrib)
    for g in groups:
        used[:, g] = True
    needs_identity = bool((used & ~contrib).any())
    # What each wave holds of each line, against the whole line.
    wave_of = np.arange(threads) // lanes
    n_lines = max(int(np.prod(dst.shape)) if dst.shape else 1, 1)
    on = contrib & (key >= 0)
    per_wave = np.zeros((src.num_waves, n_lines), np.int64)
    np.add.at(per_wave, (np.broadcast_to(wave_of[:, None], key.shape)[on], key[on]), 1)
    holds = dline >= 0
    e = np.maximum(dline, 0)
    wave_part = per_wave[np.broadcast_to(wave_of[:, None], e.shape), e]
    whole = per_wave.sum(axis=0)[e]

    def complete(line: np.ndarray, count: np.ndarray, slots: np.ndarray, want: np.ndarray) -> bool:
        return not (((line != -1) & (line != dline) & slots).any() or (slots & (count != want)).any())

    # 2. Lanes: a butterfly over the lanes whose partials lie on one line; where that leaves a
    # holder of the result without it (a full reduction that every lane holds), also over them.
    for join_holders in (False, True):
        masks, line, count = _butterfly(part_line, part_count, dline if join_holders else None, lanes)
        if complete(line, count, holds, whole):
            across = False
            break
    else:
        # 3. Waves: each wave's first holder of an element writes the wave's part of it to LDS.
        masks, line, count = _butterfly(part_line, part_count, None, lanes)
        if not complete(line, count, _first_per_wave(dst), wave_part):
            return None
        held_by = np.zeros((src.num_waves, n_lines), bool)
        held_by[np.broadcast_to(wave_of[:, None], e.shape)[holds], e[holds]] = True
        if ((per_wave > 0) & ~held_by).any():
            return None            # a wave holds part of a line but no thread of it would write it
        across = True
    replicated = bool((contrib != (key >= 0)).any())
    return ReducePlan(groups, masks, needs_identity, needs_identity and replicated, across)
