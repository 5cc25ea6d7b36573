"""split-tail and pipeline with bounds known only at run time: loops from ``Off[g]`` to
``Off[g + 1]``, slices cut with ``until`` a loaded bound, gathers. The split stays bit-identical to
the unsplit loop, claims ``inbounds`` only where the bound is the same in every iteration (and
then splits at it too), never for a gathered dim; pipelining a loop with loaded bounds gives the
loop's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.stages import DEFAULT_TILE_PASSES

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
UNSPLIT = tuple(p for p in DEFAULT_TILE_PASSES if p != "split-tail")


def loops(kernel: ops.KernelOp) -> list[ops.ForOp]:
    return [op for op in kernel.walk() if isinstance(op, ops.ForOp)]


def run_block(prog: tiledsl.Program, passes: tuple[str, ...], kernel: ops.KernelOp | None = None,
              **args: np.ndarray) -> tuple[dict[str, np.ndarray], Report]:
    p, tensors, scalars, dims = prog.prepare_arguments(args)
    report = Report(level="block")
    BlockInterpreter(kernel or p.lowered(passes), tensors, scalars, dims, report).run()
    return {k: t.data.copy() for k, t in tensors.items()}, report


# The first Len[g] rows of X, summed by column, in tiles cut at Len[g] (which may pass R).
PREFIX = """
kernel prefix(X: f32[R, C], Len: i32[G], out Y: f32[G, C])
  param BR = 16, BC = 40
  grid (G, cdiv(C, BC)) as (g, c)
  block 2 waves
{
  hi = Len[g]
  acc = fill(0, f32[BC])
  for r in 0 .. hi step BR {
    acc = acc + colsum(X[r : +BR until hi, c*BC : +BC])
  }
  Y[g, c*BC : +BC] <- acc
}
"""


def test_a_loop_invariant_bound_is_split_at_and_claimed_in_full_tiles() -> None:
    kernel = tiledsl.load(PREFIX).lowered()
    full, tail = loops(kernel)
    (fast,) = [op for op in full.walk() if isinstance(op, ops.LoadOp) and op.attrs.get("bounded")]
    (slow,) = [op for op in tail.walk() if isinstance(op, ops.LoadOp) and op.attrs.get("bounded")]
    assert fast.attrs["inbounds"] == [0] and "inbounds" not in slow.attrs
    # The full tiles end at min(R, Len[g]) (rounded down to the grid of the loop).
    mins = [{v.owner.name for v in op.operands} for op in kernel.body.ops if op.name == "min"]
    assert {"dim", "load"} in mins, mins


@settings(max_examples=25, deadline=None)
@given(lens=st.lists(st.integers(0, 80), min_size=1, max_size=5), r=st.integers(1, 60))
def test_a_split_at_a_loaded_bound_is_bit_identical_to_the_unsplit_loop(lens: list[int], r: int) -> None:
    prog = tiledsl.load(PREFIX)
    rng = np.random.default_rng(r)
    args = {"X": rng.standard_normal((r, 45)).astype(np.float32), "Len": np.array(lens, np.int32)}
    split, r1 = run_block(prog, DEFAULT_TILE_PASSES, Y=np.zeros((len(lens), 45), np.float32), **args)
    plain, r2 = run_block(prog, UNSPLIT, Y=np.zeros((len(lens), 45), np.float32), **args)
    assert r1.ok and r2.ok, (r1, r2)
    np.testing.assert_array_equal(split["Y"], plain["Y"])
    want = np.stack([args["X"][:n].astype(np.float64).sum(0) for n in lens])
    np.testing.assert_allclose(split["Y"], want, rtol=1e-5, atol=1e-5)


def test_a_false_claim_about_a_bound_is_an_out_of_bounds_error() -> None:
    """Claiming the tail's rows inside 'until hi' is wrong where hi < R: the block interpreter checks
    the bound too, not only the tensor's size."""
    prog = tiledsl.load(PREFIX)
    kernel = prog.lower()[0]
    tail = loops(kernel)[1]
    load = next(op for op in tail.walk() if isinstance(op, ops.LoadOp) and op.attrs.get("bounded"))
    load.attrs["inbounds"] = [0]
    args = {"X": np.ones((40, 45), np.float32), "Len": np.array([20], np.int32), "Y": np.zeros((1, 45), np.float32)}
    _, report = run_block(prog, DEFAULT_TILE_PASSES, kernel, **args)
    assert not report.ok and any(e.kind == "out-of-bounds" for e in report.errors), report


