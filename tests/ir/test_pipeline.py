"""The ``pipeline`` pass: the IR it makes (FileCheck), that the block interpreter computes the
same with it as without it at trip counts around the stage count, and the text round trip."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.ir.parser import parse_op
from tiledsl.ir.passes import pipeline
from tiledsl.ir.printer import print_op
from tiledsl.testing import filecheck

PIPELINED = ("fold", "cse", "pipeline", "cse", "dce")
filecheck = functools.partial(filecheck, show_input=True)   # a failure shows the IR

# Sums the BN-wide column blocks of each BM-row block of X (a loop of copies and reads).
COLSUM = """
kernel k(X: f32[M, N], out Y: f32[M, BN])
  param BM = 16, BN = 32, S = 2
  grid (cdiv(M, BM)) as (i)
  block 2 waves
{
  lds t: f32[BM, BN]
  acc = fill(0.0, f32[BM, BN])
  for j in 0 .. N step BN pipeline S {
    sync
    t <- X[i*BM : +BM, j : +BN]
    sync
    acc = acc + t
  }
  Y[i*BM : +BM, 0 : +BN] <- acc
}
"""



def test_two_stages() -> None:
    ir = tiledsl.load(COLSUM).ir(PIPELINED)
    filecheck(ir, r"""
CHECK:      %t_stage0 = lds_alloc() {pipeline_stage = 0}
CHECK-NEXT: %t_stage1 = lds_alloc() {pipeline_stage = 1}
CHECK-NOT:  lds_alloc
CHECK:      %[[FIRST:.*]] = lt(%[[LO:[0-9]+]], %N)
CHECK-NEXT: if(%[[FIRST]])
CHECK:        copy(%X, %{{.*}}, %[[LO]], %t_stage0) {extents = [16, 32], pad = 0.0, async = true}
CHECK:      async_commit()
CHECK:      %[[STEP2:.*]] = mul(%{{.*}}, %{{.*}})
CHECK:      for(%[[LO]], %N, %[[STEP2]], %{{.*}}) {pipelined = 2}
CHECK-NEXT: ^(%j: i32, %acc_1: f32[16,32]):
CHECK-NOT:    sync()
CHECK:        async_wait() {pending = 0}
CHECK-NEXT:   sync()
CHECK-NEXT:   %[[NEXT:.*]] = add(%j, %{{.*}})
CHECK-NEXT:   %[[GUARD:.*]] = lt(%[[NEXT]], %N)
CHECK-NEXT:   if(%[[GUARD]])
CHECK:          copy(%X, %{{.*}}, %[[NEXT]], %t_stage1) {{.*}}async = true
CHECK:        async_commit()
CHECK-NOT:    sync()
CHECK:        lds_read(%t_stage0)
CHECK:        if(%[[GUARD]])
CHECK:          async_wait() {pending = 0}
CHECK-NEXT:     sync()
CHECK:          copy(%X, %{{.*}}, %{{.*}}, %t_stage0) {{.*}}async = true
CHECK:          async_commit()
CHECK-NOT:      sync()
CHECK:          lds_read(%t_stage1)
CHECK:          yield(
CHECK:          yield(%{{.*}})
""")


def test_three_stages_wait_for_all_but_one_group() -> None:
    kernel = tiledsl.load(COLSUM, params={"S": 3}).lowered(PIPELINED)
    waits = [op.attrs["pending"] for op in kernel.walk() if isinstance(op, ops.AsyncWaitOp)]
    assert waits == [1, 1, 1]
    body = kernel.body.ops
    loop = next(op for op in body if isinstance(op, ops.ForOp))
    prologue = body[:body.index(loop)]
    assert sum(isinstance(op, ops.AsyncCommitOp) for op in prologue) == 2
    issued = [op.operands[-1].hint for op in kernel.walk() if isinstance(op, ops.CopyOp)]
    # prologue: stages 0, 1; iteration u refills stage (u + 2) % 3
    assert issued == ["t_stage0", "t_stage1", "t_stage2", "t_stage0", "t_stage1"]
    reads = [op.operands[0].hint for op in kernel.walk() if isinstance(op, ops.LdsReadOp)]
    assert reads == ["t_stage0", "t_stage1", "t_stage2"]
    assert loop.attrs == {"pipelined": 3}


def _colsum(prog: tiledsl.Program, passes: tuple[str, ...], x: np.ndarray) -> tuple[np.ndarray, Report]:
    y = np.zeros((x.shape[0], 32), np.float32)
    p, tensors, scalars, dims = prog.prepare_arguments({"X": x, "Y": y})
    report = Report(level="block")
    BlockInterpreter(p.lowered(passes), tensors, scalars, dims, report).run()
    return tensors["Y"].data, report


@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("n", [0, 5, 32, 33, 64, 95, 97, 160])
def test_block_level_same_result(stages: int, n: int) -> None:
    """Trip counts 0, 1, 2, 3, 4, 5 and partial last tiles: the guarded prologue and tails."""
    prog = tiledsl.load(COLSUM, params={"S": stages})
    x = np.random.default_rng(n).standard_normal((40, n)).astype(np.float32)
    want, _ = _colsum(prog, ("fold", "cse", "dce"), x)
    got, report = _colsum(prog, PIPELINED, x)
    assert report.ok, str(report)
    np.testing.assert_array_equal(got, want)


def test_stage_count_one_is_an_ordinary_loop() -> None:
    prog = tiledsl.load(COLSUM, params={"S": 1})
    assert prog.ir(PIPELINED) == prog.ir(("fold", "cse", "dce"))


def test_without_async_copies_the_loop_stays() -> None:
    kernel = tiledsl.load(COLSUM).lowered(("fold", "cse", "dce"))
    copy = parse_op(print_op(kernel))
    assert not pipeline.run(copy, async_copy=False)
    loop = next(op for op in copy.walk() if isinstance(op, ops.ForOp))
    assert "pipeline" not in loop.attrs
    assert print_op(copy) == print_op(kernel).replace(" {pipeline = 2}", "")


def test_pipelined_ir_round_trips() -> None:
    text = tiledsl.load(COLSUM, params={"S": 3}).ir(PIPELINED)
    assert print_op(parse_op(text)) == text


def test_attention_pipelines_both_copies() -> None:
    kernel = tiledsl.load(Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl",
                          params={"D": 64}).lowered(PIPELINED)
    stages = sorted(op.result.hint for op in kernel.walk() if isinstance(op, ops.LdsAllocOp))
    assert stages == ["ks_stage0", "ks_stage1", "qs", "vs_stage0", "vs_stage1"]
    loop = next(op for op in kernel.walk() if isinstance(op, ops.ForOp))
    # one barrier per key block: the original two around the copies are gone
    syncs = [op for op in loop.walk() if isinstance(op, ops.SyncOp)]
    assert len(syncs) == 2
