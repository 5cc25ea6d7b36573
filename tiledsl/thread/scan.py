"""How a scan (``cumsum``) runs in a blocked layout: registers, then lanes, then waves.

Along the scanned axis ``a`` a blocked layout (``tiledsl.layout.blocked``) puts the element at
``p = ((rep * W + w) * L + l) * s + j``: ``s`` contiguous elements in one thread's registers (a
*run*), then ``L`` lanes, then ``W`` waves, the pattern repeated ``R`` times. A line's runs are
ordered by ``u = (rep * W + w) * L + l``, so the inclusive scan of element ``p`` is

    in-thread scan of its run  +  totals of the runs before it in its lane group (lanes l' < l)
    +  totals of the waves before it (w' < w)  +  totals of the earlier repetitions (rep' < rep).

1. registers: an inclusive scan inside each run (``reg_scan``);
2. lanes: the xor butterfly of the reductions (``shuffle_xor`` by the lane masks of the axis), each
   lane adding the partner's group total to its prefix where its lane bit is set: after
   ``log2 L`` steps every lane holds the sum of the runs below it and the total of the wave's part;
3. waves, where ``W > 1``: each wave writes its part's total to LDS, every thread adds those of the
   waves before its own (and, for earlier repetitions, of all waves);
4. repetitions: a thread holds every repetition of its lines, so it adds the earlier repetitions'
   totals itself.

Empty slots (a line not a whole number of runs) count as 0. Any width, any wave count, any blocked
``spt``/``order``/``waves``; other layouts are converted to a blocked one first (layout assignment).
The plan is checked against the layout's index map, as ``reduction.reduce_plan`` checks its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tiledsl.layout import BlockedSpec, Layout
from tiledsl.layout.blocked import resolve_blocked

#: The dtype a scan of each dtype accumulates in (others: their own).
ACCUMULATOR = {"f16": "f32", "bf16": "f32"}


def accumulator(dtype: str) -> str:
    return ACCUMULATOR.get(dtype, dtype)


def scan_lines(shape: tuple[int, ...], axis: int, plan: ScanPlan) -> int:
    """Rows of a scan's LDS scratch: one per line of the tile and repetition along the axis."""
    return math.prod(shape[:axis] + shape[axis + 1:]) * plan.reps


@dataclass(frozen=True)
class ScanPlan:
    """``runs[k]``: the registers of run k in line order (the same in every thread); ``run_rep[k]`` its
    repetition along the axis and ``run_line[k]`` the thread's line it lies on (runs on one line
    differ only in their repetition); ``lanes``/``lane_stride``: L lanes along the axis, whose lane ids
    are ``lane_stride`` apart; ``waves``/``wave_stride`` likewise for waves; ``reps``: R."""

    axis: int
    runs: list[list[int]]
    run_rep: list[int]
    run_line: list[int]
    lanes: int
    lane_stride: int
    waves: int
    wave_stride: int
    reps: int

    @property
    def lane_masks(self) -> list[int]:
        """The xor masks (lane ids) of the butterfly over the lanes of a line, smallest first."""
        return [self.lane_stride << b for b in range(int(math.log2(self.lanes)))]


def _stride(counts: tuple[int, ...], order: tuple[int, ...], dim: int) -> int:
    """The step of the linear (lane or wave) id between neighbours along ``dim`` (``order[0]``
    varies fastest)."""
    stride = 1
    for d in order:
        if d == dim:
            return stride
        stride *= counts[d]
    raise ValueError(f"dim {dim} not in order {order}")


def scan_plan(layout: Layout, axis: int) -> ScanPlan | None:
    """The plan that scans ``layout`` along ``axis``, or None when it is not a blocked layout."""
    spec = layout.spec
    if not isinstance(spec, BlockedSpec):
        return None
    shape, rank = layout.shape, len(layout.shape)
    spt, lanes, waves, order = resolve_blocked(spec, shape, layout.num_waves, layout.wave_size, layout.dtype)
    reps = [math.ceil(shape[d] / (spt[d] * lanes[d] * waves[d])) for d in range(rank)]
    if lanes[axis] & (lanes[axis] - 1):
        return None     # the butterfly needs a power of two (lanes are shared out in divisors of the wave)
    # Registers run over the repetitions, then the spt elements, slowest dim first (blocked_index_map).
    slow_first = tuple(reversed(order))
    radices = [reps[d] for d in slow_first] + [spt[d] for d in slow_first]
    digits = np.stack(np.unravel_index(np.arange(layout.regs), radices), axis=-1)   # [regs, 2 * rank]
    at_rep, at_elem = slow_first.index(axis), rank + slow_first.index(axis)
    rep_a, elem_a = digits[:, at_rep], digits[:, at_elem]
    _, line_of = np.unique(np.delete(digits, [at_rep, at_elem], axis=1), axis=0, return_inverse=True)
    runs, run_rep, run_line = [], [], []
    for line in range(int(line_of.max()) + 1):
        for rep in range(reps[axis]):
            regs = np.nonzero((line_of.reshape(-1) == line) & (rep_a == rep))[0]
            runs.append([int(r) for r in regs[np.argsort(elem_a[regs])]])
            run_rep.append(rep)
            run_line.append(line)
    plan = ScanPlan(axis, runs, run_rep, run_line, lanes[axis], _stride(lanes, order, axis), waves[axis],
                    _stride(waves, order, axis), reps[axis])
    _check(plan, layout, spt[axis])
    return plan


def _check(plan: ScanPlan, layout: Layout, s: int) -> None:
    """The plan's formula for each slot's position along the axis, against the index map."""
    m = layout.index_map()                                   # [waves, lanes, regs, rank]
    wave = np.arange(layout.num_waves)[:, None, None]
    lane = np.arange(layout.wave_size)[None, :, None]
    w = (wave // plan.wave_stride) % plan.waves
    ln = (lane // plan.lane_stride) % plan.lanes
    want = np.zeros(m.shape[:3], np.int64)
    for run, rep in zip(plan.runs, plan.run_rep):
        for j, r in enumerate(run):
            want[..., r] = (((rep * plan.waves + w) * plan.lanes + ln) * s + j)[..., 0]
    valid = m[..., 0] >= 0
    if len(plan.runs[0]) != s or not (m[..., plan.axis][valid] == want[valid]).all():
        raise RuntimeError(f"internal: the scan plan of {layout} does not match its index map")
