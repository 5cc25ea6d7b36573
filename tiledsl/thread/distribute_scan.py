"""Distribution of a scan (``cumsum``) in a blocked layout, following ``scan.scan_plan``.

f16/bf16 tiles are scanned in f32 and rounded once at the end (as the interpreters accumulate);
empty slots count as 0. The steps (see ``tiledsl.thread.scan``): ``reg_scan`` inside each run of a
thread's registers; the lane butterfly, ``shuffle_xor`` of the lane group's running total, added to
the prefix of the lanes whose bit is set; the wave step through an LDS scratch ``[line x rep,
wave]`` of each wave's totals, written by the line's first lane; the earlier repetitions' totals.
Each run's offset is then added to its registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value
from tiledsl.ir.types import RegsType
from tiledsl.thread import ops as tops
from tiledsl.thread.scan import ScanPlan, accumulator, scan_plan

if TYPE_CHECKING:
    from tiledsl.layout import Layout
    from tiledsl.thread.distribute import Distributor

def scan(d: Distributor, op: ops.ScanOp) -> None:
    x = op.operands[0]
    dtype, axis = x.type.dtype, op.attrs["axis"]
    layout = d.layout(x)
    plan = scan_plan(layout, axis)
    if plan is None or (plan.waves > 1) != (len(op.operands) == 2) or op.result.type.layout != x.type.layout:
        raise RuntimeError(f"internal: {op.loc}: layout assignment left a scan that its layouts cannot do "
                           f"({layout} along axis {axis})")
    acc = accumulator(dtype)
    n, k = layout.regs, len(plan.runs)
    v = d.get(x)
    if acc != dtype:
        v = d.emit(ops.CastOp([v], [RegsType(acc, n)], loc=op.loc)).result
    keep = d.valid(layout, dtype)
    v = d.emit(ops.SelectOp([keep, v, d.splat_const(0, acc, n)], [v.type], loc=op.loc)).result
    v = d.emit(tops.RegScanOp([v], [v.type], {"kind": op.kind, "runs": plan.runs}, loc=op.loc)).result
    combine = ops.BINARY_OPS[op.combine]
    total = d.gather(v, [run[-1] for run in plan.runs], op)        # each run's total: regs<acc, k>
    zero = d.splat_const(0, acc, k)
    tid = d.emit(tops.ThreadIdOp([], [RegsType("i32", 1)], loc=op.loc)).result
    offset = zero
    for mask in plan.lane_masks:
        other = d.emit(tops.ShuffleXorOp([total], [total.type], {"mask": mask}, loc=op.loc)).result
        above = _bit(d, tid, mask, op, k)                          # the partner's lanes come first
        offset = d.emit(combine([offset, d.emit(ops.SelectOp([above, other, zero], [total.type])).result],
                                [total.type], loc=op.loc)).result
        total = d.emit(combine([total, other], [total.type], loc=op.loc)).result
    first = [run[0] for run in plan.runs]
    start = d.gather(d.coord(layout, axis, dtype), first, op)     # each run's first position
    valid = d.gather(keep, first, op)
    if plan.waves > 1:
        offset = _across_waves(d, op, plan, layout, total, offset, start, valid, tid)
    elif plan.reps > 1:
        # One wave holds the whole line: the repetitions' totals are in this thread already.
        rep = d.binop("floordiv", start, d.splat_const(len(plan.runs[0]) * plan.lanes, "i32", k))
        for back in range(1, plan.reps):
            earlier = d.gather(total, [_run_of(plan, j, r - back) if r >= back else j
                                       for j, r in enumerate(plan.run_rep)], op)
            has = d.binop("ge", rep, d.splat_const(back, "i32", k))
            add = d.emit(ops.SelectOp([has, earlier, zero], [total.type])).result
            offset = d.emit(combine([offset, add], [total.type], loc=op.loc)).result
    run_of_reg = [0] * n
    for j, run in enumerate(plan.runs):
        for r in run:
            run_of_reg[r] = j
    v = d.emit(combine([v, d.gather(offset, run_of_reg, op)], [v.type], loc=op.loc)).result
    if acc != dtype:
        v = d.emit(ops.CastOp([v], [RegsType(dtype, n)], loc=op.loc)).result
    d.env[id(op.result)] = v


def _run_of(plan: ScanPlan, run: int, rep: int) -> int:
    """The run on ``run``'s line at repetition ``rep``."""
    return next(j for j, (line, r) in enumerate(zip(plan.run_line, plan.run_rep))
                if line == plan.run_line[run] and r == rep)


