"""LDS allocation: byte offsets for every LDS tile, reusing memory across lifetimes.

A tile is live from its first to its last use in program order; a use inside a loop
keeps it live for the whole loop (the next iteration comes back to it). Tiles whose
lifetimes do not overlap may share bytes; when a tile takes over bytes that another
used before, a ``sync`` must separate the old tile's last use from the new tile's
first use, and one is inserted if the program has none there. A tile takes the bytes
of its storage layout (``LdsStorage``: padded lines take more than the elements; the
lds-layout pass keeps the padding within budget with ``footprint``). Offsets are 16-byte aligned (room for 128-bit accesses). Sets ``offset`` on each
``lds_alloc`` and ``lds_bytes`` on the kernel; a program over the target's LDS size is a
located error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tiledsl.diagnostics import TdslError
from tiledsl.ir import ops
from tiledsl.ir.core import Op
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.thread import layouts as layout_assignment

ALIGN = 16



@dataclass
class Buffer:
    alloc: ops.LdsAllocOp
    size: int
    start: int = 0
    end: int = 0
    offset: int = 0
    align: int = ALIGN

    @property
    def name(self) -> str:
        return self.alloc.result.hint or "scratch"


def _numbered(kernel: Op) -> tuple[list[Op], dict[int, int]]:
    order = list(kernel.walk())
    return order, {id(op): i for i, op in enumerate(order)}


def _loop_span(op: Op, index: dict[int, int]) -> tuple[int, int]:
    """The position range of the outermost loop around ``op`` (or op itself)."""
    lo = hi = index[id(op)]
    cur = op.parent.parent if op.parent is not None else None
    while cur is not None and not isinstance(cur, ops.KernelOp):
        if isinstance(cur, ops.ForOp):
            lo = index[id(cur)]
            hi = max(index[id(o)] for o in cur.walk())
        cur = cur.parent.parent if cur.parent is not None else None
    return lo, hi


def _users(alloc: Op) -> list[Op]:
    """The ops that touch ``alloc``'s tile: its uses, and the FMA fallback of a dot, which reads
    an operand staged in LDS itself (after the ``lds_read`` that names it, directly or through a
    transpose)."""
    out = list(alloc.result.uses)
    for read in alloc.result.uses:
        if isinstance(read, ops.LdsReadOp):
            for u in read.result.uses:
                users = u.result.uses if isinstance(u, ops.TransposeOp) else [u]
                out += [d for d in users if d.attrs.get("strategy") == layout_assignment.LDS_DOT]
    return out


def _buffers(kernel: Op, padded: bool = True) -> list[Buffer]:
    order, index = _numbered(kernel)
    buffers: list[Buffer] = []
    for op in order:
        if isinstance(op, ops.LdsAllocOp):
            storage = LdsStorage.of(op)
            size = (storage if padded else dataclasses.replace(storage, pad=0)).nbytes
            b = Buffer(op, (size + ALIGN - 1) // ALIGN * ALIGN, align=max(ALIGN, storage.align))
            spans = [_loop_span(u, index) for u in _users(op)]
            if spans:
                b.start, b.end = min(s[0] for s in spans), max(s[1] for s in spans)
            else:
                b.start = b.end = index[id(op)]
            buffers.append(b)
    return buffers


def _place(buffers: list[Buffer]) -> int:
    """First fit, in order of first use: offsets for the buffers; returns the bytes used."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda x: (x.start, -x.size)):
        live = sorted((p for p in placed if not (p.end < b.start or b.end < p.start)), key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + b.size <= p.offset:
                break
            offset = -(-max(offset, p.offset + p.size) // b.align) * b.align
        b.offset = offset
        placed.append(b)
    return max((b.offset + b.size for b in buffers), default=0)


def footprint(kernel: Op, padded: bool = True) -> int:
    """The LDS bytes the kernel's tiles take once placed (without their padding if not
    ``padded``)."""
    return _place(_buffers(kernel, padded))


def run(kernel: Op, lds_limit: int | None = None, target_name: str = "") -> bool:
    buffers = _buffers(kernel)
    total = _place(buffers)
    for b in buffers:
        b.alloc.attrs["offset"] = b.offset
    kernel.attrs["lds_bytes"] = total
    if lds_limit is not None and total > lds_limit:
        _check_pipelined_lds(buffers, total, lds_limit, target_name)
        worst = max(buffers, key=lambda x: x.size)
        parts = ", ".join(f"{b.name} {b.size} B" for b in buffers)
        raise TdslError(worst.alloc.loc, f"the kernel needs {total} bytes of LDS but {target_name} has "
                                         f"{lds_limit} ({parts})", ["use smaller tiles (-D BM=..., -D BN=...)"])
    _insert_reuse_syncs(kernel, buffers)
    return True


def _insert_reuse_syncs(kernel: Op, buffers: list[Buffer]) -> None:
    """Where a tile reuses bytes of an earlier one, make sure a sync lies between."""
    order, index = _numbered(kernel)
    spanned = order            # the ops the buffers' start and end positions count (before any insertion)
    sync_positions = [index[id(o)] for o in order if isinstance(o, ops.SyncOp)]
    for b in buffers:
        for old in buffers:
            if old is b or old.end >= b.start:
                continue
            if old.offset + old.size <= b.offset or b.offset + b.size <= old.offset:
                continue
            if not b.alloc.result.uses:
                continue
            first = min((u for u in b.alloc.result.uses), key=lambda u: index[id(u)])
            old_end = index[id(spanned[old.end])]          # where old's last use is now
            if any(old_end < s < index[id(first)] for s in sync_positions):
                continue
            sync = ops.SyncOp([], [], {"reuse": True}, loc=first.loc)
            blk = first.parent
            blk.insert(blk.ops.index(first), sync)
            order, index = _numbered(kernel)
            sync_positions = [index[id(o)] for o in order if isinstance(o, ops.SyncOp)]


def _check_pipelined_lds(buffers: list[Buffer], total: int, lds_limit: int, target_name: str) -> None:
    """Over the limit with the stage buffers of a pipelined loop: say so at the loop."""
    from tiledsl.ir.passes.pipeline import pipelined_loop
    for b in buffers:
        loop = pipelined_loop(b.alloc)
        if loop is None:
            continue
        stages = loop.attrs["pipelined"]
        staged = sorted({x.name.rsplit("_stage", 1)[0] for x in buffers if pipelined_loop(x.alloc) is loop})
        raise TdslError(loop.loc, f"the kernel needs {total} bytes of LDS but {target_name} has {lds_limit}: "
                                  f"this loop is pipelined with {stages} buffers of {', '.join(staged)}",
                        ["use fewer stages (the count after 'pipeline') or smaller tiles",
                         ", ".join(f"{x.name} {x.size} B" for x in buffers)])
