"""``bind``: a layout spec meets a tile shape, a wave count and a target, and becomes a ``Layout``.

One binder per spec kind, dispatched through ``_BINDERS``; each returns the index map and the
matrix instruction (if any) the layout is made of.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tiledsl.layout.blocked import DTYPE_BYTES, blocked_index_map
from tiledsl.layout.layout import Layout
from tiledsl.layout.mma import (
    UnevenTileError,
    dot_operand_index_map,
    mma_index_map,
    natural_extent_mma,
    natural_extent_operand,
    operand_instr,
    select_instr,
)
from tiledsl.layout.spec import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    LayoutError,
    LayoutSpec,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
)
from tiledsl.targets import MatrixInstr, Target


@dataclass(frozen=True)
class _Request:
    shape: tuple[int, ...]
    num_waves: int
    target: Target
    dtype: str


_Binder = Callable[[LayoutSpec, _Request], tuple[np.ndarray, MatrixInstr | None]]


def bind(spec: LayoutSpec, shape: tuple[int, ...], num_waves: int, target: Target, dtype: str = "f32") -> Layout:
    """The concrete layout of ``spec`` for a ``shape`` tile of ``dtype`` in a block of ``num_waves`` waves.

    ``dtype`` picks what the spec leaves open: a blocked layout's vector width (16 bytes per
    thread) and, for f16/bf16 operands, the default matrix instruction.  Raises ``LayoutError``
    (worded for the user) when the spec cannot cover the tile.
    """
    shape = tuple(shape)
    if any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise LayoutError(f"tile dims must be positive integers, got {list(shape)}")
    shape = tuple(int(d) for d in shape)
    if num_waves < 1 or num_waves * target.wave_size > target.max_threads_per_block:
        raise LayoutError(f"a block of {num_waves} waves of {target.wave_size} lanes does not fit on "
                          f"{target.name} (at most {target.max_threads_per_block} threads)")
    if dtype not in DTYPE_BYTES:
        raise LayoutError(f"unknown element type '{dtype}' (known: {', '.join(DTYPE_BYTES)})")
    binder = _BINDERS.get(type(spec))
    if binder is None:
        raise LayoutError(f"bind is not implemented for {type(spec).__name__}")
    index_map, instr = binder(spec, _Request(shape, num_waves, target, dtype))
    return Layout(spec, shape, num_waves, target, index_map, instr=instr, dtype=dtype)


def _bind_blocked(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    assert isinstance(spec, BlockedSpec)
    return blocked_index_map(spec, req.shape, req.num_waves, req.target.wave_size, req.dtype), None


def _bind_mma(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    assert isinstance(spec, MmaSpec)
    instr = select_instr(spec, req.target, req.dtype)
    with _hint_other_instr(spec, req, instr, lambda named, other: mma_index_map(
            named, req.shape, req.num_waves, other)):
        return mma_index_map(spec, req.shape, req.num_waves, instr), instr


def _bind_dot_operand(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    assert isinstance(spec, DotOperandSpec)
    instr = operand_instr(spec.parent, req.target, req.dtype)
    with _hint_other_instr(spec.parent, req, instr, lambda named, other: dot_operand_index_map(
            dataclasses.replace(spec, parent=named), req.shape, req.num_waves, other)):
        return dot_operand_index_map(spec, req.shape, req.num_waves, instr), instr


@contextmanager
def _hint_other_instr(spec: MmaSpec, req: _Request, chosen: MatrixInstr,
                      build: Callable[[MmaSpec, MatrixInstr], np.ndarray]) -> Iterator[None]:
    """When the default instruction does not fit the tile but another one would, say so; when
    none fits, say which multiples the others need.

    ``build(spec with instr named, instr)`` binds the same tile with another instruction.
    """
    try:
        yield
    except LayoutError as err:
        if spec.instr is not None:
            raise
        needs = []
        for other in req.target.matrix_instrs:
            if other.in_dtype != chosen.in_dtype or other is chosen:
                continue
            named = dataclasses.replace(spec, instr=other.name)
            try:
                build(named, other)
            except UnevenTileError as uneven:
                needs.append(f"with instr={other.name} a multiple of ({uneven.units[0]}, {uneven.units[1]})")
                continue
            except LayoutError:
                continue
            raise LayoutError(f"{err}; or choose the instruction: {named}") from None
        if needs and isinstance(err, UnevenTileError):
            raise LayoutError(f"{err}, or {', or '.join(needs)}") from None
        raise


def _bind_replicated(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    coords = np.indices(req.shape).reshape(len(req.shape), math.prod(req.shape)).T  # [elements, rank], row-major
    threads = (req.num_waves, req.target.wave_size)
    return np.broadcast_to(coords, threads + coords.shape), None


def natural_extent(spec: LayoutSpec, dim: int, target: Target, dtype: str) -> int:
    """The smallest extent along ``dim`` over which ``spec`` repeats; the removed extent of a slice."""
    if isinstance(spec, MmaSpec):
        return natural_extent_mma(spec, dim, select_instr(spec, target, dtype))
    if isinstance(spec, DotOperandSpec):
        return natural_extent_operand(spec, dim, operand_instr(spec.parent, target, dtype))
    if isinstance(spec, ReplicatedSpec):
        return 1
    if isinstance(spec, SliceSpec):
        return natural_extent(spec.parent, dim if dim < spec.dim else dim + 1, target, dtype)
    if isinstance(spec, ExpandSpec):
        if dim == spec.dim:
            return 1
        return natural_extent(spec.parent, dim if dim < spec.dim else dim - 1, target, dtype)
    if isinstance(spec, BlockedSpec):
        # A blocked layout chooses its lanes from the whole tile shape, so no extent is canonical.
        raise LayoutError(f"slice of {spec} needs the parent's extent along the removed dim: "
                          f"write slice(dim, {spec}, size=N)")
    raise LayoutError(f"natural_extent is not implemented for {type(spec).__name__}")


def _bind_slice(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    assert isinstance(spec, SliceSpec)
    if spec.dim > len(req.shape):
        raise LayoutError(f"{spec}: dim {spec.dim} is out of range for a rank-{len(req.shape) + 1} parent")
    extent = spec.size or natural_extent(spec.parent, spec.dim, req.target, req.dtype)
    parent_shape = req.shape[:spec.dim] + (extent,) + req.shape[spec.dim:]
    parent = bind(spec.parent, parent_shape, req.num_waves, req.target, req.dtype)
    kept = [d for d in range(len(parent_shape)) if d != spec.dim]
    projected = parent.index_map()[..., kept]
    return _dedup_registers(projected, req.shape), parent.instr


def _bind_expand(spec: LayoutSpec, req: _Request) -> tuple[np.ndarray, MatrixInstr | None]:
    assert isinstance(spec, ExpandSpec)
    if spec.dim >= len(req.shape) or req.shape[spec.dim] != 1:
        raise LayoutError(f"{spec} lays out tiles of extent 1 along dim {spec.dim}, not "
                          f"{'x'.join(map(str, req.shape)) or 'a scalar'}")
    parent = bind(spec.parent, req.shape[:spec.dim] + req.shape[spec.dim + 1:], req.num_waves, req.target,
                  req.dtype)
    m = parent.index_map()
    # Empty slots stay -1 in every coordinate, the new one included.
    new = np.where(parent.valid(), 0, -1)[..., None]
    return np.concatenate([m[..., :spec.dim], new, m[..., spec.dim:]], axis=-1), parent.instr


def _dedup_registers(coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Keep each thread's first register holding each element, in register order; pad with -1.

    After a projection several registers of one thread hold the same slice element (a row of an
    mma tile spread over the thread's N registers); the slice keeps one. Where the repeats sit in
    the same registers in every thread (blocked and mma parents, padded or not), those registers
    go and the others keep their places, so register r is the same part of the pattern in every
    thread (a reduction's register groups depend on it); otherwise each thread's kept registers
    move to the front.
    """
    waves, lanes, regs, rank = coords.shape
    flat = coords.reshape(waves * lanes, regs, rank)
    if rank:
        valid = flat[..., 0] >= 0
        lin = np.where(valid, np.ravel_multi_index(tuple(np.moveaxis(np.maximum(flat, 0), -1, 0)), shape), -1)
    else:
        valid = np.ones((waves * lanes, regs), dtype=bool)
        lin = np.zeros((waves * lanes, regs), dtype=np.int64)
    order = np.argsort(lin, axis=1, kind="stable")
    ordered = np.take_along_axis(lin, order, axis=1)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = np.zeros(lin.shape, dtype=bool)
    np.put_along_axis(keep, order, first & (ordered >= 0), axis=1)
    drop = (valid & ~keep).any(axis=0) | ~valid.any(axis=0)
    if not (keep & drop[None, :]).any() and not drop.all():
        picked = np.where(keep[:, ~drop, None], flat[:, ~drop], -1)
        return picked.reshape(waves, lanes, int((~drop).sum()), rank)
    # A stable sort on "not kept" moves the kept registers to the front, still in register order.
    compact = np.argsort(~keep, axis=1, kind="stable")
    count = max(int(keep.sum(axis=1).max()), 1)
    picked = np.take_along_axis(flat, compact[:, :count, None], axis=1)
    picked_keep = np.take_along_axis(keep, compact[:, :count], axis=1)
    picked = np.where(picked_keep[..., None], picked, -1)
    return picked.reshape(waves, lanes, count, rank)


_BINDERS: dict[type, _Binder] = {
    BlockedSpec: _bind_blocked,
    MmaSpec: _bind_mma,
    DotOperandSpec: _bind_dot_operand,
    SliceSpec: _bind_slice,
    ExpandSpec: _bind_expand,
    ReplicatedSpec: _bind_replicated,
}