def _bit(d: Distributor, tid: Value, unit: int, op: Op, n: int) -> Value:
    """``regs<i1, n>``: whether bit ``unit`` of the thread id is set (the same in every register)."""
    q = d.binop("mod", d.binop("floordiv", tid, d.splat_const(unit, "i32", 1)), d.splat_const(2, "i32", 1))
    return d.gather(d.binop("eq", q, d.splat_const(1, "i32", 1)), [0] * n, op)


def _across_waves(d: Distributor, op: Op, plan: ScanPlan, layout: Layout, total: Value, offset: Value,
                  start: Value, valid: Value, tid: Value) -> Value:
    """Each wave's total of each (line, repetition) goes to the scratch at [line * R + rep, wave],
    written by the line's first lane; a run then adds the totals of the waves before its own in its
    repetition, and of every wave in the earlier repetitions."""
    k = len(plan.runs)
    acc = total.type.dtype
    axis = plan.axis
    placed = d.get(op.operands[1])
    row_stride, wave_stride = placed.storage.strides
    # The line each run lies on, as a linear index over the other dims.
    line = d.splat_const(0, "i32", k)
    for dim in range(len(layout.shape)):
        if dim == axis:
            continue
        c = d.gather(d.coord(layout, dim, layout.dtype), [run[0] for run in plan.runs], op)
        line = d.binop("add", d.binop("mul", line, d.splat_const(layout.shape[dim], "i32", k)), c)
    span = len(plan.runs[0]) * plan.lanes * plan.waves
    rep = d.binop("floordiv", start, d.splat_const(span, "i32", k))
    ws = d.ctx.target.wave_size
    wave = d.binop("mod", d.binop("floordiv", tid, d.splat_const(ws * plan.wave_stride, "i32", 1)),
                   d.splat_const(plan.waves, "i32", 1))
    wave_k = d.gather(wave, [0] * k, op)
    lane = d.binop("mod", d.binop("floordiv", tid, d.splat_const(plan.lane_stride, "i32", 1)),
                   d.splat_const(plan.lanes, "i32", 1))
    first_lane = d.gather(d.binop("eq", lane, d.splat_const(0, "i32", 1)), [0] * k, op)
    row = d.binop("mul", d.binop("add", d.binop("mul", line, d.splat_const(plan.reps, "i32", k)), rep),
                  d.splat_const(row_stride, "i32", k))
    base = d.binop("add", row, d.splat_const(placed.base, "i32", k))
    own = d.binop("add", base, d.binop("mul", wave_k, d.splat_const(wave_stride, "i32", k)))
    d.emit(tops.LdsStoreOp([own, d.binop("and", valid, first_lane), total], [], {"vec": 1}, loc=op.loc))
    d.emit(tops.BarrierOp([], [], loc=op.loc))
    combine = ops.BINARY_OPS[op.combine]
    for back in range(plan.reps):
        # Repetition rep - back of the same line: every wave of it (back > 0), or the waves before ours.
        earlier = d.binop("ge", rep, d.splat_const(back, "i32", k))
        rows_back = d.splat_const(-back * row_stride, "i32", k)
        for w in range(plan.waves):
            before = earlier if back else d.binop("lt", d.splat_const(w, "i32", k), wave_k)
            at = d.binop("add", d.binop("add", base, rows_back), d.splat_const(w * wave_stride, "i32", k))
            part = d.emit(tops.LdsLoadOp([at, d.binop("and", valid, before)], [RegsType(acc, k)],
                                         {"vec": 1, "pad": 0}, loc=op.loc)).result
            offset = d.emit(combine([offset, part], [offset.type], loc=op.loc)).result
    d.emit(tops.BarrierOp([], [], loc=op.loc))
    return offset
