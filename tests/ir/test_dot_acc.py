"""dot-acc: ``x + dot(a, b)`` becomes ``dot(a, b, x)`` where that is the same computation, and the
interpreter's results do not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.ir.core import Block
from tiledsl.stages import DEFAULT_TILE_PASSES as DEFAULT_PIPELINE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNFUSED = tuple(p for p in DEFAULT_PIPELINE if p != "dot-acc")


def dots(kernel: ops.KernelOp) -> list[ops.DotOp]:
    return [op for op in kernel.walk() if isinstance(op, ops.DotOp)]


def test_attention_pv_accumulates_into_the_rescaled_acc() -> None:
    kernel = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64}).lowered()
    loop = next(op for op in kernel.walk() if isinstance(op, ops.ForOp))
    s, pv = dots(loop)
    assert len(s.operands) == 2                                   # q · ks^T: nothing added to it
    assert len(pv.operands) == 3 and pv.operands[2].owner.name == "mul"     # acc * alpha[:, _]
    assert not [op for op in loop.walk() if op.name == "add" and len(op.results[0].type.shape) == 2]


SOURCE = """
kernel k(A: f16[64, 32], B: f16[32, 64], X: f32[64, 64], out Y: f32[64, 64], out Z: f32[64, 64])
  grid (1) as (b)
  block 4 waves
{
  a = A[0 : +64, :]
  x = X[:, :]
  d = dot(a, B[:, :])
  BODY
}
"""


def lowered(body: str, passes: tuple[str, ...] = DEFAULT_PIPELINE) -> ops.KernelOp:
    return tiledsl.load(SOURCE.replace("BODY", body)).lowered(passes)


def test_either_operand_order_is_fused() -> None:
    for body in ("Y[:, :] <- x + d\n  Z[:, :] <- x", "Y[:, :] <- d + x\n  Z[:, :] <- x"):
        (dot,) = dots(lowered(body))
        assert len(dot.operands) == 3 and dot.operands[2].owner.name == "load"


def test_a_dot_with_other_uses_or_in_an_outer_block_is_left_alone() -> None:
    (dot,) = dots(lowered("Y[:, :] <- x + d\n  Z[:, :] <- d"))           # d is needed by itself too
    assert len(dot.operands) == 2
    body = "acc = x\n  for i in 0 .. 2 { acc = acc + d }\n  Y[:, :] <- acc\n  Z[:, :] <- x"
    (dot,) = dots(lowered(body))                                        # fusing would repeat the dot
    assert len(dot.operands) == 2


def run_block(prog: tiledsl.Program, passes: tuple[str, ...], **args: np.ndarray) -> tuple[dict, Report]:
    p, tensors, scalars, dims = prog.prepare_arguments(args)
    report = Report(level="block")
    BlockInterpreter(p.lowered(passes), tensors, scalars, dims, report).run()
    return {k: t.data.copy() for k, t in tensors.items()}, report


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 100), causal=st.integers(0, 1))
def test_fused_attention_is_bit_identical(n: int, causal: int) -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 16, "BM": 32, "BN": 16, "CAUSAL": causal})
    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((1, 2, n, 16)).astype(np.float16) for _ in range(3))
    args = {"Q": q, "K": k, "V": v, "L": np.zeros(q.shape[:3], np.float32), "scale": np.float32(0.25)}
    fused, r1 = run_block(prog, DEFAULT_PIPELINE, O=np.zeros_like(q), **args)
    plain, r2 = run_block(prog, UNFUSED, O=np.zeros_like(q), **args)
    assert r1.ok and r2.ok, (r1, r2)
    np.testing.assert_array_equal(fused["O"], plain["O"])


def test_an_accumulator_with_a_pinned_layout_is_fused() -> None:
    """FA2 backward's ``dk = dk + dot(ds, q)``: ``dk`` is carried from a fill pinned to a layout,
    the dot's result has none yet; the add still becomes the dot's accumulator, and the values
    stay those of the unfused kernel."""
    src = """
kernel k(A: f16[64, 32], B: f16[32, 64], out Y: f32[64, 64])
  grid (1) as (b)
  block 4 waves
{
  layout rows = mma(waves=[4, 1])
  acc = fill(0, f32[64, 64]) @ rows
  for i in 0 .. 3 step 1 {
    acc = acc + dot(A[:, :], B[:, :])
  }
  Y[:, :] <- acc
}
"""
    kernel = tiledsl.load(src).lowered()
    (dot,) = dots(kernel)
    assert len(dot.operands) == 3 and isinstance(dot.operands[2].owner, Block)    # the loop-carried acc
    assert not [op for op in kernel.walk() if op.name == "add" and len(op.results[0].type.shape) == 2]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 32)).astype(np.float16), rng.standard_normal((32, 64)).astype(np.float16)
    fused, plain = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    assert tiledsl.load(src).interpret(A=a, B=b, Y=fused).ok
    assert tiledsl.load(src).interpret(level="thread", target="sm_90", A=a, B=b, Y=plain).ok
    np.testing.assert_allclose(fused, 3 * (a.astype(np.float64) @ b), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(plain, fused, rtol=1e-6, atol=1e-5)
