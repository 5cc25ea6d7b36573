"""Binding a ``blocked`` spec: elements per thread x lanes x waves, repeated to cover the tile.

Along each dim ``d`` a thread's coordinate is
``((rep * waves[d] + wave_d) * lanes[d] + lane_d) * spt[d] + s``: ``spt[d]`` contiguous elements,
then the lanes, then the waves, and the whole block pattern repeated ``reps[d]`` times.  Lane and
wave ids are split over the dims with ``order[0]`` varying fastest.  A thread's registers run over
the repetitions, then over its ``spt`` elements, slowest dim outermost, so the fastest dim's
contiguous elements are consecutive registers (one vector load).

Fields the spec leaves out are chosen from the tile shape and dtype:
- ``order``: row-major (``[rank-1, ..., 0]``);
- ``spt``: a 16-byte vector along the fastest dim (8 f16 / 4 f32), halved until it divides that dim,
  1 along the others;
- lanes (never in the spec): they fill the fastest dim first, then the next; lanes left over when
  the tile is small go to the slowest dim and hold nothing;
- ``waves``: the slowest dim first (for a 2-D tile, waves split the rows).
"""

from __future__ import annotations

import math

import numpy as np

from tiledsl.ir.types import DTYPE_BYTES
from tiledsl.layout.spec import BlockedSpec, LayoutError

# The widest global/LDS access every target has (global_load_dwordx4, ld.global.v4.b32).
_VECTOR_BYTES = 16


def _split(total: int, caps: list[int], visit: tuple[int, ...], spare_to: int) -> list[int]:
    """Share ``total`` (lanes or waves) over dims in ``visit`` order, giving each dim what it can use.

    A dim gets the smallest divisor of what is left that covers its ``cap``; what no dim can use
    goes to dim ``spare_to`` (those threads then hold nothing).
    """
    counts = [1] * len(caps)
    left = total
    for d in visit:
        counts[d] = next((q for q in range(1, left + 1) if left % q == 0 and q >= caps[d]), left)
        left //= counts[d]
    counts[spare_to] *= left
    return counts


def default_spt(shape: tuple[int, ...], order: tuple[int, ...], dtype: str) -> tuple[int, ...]:
    """16-byte vectors along the fastest dim (fewer elements when the dim is short or not divisible)."""
    vec = _VECTOR_BYTES // DTYPE_BYTES[dtype]
    fastest = order[0]
    while vec > 1 and shape[fastest] % vec:
        vec //= 2
    return tuple(vec if d == fastest else 1 for d in range(len(shape)))


def resolve_blocked(spec: BlockedSpec, shape: tuple[int, ...], num_waves: int, wave_size: int,
                    dtype: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The full (spt, lanes, waves, order) that ``spec`` means for this tile."""
    rank = len(shape)
    if rank == 0:
        raise LayoutError(f"{spec} cannot lay out a scalar; use replicated")
    if spec.rank is not None and spec.rank != rank:
        raise LayoutError(f"{spec} is written for rank-{spec.rank} tiles, the tile "
                          f"{'x'.join(map(str, shape))} has rank {rank}")
    if dtype not in DTYPE_BYTES:
        raise LayoutError(f"unknown element type '{dtype}' (known: {', '.join(DTYPE_BYTES)})")
    order = spec.order or tuple(range(rank - 1, -1, -1))
    spt = spec.size_per_thread or default_spt(shape, order, dtype)
    # Spare lanes and waves go to the slowest dim, so a short tile never splits the contiguous
    # vectors of its fastest dim between threads.
    lanes = _split(wave_size, [math.ceil(shape[d] / spt[d]) for d in range(rank)], order, order[-1])
    if spec.waves is not None:
        waves = list(spec.waves)
        if math.prod(waves) != num_waves:
            raise LayoutError(f"{spec} asks for {math.prod(waves)} waves but the block has {num_waves}")
    else:
        caps = [math.ceil(shape[d] / (spt[d] * lanes[d])) for d in range(rank)]
        waves = _split(num_waves, caps, tuple(reversed(order)), order[-1])
    return tuple(spt), tuple(lanes), tuple(waves), tuple(order)


def blocked_index_map(spec: BlockedSpec, shape: tuple[int, ...], num_waves: int, wave_size: int,
                      dtype: str) -> np.ndarray:
    """The ``[num_waves, wave_size, regs, rank]`` index map of ``spec`` on a ``shape`` tile."""
    spt, lanes, waves, order = resolve_blocked(spec, shape, num_waves, wave_size, dtype)
    rank = len(shape)
    reps = [math.ceil(shape[d] / (spt[d] * lanes[d] * waves[d])) for d in range(rank)]
    slow_first = tuple(reversed(order))

    wave_coord = _mixed_radix(np.arange(num_waves), waves, order)
    lane_coord = _mixed_radix(np.arange(wave_size), lanes, order)
    # Axes: wave, lane, reps (slowest dim first), spt elements (slowest dim first).
    n_axes = 2 + 2 * rank
    coords = []
    for d in range(rank):
        def axis(values: np.ndarray, position: int) -> np.ndarray:
            shape_ = [1] * n_axes
            shape_[position] = len(values)
            return values.reshape(shape_)
        rep = axis(np.arange(reps[d]), 2 + slow_first.index(d))
        elem = axis(np.arange(spt[d]), 2 + rank + slow_first.index(d))
        w = axis(wave_coord[d], 0)
        ln = axis(lane_coord[d], 1)
        coords.append(((rep * waves[d] + w) * lanes[d] + ln) * spt[d] + elem)
    full = np.stack(np.broadcast_arrays(*coords), axis=-1)
    full = full.reshape(num_waves, wave_size, -1, rank)
    inside = (full < np.array(shape)).all(axis=-1)
    return np.where(inside[..., None], full, -1)


def _mixed_radix(ids: np.ndarray, radices: tuple[int, ...] | list[int], order: tuple[int, ...]) -> list[np.ndarray]:
    """Split linear ids into one coordinate per dim, ``order[0]`` varying fastest."""
    out: list[np.ndarray] = [np.zeros_like(ids)] * len(radices)
    rest = ids
    for d in order:
        out[d] = rest % radices[d]
        rest = rest // radices[d]
    return out
