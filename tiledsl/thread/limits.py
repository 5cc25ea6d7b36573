"""The target's resource limits, checked before the thread level does any work.

    check_limits(kernel, target)

runs on the tile IR the thread level starts from, before pipelining, layout assignment or
LDS allocation, and refuses — with a located error and what to change — a kernel that cannot
fit the target however those passes go:

- the block: a whole number of the target's waves, at most ``max_threads_per_block`` threads
  (reported at the ``block`` declaration);
- each LDS tile: at most the target's LDS (at its ``lds`` declaration);
- each register tile: its elements spread evenly over the block's threads need no more 32-bit
  registers than a thread holds (``max_registers_per_thread``). That is a lower bound (a layout
  may replicate, and other tiles are live beside it), so what passes here may still spill; what
  fails here cannot be compiled by any layout;
- each pipelined loop, on a target where ``pipeline`` takes effect (asynchronous copies): S
  buffers of each pipelined tile plus the LDS tiles live across the loop fit the target's LDS
  (at the loop). Again a lower bound: LDS allocation checks the exact figure later.

Without these, such kernels ran layout assignment on blocks no layout fits (a hang), or
cloned the loop body S times and laid out every copy (minutes) before LDS allocation said no.
Target-independent limits (the largest block or tile any target allows) are sema's:
``tiledsl.frontend.limits``.
"""

from __future__ import annotations

from tiledsl.diagnostics import Loc, TdslError
from tiledsl.frontend.limits import smaller_tile_note
from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value
from tiledsl.ir.passes.pipeline import Plan
from tiledsl.ir.types import DTYPE_BYTES, LdsType, TileType, is_static_shape, num_elements
from tiledsl.targets import Target


def check_limits(kernel: ops.KernelOp, target: Target) -> None:
    """Raise a located ``TdslError`` for the first limit of ``target`` that ``kernel`` exceeds."""
    threads = block_threads(kernel, target)
    _check_lds_tiles(kernel, target)
    _check_registers(kernel, target, threads)
    if target.has_async_copy:
        for loop in kernel.walk():
            if isinstance(loop, ops.ForOp) and loop.attrs.get("pipeline", 1) > 1:
                _check_pipelined_lds(kernel, loop, target)


def block_threads(kernel: ops.KernelOp, target: Target) -> int:
    """The threads of the kernel's block on ``target``; a located error when they do not fit it."""
    size, unit = int(kernel.attrs["block"]), kernel.attrs["block_unit"]
    loc: Loc | None = kernel.attrs.get("block_loc", kernel.loc)
    wave = target.wave_size
    threads = size * wave if unit == "waves" else size
    if unit == "threads" and size % wave:
        raise TdslError(loc, f"a block of {size} threads is not a whole number of {wave}-lane waves on "
                             f"{target.name}", [f"use a multiple of {wave} threads, or give the block in waves"])
    if threads > target.max_threads_per_block:
        shown = f"{size} waves is {threads} threads on {target.name} ({wave}-lane waves)" if unit == "waves" \
            else f"{size} threads is too many on {target.name}"
        raise TdslError(loc, f"a block of {shown}; a block has at most {target.max_threads_per_block} threads "
                             f"there",
                        [f"use at most {target.max_threads_per_block // wave} waves on {target.name}"])
    return threads


def _check_lds_tiles(kernel: ops.KernelOp, target: Target) -> None:
    for op in kernel.walk():
        if isinstance(op, ops.LdsAllocOp) and is_static_shape(op.result.type.shape):
            t = op.result.type
            nbytes = num_elements(t.shape) * DTYPE_BYTES[t.dtype]
            if nbytes > target.lds_bytes:
                raise TdslError(op.loc, f"LDS tile '{op.result.hint or t}' takes {nbytes} bytes but {target.name} "
                                        f"has {target.lds_bytes} bytes of LDS",
                                smaller_tile_note(t.shape, kernel.attrs.get("params", {})))


def _held_in_registers(v: Value) -> bool:
    """Whether a register tile is ever whole in registers: a read of LDS that feeds a matrix
    instruction may be loaded k-step by k-step (or not at all, with wgmma), so it is not."""
    owner = v.owner
    if isinstance(owner, ops.TransposeOp):
        owner = owner.operands[0].owner
    return not isinstance(owner, ops.LdsReadOp)


def _check_registers(kernel: ops.KernelOp, target: Target, threads: int) -> None:
    limit = target.max_registers_per_thread
    for op in kernel.walk():
        for r in op.results:
            t = r.type
            if not isinstance(t, TileType) or not t.shape or not is_static_shape(t.shape):
                continue
            nbytes = num_elements(t.shape) * DTYPE_BYTES[t.dtype]
            regs = -(-nbytes // (4 * threads))
            if regs > limit and _held_in_registers(r):
                more = f", or more waves (now {threads // target.wave_size})"
                raise TdslError(op.loc, f"this {t.without_layout()} tile needs at least {regs} 32-bit registers in each of the "
                                        f"{threads} threads of the block on {target.name}, which hold at most "
                                        f"{limit}",
                                smaller_tile_note(t.shape, kernel.attrs.get("params", {}), more))


def _inside(op: Op, loop: Op) -> bool:
    cur: Op | None = op
    while cur is not None:
        if cur is loop:
            return True
        cur = cur.parent.parent if cur.parent is not None else None
    return False


def _check_pipelined_lds(kernel: ops.KernelOp, loop: ops.ForOp, target: Target) -> None:
    """S buffers of each pipelined tile and every LDS tile live across the loop fit the LDS."""
    stages = int(loop.attrs["pipeline"])
    staged = Plan.of(loop).buffers
    order = {id(op): i for i, op in enumerate(kernel.walk())}
    first, last = order[id(loop)], max(order[id(op)] for op in loop.walk())
    per_stage = sum(v.type.nbytes for v in staged)
    others: list[Value] = []
    for op in kernel.walk():
        v = op.results[0] if isinstance(op, ops.LdsAllocOp) else None
        if v is None or any(v is s for s in staged) or not isinstance(v.type, LdsType):
            continue
        at = [order[id(u)] for u in v.uses]
        if any(_inside(u, loop) for u in v.uses) or (any(i < first for i in at) and any(i > last for i in at)):
            others.append(v)
    rest = sum(v.type.nbytes for v in others)
    need = stages * per_stage + rest
    if need <= target.lds_bytes:
        return
    parts = " and ".join(f"{v.hint or v.type} {v.type.nbytes} B" for v in staged)
    what = f"{stages} buffers of {parts}" + (
        f", and {', '.join(f'{v.hint or v.type} {v.type.nbytes} B' for v in others)}" if others else "")
    fit = (target.lds_bytes - rest) // per_stage
    note = f"at most {fit} stages fit with these tiles on {target.name}" if fit >= 2 else \
        f"not even 2 stages fit with these tiles on {target.name}: use smaller tiles"
    raise TdslError(loop.loc, f"this loop, pipelined with {stages} stages, needs at least {need} bytes of LDS "
                              f"({what}) but {target.name} has {target.lds_bytes}",
                    [note, "use fewer stages (the count after 'pipeline') or smaller tiles"])
