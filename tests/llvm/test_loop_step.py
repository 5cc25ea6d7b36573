"""A loop whose step is computed at run time traps in native code when the step is not
positive (the interpreters stop with an error at the loop), instead of looping forever; a step
known at compile time costs no test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RUNTIME_STEP = """kernel k(X: f32[M, N], out Y: f32[M], s: i32)
  param BM = 16
  grid (cdiv(M, BM)) as (bm)
  block 1 waves
{
  acc = fill(0, f32[BM])
  for n in 0 .. N step s {
    acc = acc + X[bm*BM : +BM, n]
  }
  Y[bm*BM : +BM] <- acc
}"""

TRAP = {"sm_90": "trap;", "sm_80": "trap;", "gfx942": "s_trap 2", "gfx1100": "s_trap 2"}


@pytest.mark.parametrize("target", sorted(TRAP))
def test_a_run_time_step_is_tested_and_traps(target: str) -> None:
    art = tiledsl.load(RUNTIME_STEP).compile(target=target)
    assert "call void @llvm.trap()" in art.llvm_ir
    assert TRAP[target] in art.asm


@pytest.mark.parametrize("level", ["block", "thread"])
@pytest.mark.parametrize("step", [0, -3])
def test_the_interpreters_stop_at_the_loop(level: str, step: int) -> None:
    x = np.ones((20, 10), np.float32)
    with pytest.raises(tiledsl.TdslError, match=f"loop step {step} is not positive") as info:
        tiledsl.load(RUNTIME_STEP).interpret(level=level, target="gfx942", X=x, Y=np.zeros(20, np.float32), s=step)
    assert (info.value.loc.line, info.value.loc.col) == (7, 3)


@pytest.mark.parametrize(("example", "params"), [("attention", {"D": 64}), ("attention", {"D": 64, "STAGES": 3}),
                                                 ("gemm", {}), ("softmax", {}), ("layernorm", {})])
@pytest.mark.parametrize("target", ["sm_90", "gfx942"])
def test_compile_time_steps_need_no_test(example: str, params: dict, target: str) -> None:
    # attention on sm_90 pipelines its loop, whose step becomes BN * STAGES: still known.
    art = tiledsl.load(EXAMPLES / f"{example}.tdsl", params=params).compile(target=target)
    assert "llvm.trap" not in art.llvm_ir
