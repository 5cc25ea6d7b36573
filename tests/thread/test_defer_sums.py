"""defer-sums: a loop-carried sum of lane reductions keeps per-lane partials and is reduced across
lanes once after the loop; where the pattern does not hold the loop is left alone. The thread
interpreter checks the results against plain NumPy either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.ir.core import Op
from tiledsl.thread import compile_thread_ir, defer_sums

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _loops(kernel: Op) -> list[Op]:
    return [op for op in kernel.walk() if op.name == "for"]


def _shuffle_users(ops: list[Op]) -> set[str]:
    """The ops that combine a shuffled value with its source, among ``ops``."""
    return {u.name for op in ops if op.name == "shuffle_xor" for u in op.result.uses}


@pytest.mark.parametrize("target", ["sm_90", "gfx942"])
@pytest.mark.parametrize("causal,stages", [(0, 1), (1, 2)])
def test_attention_row_sum_leaves_the_loops(target: str, causal: int, stages: int) -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "CAUSAL": causal, "STAGES": stages})
    kernel, _ = compile_thread_ir(prog, target)
    loops = _loops(kernel)
    assert len(loops) >= 2                                     # split-tail: full tiles, then the rest
    inside = [op for loop in loops for op in loop.walk() if op is not loop]
    assert _shuffle_users(inside) == {"max"}                   # only the row max crosses lanes in a loop
    block = loops[-1].parent
    after = [op for o in block.ops[block.ops.index(loops[-1]) + 1:] for op in o.walk()]
    assert "add" in _shuffle_users(after)                      # the row sum, once, after the last loop


SOURCE = """
kernel rs(X: f32[M, N], out Y: f32[M])
  param BM = 64, BN = 32
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  layout rows = mma(waves=[4, 1])
  s = fill(INIT, f32[BM])
  t = fill(0, f32[BM])
  for n in 0 .. N step BN {
    x = X[b*BM : +BM, n : +BN] @ rows
    s = s * 0.5 + rowsum(x)
    EXTRA
  }
  Y[b*BM : +BM] <- s + t
}
"""


def _reference(x: np.ndarray, init: float, bn: int, extra: bool) -> np.ndarray:
    s = np.full(x.shape[0], init, dtype=np.float64)
    t = np.zeros(x.shape[0])
    for n in range(0, x.shape[1], bn):
        s = s * 0.5 + x[:, n:n + bn].astype(np.float64).sum(axis=1)
        if extra:
            t = t + s
    return s + t


@pytest.mark.parametrize("target", ["sm_90", "gfx942", "gfx1100"])
@pytest.mark.parametrize("init,extra,rewritten", [
    (0, False, True),       # the pattern
    (1, False, False),      # a non-zero start cannot be split into partials
    (0, True, False),       # s is read in the body (t = t + s): it must be whole there
])
def test_carried_row_sums(target: str, init: int, extra: bool, rewritten: bool) -> None:
    src = SOURCE.replace("INIT", str(init)).replace("EXTRA", "t = t + s" if extra else "")
    prog = tiledsl.load(src)
    kernel, _ = compile_thread_ir(prog, target)
    inside = [op for loop in _loops(kernel) for op in loop.walk() if op is not loop]
    assert ("add" not in _shuffle_users(inside)) == rewritten
    rng = np.random.default_rng(init + 2 * extra)
    x = rng.standard_normal((150, 100)).astype(np.float32)     # neither a multiple of BM nor of BN
    y = np.full(150, np.nan, dtype=np.float32)
    report = prog.interpret(level="thread", target=target, X=x, Y=y)
    assert report.ok, str(report)
    ref = _reference(x, init, 32, extra)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5


def test_run_reports_how_many_sums_it_rewrote() -> None:
    """Idempotent: on thread IR that has been rewritten there is nothing left to rewrite."""
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64})
    kernel, _ = compile_thread_ir(prog, "sm_90")
    assert defer_sums.run(kernel) == 0
