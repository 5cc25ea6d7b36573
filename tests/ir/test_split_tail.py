"""split-tail: a loop masked against a bound becomes a loop over full tiles without the masks and a
loop over the rest; results are bit-identical to the unsplit loop, and the ``inbounds`` claims it
leaves on global slices are checked by the block interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.stages import DEFAULT_TILE_PASSES as DEFAULT_PIPELINE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNSPLIT = tuple(p for p in DEFAULT_PIPELINE if p != "split-tail")


def loops(kernel: ops.KernelOp) -> list[ops.ForOp]:
    return [op for op in kernel.walk() if isinstance(op, ops.ForOp)]


def test_attention_loop_is_split_and_full_tiles_have_no_masks() -> None:
    kernel = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64}).lowered()
    full, tail = loops(kernel)
    assert (full.attrs["split"], tail.attrs["split"]) == ("full", "tail")
    assert tail.operands[0] is full.operands[1]                       # the tail starts where full tiles end
    assert tail.operands[3:] == full.results                          # and carries on from their values
    full_ops = [op.name for op in full.walk()]
    tail_ops = [op.name for op in tail.walk()]
    assert "select" not in full_ops and "select" in tail_ops          # where(cols < N, s, -inf)
    copies = [op for op in full.walk() if isinstance(op, ops.CopyOp)]
    assert [c.attrs.get("inbounds") for c in copies] == [[2], [2]]    # K, V rows n : +BN
    assert all("inbounds" not in op.attrs for op in tail.walk() if isinstance(op, ops.CopyOp))


SHIFTED = """
kernel shifted(X: f32[N], out Y: f32[64])
  param SHIFT = 0
  grid (1) as (b)
  block 1 waves
{
  acc = fill(0, f32[64])
  for n in 0 .. N step 64 {
    x = X[n : +64]
    cols = n + iota(64) + SHIFT
    acc = acc + where(cols < N, x, 0)
  }
  Y[0 : +64] <- acc
}
"""


def test_a_compare_that_reaches_past_the_tile_moves_the_split() -> None:
    """n + iota(64) + 1 < N holds in full tiles only while n + 64 <= N - 1: the split moves one
    element down, the full-tile loop still has no mask, and the results are right when N is a
    multiple of the tile (the last tile then runs masked)."""
    for shift in (0, 1):
        kernel = tiledsl.load(SHIFTED, params={"SHIFT": shift}).lowered()
        full, tail = loops(kernel)
        assert "select" not in [op.name for op in full.walk()]
        assert "select" in [op.name for op in tail.walk()]
        assert [op.attrs.get("inbounds") for op in full.walk() if isinstance(op, ops.LoadOp)] == [[0]]
        for n in (128, 150):
            x = np.arange(n, dtype=np.float32)
            y = np.zeros(64, np.float32)
            assert tiledsl.load(SHIFTED, params={"SHIFT": shift}).interpret(X=x, Y=y).ok
            cols = np.arange(192) + shift
            want = np.where(cols < n, np.pad(x, (0, 192 - n)), 0).reshape(3, 64).sum(0)
            np.testing.assert_allclose(y, want)


def test_the_causal_mask_is_dropped_below_the_diagonal() -> None:
    """cols <= rows_q with rows_q = bm*BM + iota(BM): true for key blocks with n + BN <= bm*BM + 1;
    the full-tile loop ends there (or at N), the diagonal blocks run in the tail loop."""
    kernel = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "CAUSAL": 1}).lowered()
    full, tail = loops(kernel)
    assert "select" not in [op.name for op in full.walk()]
    assert [op.name for op in tail.walk()].count("select") == 2      # keys past N, the diagonal


def run_block(prog: tiledsl.Program, passes: tuple[str, ...], **args: np.ndarray) -> tuple[dict, Report]:
    p, tensors, scalars, dims = prog.prepare_arguments(args)
    report = Report(level="block")
    BlockInterpreter(p.lowered(passes), tensors, scalars, dims, report).run()
    return {k: t.data.copy() for k, t in tensors.items()}, report


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 200), causal=st.integers(0, 1), bn=st.sampled_from([16, 32]))
def test_split_attention_is_bit_identical_to_the_unsplit_loop(n: int, causal: int, bn: int) -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 16, "BM": 32, "BN": bn, "CAUSAL": causal})
    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((1, 2, n, 16)).astype(np.float16) for _ in range(3))
    args = {"Q": q, "K": k, "V": v, "L": np.zeros(q.shape[:3], np.float32), "scale": np.float32(0.25)}
    split, r1 = run_block(prog, DEFAULT_PIPELINE, O=np.zeros_like(q), **args)
    plain, r2 = run_block(prog, UNSPLIT, O=np.zeros_like(q), **args)
    assert r1.ok and r2.ok, (r1, r2)
    np.testing.assert_array_equal(split["O"], plain["O"])


def test_a_false_inbounds_claim_is_an_out_of_bounds_error() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 16, "BM": 32, "BN": 16})
    kernel = prog.lower()[0]                           # a private copy to break
    tail = loops(kernel)[1]
    copy = next(op for op in tail.walk() if isinstance(op, ops.CopyOp))
    copy.attrs["inbounds"] = [2]                       # wrong: the tail tile runs past N
    q = np.ones((1, 1, 40, 16), np.float16)
    _, tensors, scalars, dims = prog.prepare_arguments({"Q": q, "K": q, "V": q, "O": np.zeros_like(q),
                                                        "L": np.zeros((1, 1, 40), np.float32),
                                                        "scale": np.float32(1)})
    report = Report(level="block")
    BlockInterpreter(kernel, tensors, scalars, dims, report).run()
    assert not report.ok
    assert any("bounds" in str(e) for e in report.errors), report