# Rows Off[g] .. Off[g+1], masked with a compare: the split is at lo + k·BR, from loaded values.
SEGMENT_MASK = """
kernel segment_mask(X: f32[R, C], Off: i32[G1], Lim: i32[NL], out Y: f32[G, C])
  param BR = 8, BC = 16
  grid (G1 - 1, cdiv(C, BC)) as (g, c)
  block 1 waves
{
  lo = Off[g]
  hi = Off[g + 1]
  acc = fill(0, f32[BC])
  for r in lo .. hi step BR {
    x = X[r : +BR, c*BC : +BC]
    acc = acc + colsum(where((r + iota(BR))[:, _] < hi, x, 0.0))
    lim = Lim[r // BR]
    acc = acc + colsum(X[r : +BR until lim, c*BC : +BC])
    rows = r + iota(BR)
    acc = acc + colsum(X[rows until hi, c*BC : +BC])
  }
  Y[g, c*BC : +BC] <- acc
}
"""


def test_loaded_loop_bounds_split_but_loop_variant_bounds_and_gathers_are_never_claimed() -> None:
    kernel = tiledsl.load(SEGMENT_MASK).lowered()
    full, tail = loops(kernel)
    assert full.operands[0].owner.name == "load"                          # from Off[g]
    assert "select" not in [op.name for op in full.walk()] and "select" in [op.name for op in tail.walk()]
    for loop in (full, tail):
        for op in loop.walk():
            if isinstance(op, ops.LoadOp) and (op.attrs.get("bounded") or op.attrs.get("gather")):
                assert "inbounds" not in op.attrs, op.attrs


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=5), seed=st.integers(0, 9))
def test_a_split_between_loaded_bounds_is_bit_identical(sizes: list[int], seed: int) -> None:
    prog = tiledsl.load(SEGMENT_MASK)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    rng = np.random.default_rng(seed)
    r = int(off[-1]) + 3
    args = {"X": rng.standard_normal((r, 20)).astype(np.float32), "Off": off,
            "Lim": rng.integers(0, r + 4, r // 8 + 1).astype(np.int32)}
    split, r1 = run_block(prog, DEFAULT_TILE_PASSES, Y=np.zeros((len(sizes), 20), np.float32), **args)
    plain, r2 = run_block(prog, UNSPLIT, Y=np.zeros((len(sizes), 20), np.float32), **args)
    assert r1.ok and r2.ok, (r1, r2)
    np.testing.assert_array_equal(split["Y"], plain["Y"])


@settings(max_examples=10, deadline=None)
@given(lens=st.lists(st.integers(0, 90), min_size=1, max_size=4).filter(any), causal=st.integers(0, 1),
       stages=st.sampled_from([2, 3]))
def test_pipelining_a_loop_between_loaded_bounds_keeps_its_results(lens: list[int], causal: int, stages: int) -> None:
    """varlen attention's key loop runs from Cu[b] to Cu[b+1] (or the causal end): split, then
    pipelined (copies issued ahead into STAGES buffers, a guarded prologue), it computes what the
    plain loop does, bit for bit."""
    prog = tiledsl.load(KERNELS / "varlen_attention.tdsl",
                        params={"D": 16, "BM": 32, "BN": 16, "WAVES": 2, "CAUSAL": causal, "STAGES": stages})
    cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    rng = np.random.default_rng(len(lens))
    q, k, v = (rng.standard_normal((int(cu[-1]), 2, 16)).astype(np.float16) for _ in range(3))
    args = {"Q": q, "K": k, "V": v, "Cu": cu, "scale": 0.25, "max_seqlen": max(lens)}
    piped = DEFAULT_TILE_PASSES + ("pipeline",)
    assert any("pipelined" in op.attrs for op in prog.lowered(piped).walk() if isinstance(op, ops.ForOp))
    a, r1 = run_block(prog, piped, O=np.zeros_like(q), **args)
    b, r2 = run_block(prog, UNSPLIT, O=np.zeros_like(q), **args)
    assert r1.ok and r2.ok, (r1, r2)
    np.testing.assert_array_equal(a["O"], b["O"])
