"""Distribution of ``reduce_argmax``/``reduce_argmin``: a reduction of (value, index) pairs.

It follows the reduction's plan (``reduction.reduce_plan``) step by step, as ``reduce_sum`` does,
with pairs where a sum has one value: each register's index is its coordinate along the axis;
``reg_argreduce`` combines the registers of a line in each thread, an xor butterfly exchanges both
halves of the pair (two ``shuffle_xor``) and ``arg_combine`` keeps the better pair, and where the
axis spans several waves each wave writes its pair to two LDS scratch tiles (values, indices) that
every thread combines. Slots that must not count hold the identity pair: a NaN (an i32 extreme for
i32 values) with the largest index, which every real pair beats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value
from tiledsl.ir.types import RegsType, scalar
from tiledsl.layout import Layout
from tiledsl.thread import ops as tops
from tiledsl.thread.reduction import reduce_plan, result_layout

if TYPE_CHECKING:
    from tiledsl.thread.distribute import Distributor

INDEX_IDENTITY = 2**31 - 1
_EXTREME = {"argmax": "max", "argmin": "min"}    # the reduction whose identity stands for no value


def arg_reduce(d: Distributor, op: ops.ArgReduceOp) -> None:
    from tiledsl.thread.distribute import identity
    kind, axis = op.kind, op.attrs["axis"]
    x = op.operands[0]
    dtype = x.type.dtype
    src, dst = d.layout(x), result_layout(d.ctx, op.results[0])
    plan = reduce_plan(src, dst, axis)
    if plan is None or plan.across_waves != (len(op.operands) == 3):
        raise RuntimeError(f"internal: {op.loc}: layout assignment left an arg-reduction that its layouts "
                           f"cannot do ({src} to {dst})")
    values, indices = d.get(x), d.coord(src, axis, dtype)
    if plan.identity_mask:
        keep = d.valid(src, dtype, "block" if plan.first_holders else None)
        fill_v = d.splat_const(identity(_EXTREME[kind], dtype), dtype, src.regs)
        fill_i = d.splat_const(INDEX_IDENTITY, "i32", src.regs)
        values = d.emit(ops.SelectOp([keep, values, fill_v], [values.type])).result
        indices = d.emit(ops.SelectOp([keep, indices, fill_i], [indices.type])).result
    pair_types = [RegsType(dtype, dst.regs), RegsType("i32", dst.regs)]
    v, i = d.emit(tops.RegArgReduceOp([values, indices], pair_types, {"kind": kind, "groups": plan.groups},
                                      loc=op.loc)).results
    for mask in plan.masks:
        v2, i2 = (d.emit(tops.ShuffleXorOp([a], [a.type], {"mask": mask}, loc=op.loc)).result for a in (v, i))
        v, i = combine(d, kind, v, i, v2, i2)
    if plan.across_waves:
        v, i = _across_waves(d, op, v, i, dst)
    if not dst.shape:
        v, i = (d.emit(tops.UniformOp([a], [scalar(a.type.dtype)], loc=op.loc)).result for a in (v, i))
    d.env[id(op.results[0])], d.env[id(op.results[1])] = v, i


def combine(d: Distributor, kind: str, v1: Value, i1: Value, v2: Value, i2: Value) -> tuple[Value, Value]:
    op = d.emit(tops.ArgCombineOp([v1, i1, v2, i2], [v1.type, i1.type], {"kind": kind}))
    return op.results[0], op.results[1]


def _across_waves(d: Distributor, op: Op, v: Value, i: Value, dst: Layout) -> tuple[Value, Value]:
    """Each wave writes its pair per output element to the scratch tiles (``[element, wave]``, as a
    reduction's), then every thread combines the pairs of the waves that hold its elements."""
    from tiledsl.thread.distribute import _layout_attrs, identity
    kind, dtype, n = op.kind, v.type.dtype, dst.regs
    scratch = [d.get(s) for s in op.operands[1:]]
    lin = d.linear_coord(dst, dtype)
    tid = d.emit(tops.ThreadIdOp([], [RegsType("i32", 1)], loc=op.loc)).result
    wave = d.gather(d.binop("floordiv", tid, d.splat_const(d.ctx.target.wave_size, "i32", 1)), [0] * n, op)
    writer = d.valid(dst, dtype, owner="wave")

    def offsets(placed: object, w: Value | int) -> Value:
        elem_stride, wave_stride = placed.storage.strides
        col = d.binop("mul", lin, d.splat_const(elem_stride, "i32", n))
        row = d.splat_const(w * wave_stride, "i32", n) if isinstance(w, int) else \
            d.binop("mul", w, d.splat_const(wave_stride, "i32", n))
        return d.binop("add", d.splat_const(placed.base, "i32", n), d.binop("add", col, row))

    for placed, value in zip(scratch, (v, i)):
        d.emit(tops.LdsStoreOp([offsets(placed, wave), writer, value], [], {"vec": 1}, loc=op.loc))
    d.emit(tops.BarrierOp([], [], loc=op.loc))
    acc_v = d.splat_const(identity(_EXTREME[kind], dtype), dtype, n)
    acc_i = d.splat_const(INDEX_IDENTITY, "i32", n)
    for w in range(d.ctx.num_waves):
        held = d.hoist(("held", str(dst.spec), dst.shape, w), lambda w=w: tops.HeldByWaveOp(
            [], [RegsType("i1", n)], {**_layout_attrs(dst, dtype), "wave": w}))
        part_v, part_i = (d.emit(tops.LdsLoadOp([offsets(placed, w), held], [RegsType(t, n)],
                                                {"vec": 1, "pad": pad}, loc=op.loc)).result
                          for placed, t, pad in ((scratch[0], dtype, identity(_EXTREME[kind], dtype)),
                                                 (scratch[1], "i32", INDEX_IDENTITY)))
        acc_v, acc_i = combine(d, kind, acc_v, acc_i, part_v, part_i)
    d.emit(tops.BarrierOp([], [], loc=op.loc))
    return acc_v, acc_i
