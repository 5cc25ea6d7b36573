"""Recording who touches what: an ``AccessTrace`` plugged into the block interpreter's tracer.

For every global tensor and LDS tile the trace keeps, per kind of access (``read``, ``write``,
``lds_read``, ``lds_write``), the first block (linear id) that accessed each element and how many
block-accesses each element had.  For one *watched* block (block 0 by default) it also keeps the
LDS accesses one by one, with the barrier interval they fall in (the number of ``sync``s the block
had passed), which is what ``lds_picture`` draws.

Block linear ids follow the block interpreter: grid axis 0 varies fastest
(``id = c0 + g0 * (c1 + g1 * c2)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.ir.core import Op
from tiledsl.ir.types import TensorType

KINDS = ("read", "write", "lds_read", "lds_write")

_NOBODY = np.iinfo(np.int64).max

# Only so many LDS events of the watched block are kept: a long loop repeats the same pattern.
MAX_LDS_EVENTS = 4096


@dataclass(frozen=True)
class LdsEvent:
    """One LDS access of the watched block: which op touched which elements in which barrier interval."""

    buffer: str
    kind: str            # "lds_read" | "lds_write"
    op_id: int           # the op's number in the trace (stable for one run)
    op_label: str        # e.g. "copy K -> ks (line 28)"
    interval: int        # syncs the block had passed when the access happened
    elements: np.ndarray  # bool, the LDS tile's shape


@dataclass
class _Record:
    owner: np.ndarray     # int64 flat: smallest block id, _NOBODY when untouched
    last: np.ndarray      # int64 flat: largest block id, -1 when untouched
    count: np.ndarray     # int64 flat
    lo: np.ndarray        # int64 [blocks, rank]: the smallest coordinate each block touched
    hi: np.ndarray        # int64 [blocks, rank]: the largest, -1 when the block touched nothing
    accesses: np.ndarray  # int64 [blocks]: the block's element accesses


@dataclass
class AccessTrace:
    """Per (tensor or LDS name, kind): the first block touching each element and an access count.

    Call it as ``BlockInterpreter.tracer``.  ``shapes`` gives the shape of every tensor and LDS tile
    that may be traced, ``grid`` the grid extents, ``grid_names`` the block coordinate names.
    """

    shapes: Mapping[str, tuple[int, ...]]
    grid: tuple[int, ...]
    grid_names: tuple[str, ...] = ()
    watch_block: int = 0
    lds_events: list[LdsEvent] = field(default_factory=list, repr=False)
    tiles: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    report: Report | None = field(default=None, repr=False)
    _records: dict[tuple[str, str], _Record] = field(default_factory=dict, repr=False)
    _op_ids: dict[int, tuple[int, str]] = field(default_factory=dict, repr=False)
    _interval: int = field(default=0, repr=False)

    # ------------------------------------------------------------ recording
    def __call__(self, op: Op, kind: str, name: str, flat_index: np.ndarray, mask: np.ndarray,
                 block_coords: Sequence[np.ndarray]) -> None:
        if kind == "sync":
            self.barrier(mask, block_coords)
            return
        if kind not in KINDS:
            raise ValueError(f"internal: unknown access kind '{kind}'")
        if name not in self.shapes:
            raise ValueError(f"internal: the trace has no shape for '{name}'")
        blocks = self.linear_ids(block_coords, flat_index.shape[0])
        full = np.broadcast_to(blocks.reshape(-1, *([1] * (flat_index.ndim - 1))), flat_index.shape)
        index, who = flat_index[mask], full[mask]
        rec = self._record(name, kind)
        np.minimum.at(rec.owner, index, who)
        np.maximum.at(rec.last, index, who)
        rec.count += np.bincount(index, minlength=rec.count.size)
        self._note_boxes(rec, name, flat_index, mask, blocks)
        if kind in ("read", "write"):
            extents = tuple(int(e) for e in op.attrs.get("extents", ()) if e != 0)
            self.tiles.setdefault((name, kind), extents)
        else:
            self._note_lds(op, kind, name, flat_index, mask, blocks)

    def linear_ids(self, block_coords: Sequence[np.ndarray], count: int) -> np.ndarray:
        """Linear ids of the blocks of a chunk (grid axis 0 fastest)."""
        if not self.grid:
            return np.zeros(count, dtype=np.int64)
        coords = [np.broadcast_to(np.asarray(c, dtype=np.int64), (count,)) for c in block_coords]
        return np.ravel_multi_index(tuple(coords), self.grid, order="F").astype(np.int64)

    def _note_boxes(self, rec: _Record, name: str, flat_index: np.ndarray, mask: np.ndarray,
                    blocks: np.ndarray) -> None:
        """Per block of the chunk: the bounding box of the elements it touched, and how many."""
        nb = len(blocks)
        flat_mask = mask.reshape(nb, -1)
        touched = flat_mask.any(axis=1)
        if not touched.any():
            return
        coords = np.unravel_index(flat_index.reshape(nb, -1), self.shapes[name]) if self.shapes[name] else ()
        for d, c in enumerate(coords):
            lo = np.where(flat_mask, c, _NOBODY).min(axis=1)
            hi = np.where(flat_mask, c, -1).max(axis=1)
            rec.lo[blocks[touched], d] = np.minimum(rec.lo[blocks[touched], d], lo[touched])
            rec.hi[blocks[touched], d] = np.maximum(rec.hi[blocks[touched], d], hi[touched])
        rec.accesses[blocks] += flat_mask.sum(axis=1)

    def barrier(self, active: np.ndarray, block_coords: Sequence[np.ndarray]) -> None:
        """A ``sync`` ran for the ``active`` blocks of a chunk: the watched block may enter a new interval."""
        blocks = self.linear_ids(block_coords, len(active))
        if np.any(active & (blocks == self.watch_block)):
            self._interval += 1

    def _note_lds(self, op: Op, kind: str, name: str, flat_index: np.ndarray, mask: np.ndarray,
                  blocks: np.ndarray) -> None:
        here = np.flatnonzero(blocks == self.watch_block)
        if not len(here) or len(self.lds_events) >= MAX_LDS_EVENTS:
            return
        b = int(here[0])
        elements = np.zeros(int(np.prod(self.shapes[name], dtype=np.int64)), dtype=bool)
        elements[flat_index[b][mask[b]]] = True
        if not elements.any():
            return
        op_id, label = self._op_ids.setdefault(id(op), (len(self._op_ids), _op_label(op)))
        self.lds_events.append(LdsEvent(name, kind, op_id, label, self._interval,
                                        elements.reshape(self.shapes[name])))

    def _record(self, name: str, kind: str) -> _Record:
        rec = self._records.get((name, kind))
        if rec is None:
            size = int(np.prod(self.shapes[name], dtype=np.int64))
            blocks, rank = self.num_blocks, len(self.shapes[name])
            rec = _Record(np.full(size, _NOBODY, dtype=np.int64), np.full(size, -1, dtype=np.int64),
                          np.zeros(size, dtype=np.int64), np.full((blocks, rank), _NOBODY, dtype=np.int64),
                          np.full((blocks, rank), -1, dtype=np.int64), np.zeros(blocks, dtype=np.int64))
            self._records[(name, kind)] = rec
        return rec

    # ------------------------------------------------------------ reading
    @property
    def num_blocks(self) -> int:
        return int(np.prod(self.grid, dtype=np.int64)) if self.grid else 1

    def block_coords(self, block: int) -> tuple[int, ...]:
        """The grid coordinates of a linear block id."""
        if not self.grid:
            return ()
        return tuple(int(c) for c in np.unravel_index(block, self.grid, order="F"))

    def block_text(self, block: int) -> str:
        """``bm=1, bn=0`` (or ``(1, 0)`` without grid names) for a linear block id."""
        coords = self.block_coords(block)
        if len(self.grid_names) == len(coords) and coords:
            return ", ".join(f"{n}={c}" for n, c in zip(self.grid_names, coords))
        return str(coords)

    def traced(self, kind: str | None = None) -> list[tuple[str, str]]:
        """The (name, kind) pairs with at least one access, in first-access order."""
        return [key for key in self._records if kind is None or key[1] == kind]

    def has(self, name: str, kind: str) -> bool:
        return (name, kind) in self._records

    def owner(self, name: str, kind: str) -> np.ndarray:
        """The first block (linear id) that accessed each element, -1 for none: the tensor's shape."""
        shape = self.shapes[name]
        rec = self._records.get((name, kind))
        if rec is None:
            return np.full(shape, -1, dtype=np.int64)
        return np.where(rec.owner == _NOBODY, -1, rec.owner).reshape(shape)

    def last(self, name: str, kind: str) -> np.ndarray:
        """The last block (largest linear id) that accessed each element, -1 for none."""
        rec = self._records.get((name, kind))
        if rec is None:
            return np.full(self.shapes[name], -1, dtype=np.int64)
        return rec.last.reshape(self.shapes[name]).copy()

    def boxes(self, name: str, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per block: the smallest and largest coordinate it accessed along each dim (``[blocks, rank]``,
        -1 for blocks that accessed nothing) and its number of element accesses (``[blocks]``)."""
        rec = self._records.get((name, kind))
        blocks, rank = self.num_blocks, len(self.shapes[name])
        if rec is None:
            empty = np.full((blocks, rank), -1, dtype=np.int64)
            return empty, empty.copy(), np.zeros(blocks, dtype=np.int64)
        lo = np.where(rec.hi >= 0, rec.lo, -1)
        return lo, rec.hi.copy(), rec.accesses.copy()

    def count(self, name: str, kind: str) -> np.ndarray:
        """How many block-accesses each element had (a block reading it twice counts twice)."""
        shape = self.shapes[name]
        rec = self._records.get((name, kind))
        return np.zeros(shape, dtype=np.int64) if rec is None else rec.count.reshape(shape).copy()


def _op_label(op: Op) -> str:
    """A short name for an op in a legend: ``copy K -> ks (line 28)``."""
    tensor = next((v.hint for v in op.operands if isinstance(v.type, TensorType) and v.hint), None)
    buffer = op.operands[-1].hint if op.name in ("copy", "lds_write") and op.operands else None
    if op.name == "copy" and tensor and buffer:
        text = f"copy {tensor} -> {buffer}"
    elif op.name == "lds_read" and op.operands and op.operands[0].hint:
        text = f"lds_read {op.operands[0].hint}"
    elif op.name == "lds_write" and buffer:
        text = f"lds_write -> {buffer}"
    else:
        text = op.name
    line = getattr(op.loc, "line", None)
    return f"{text} (line {line})" if line is not None else text


def record_block_level(program: Any, args: Mapping[str, Any], watch_block: int = 0) -> AccessTrace:
    """Run ``program`` at block level on ``args`` (arrays and scalars by parameter name) and trace it.

    Does what ``Program.interpret(level="block")`` does, with a tracer set; ``out`` arrays in
    ``args`` are not written.  The interpreter's report (bounds, LDS, coverage) is in
    ``trace.report``.  Raises ``ValueError``/``TypeError`` for arguments that do not fit.
    """
    prog, tensors, scalars, dims = program.prepare_arguments(args)
    kernel = prog.lowered()
    shapes: dict[str, tuple[int, ...]] = {name: t.data.shape for name, t in tensors.items()}
    for op in kernel.walk():
        if isinstance(op, ops.LdsAllocOp):
            shapes[op.result.hint or "lds"] = tuple(int(d) for d in op.result.type.shape)
    report = Report(level="block")
    trace = AccessTrace(shapes, (), tuple(kernel.attrs.get("grid_names", ())), watch_block)
    interp = BlockInterpreter(kernel, tensors, scalars, dims, report)
    trace.grid = tuple(interp.grid_extents())
    interp.tracer = trace
    interp.run()
    program.check_coverage(kernel, tensors, report)
    trace.report = report
    return trace
