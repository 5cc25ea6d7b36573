"""Reductions of tiles whose layout holds some elements more than once: a dot operand is held
by every wave of a wave row (A) or column (B), and on WMMA and the FMA fallback by two or more
lanes of a wave. A sum counts each element once (it used to count every copy, silently); a max
is unaffected. Checked at the thread level on every target against NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.ir import ops
from tiledsl.thread import layout_ir

SOURCE = (Path(__file__).resolve().parents[1] / "kernels" / "operand_sums.tdsl").read_text()


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"])
def test_sums_of_dot_operands_count_each_element_once(target: str) -> None:
    prog = tiledsl.load(SOURCE)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 32)).astype(np.float16)
    b = rng.standard_normal((64, 32)).astype(np.float16)
    out = {"C": np.zeros((70, 64), np.float32), "R": np.zeros(70, np.float32), "S": np.zeros(64, np.float32),
           "X": np.zeros(70, np.float32)}
    report = prog.interpret(level="thread", target=target, A=a, B=b, **out)
    assert report.ok, str(report)
    a32, b32 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(out["C"], a32 @ b32.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["R"], a32.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["S"], b32.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["X"], a32.max(axis=1))
    # the reductions really read dot operand layouts, some element held twice or more
    kernel, ctx = layout_ir(prog, target)
    copies = []
    for op in kernel.walk():
        if isinstance(op, ops.ReduceOp):
            src = op.operands[0].type
            assert src.layout.startswith("dot_operand"), src
            copies.append(int(ctx.bind(src.layout, tuple(src.shape), src.dtype).replication().max()))
    assert max(copies) > 1
