"""LDS allocation: reuse across lifetimes, the barrier reuse needs, and the limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.diagnostics import TdslError
from tiledsl.ir import ops
from tiledsl.thread import layout_ir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _allocs(kernel: ops.KernelOp) -> list[ops.LdsAllocOp]:
    return [op for op in kernel.walk() if isinstance(op, ops.LdsAllocOp)]


def test_attention_d128_reuses_lds_and_stays_correct() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 128, "BM": 128, "BN": 64})
    kernel, _ = layout_ir(prog, "gfx942")
    allocs = _allocs(kernel)
    total = sum(a.result.type.nbytes for a in allocs)
    used = kernel.attrs["lds_bytes"]
    assert used < total
    assert used <= 65536
    # qs is dead once Q is in registers: the loop's tiles take its bytes.
    qs = next(a for a in allocs if a.result.hint == "qs")
    others = [a for a in allocs if a is not qs]
    assert any(a.attrs["offset"] < qs.attrs["offset"] + qs.result.type.nbytes for a in others)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 200, 128)).astype(np.float16) for _ in range(3))
    o, ob = np.zeros_like(q), np.zeros_like(q)
    report = prog.interpret(level="thread", target="gfx942", Q=q, K=k, V=v, O=o, scale=128 ** -0.5)
    assert report.ok, str(report)
    prog.interpret(Q=q, K=k, V=v, O=ob, scale=128 ** -0.5)
    assert np.abs(o.astype(np.float64) - ob).max() < 2e-3


def test_live_tiles_never_overlap() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64})
    kernel, _ = layout_ir(prog, "gfx942")
    loop_tiles = [a for a in _allocs(kernel) if a.result.hint in ("ks", "vs")]
    (ks, vs) = loop_tiles
    a0, a1 = ks.attrs["offset"], ks.attrs["offset"] + ks.result.type.nbytes
    b0, b1 = vs.attrs["offset"], vs.attrs["offset"] + vs.result.type.nbytes
    assert a1 <= b0 or b1 <= a0
    assert all(a.attrs["offset"] % 16 == 0 for a in _allocs(kernel))


def test_reuse_without_a_sync_gets_one() -> None:
    src = """
kernel k(X: f32[M, N], out Y: f32[M, N])
  grid (cdiv(M, 16)) as (i)
  block 2 waves
{
  lds a: f32[16, 32]
  lds b: f32[16, 32]
  a <- X[i*16 : +16, 0 : +32]
  sync
  x = a
  b <- X[i*16 : +16, 0 : +32]              # may reuse a's bytes: needs a barrier first
  sync
  Y[i*16 : +16, 0 : +32] <- x + b
}
"""
    prog = tiledsl.load(src)
    kernel, _ = layout_ir(prog, "gfx942")
    a, b = sorted(_allocs(kernel), key=lambda o: o.result.hint)
    assert a.attrs["offset"] == b.attrs["offset"]
    names = [op.name for op in kernel.body.ops]
    copies = [i for i, n in enumerate(names) if n == "copy"]
    assert "sync" in names[copies[0] + 1:copies[1]]
    sync_before_b = [op for op in kernel.body.ops[copies[0]:copies[1]] if op.name == "sync"]
    assert any(op.attrs.get("reuse") for op in sync_before_b)
    x = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    y = np.zeros_like(x)
    assert prog.interpret(level="thread", target="gfx942", X=x, Y=y).ok
    assert np.array_equal(y, 2 * x)


TWO_SCRATCHES = """
kernel k(A: f32[M, M], out Y: f32[M])
  param BM = 64
  grid (cdiv(M, BM)) as (i)
  block 4 waves
{
  lds c: f32[BM, BM]
  lds a: f32[16, BM]
  a <- A[0 : +16, i*BM : +BM]
  sync
  c <- fill(1.0, f32[BM, BM]) + colsum(a)[_, :]
  sync
  Y[i*BM : +BM] <- colsum(c)
}
"""


@pytest.mark.parametrize("target", ["gfx942", "sm_90", "generic"])
def test_the_reuse_barrier_counts_positions_after_earlier_insertions(target: str) -> None:
    """Found by the program generator: once a reuse sync had been inserted, the last use of an
    earlier tile was looked up at its old position, so a sync before it seemed to lie after it.
    Here the second colsum's scratch reuses c's bytes right after c is read, with no barrier
    between (an LDS race on every target)."""
    prog = tiledsl.load(TWO_SCRATCHES)
    kernel, _ = layout_ir(prog, target)
    body = kernel.body.ops
    read_c = next(op for op in body if isinstance(op, ops.LdsReadOp) and op.operands[0].hint == "c")
    reduce = next(op for op in body if isinstance(op, ops.ReduceOp) and op.operands[0] is read_c.result)
    between = body[body.index(read_c) + 1:body.index(reduce)]
    scratch = reduce.operands[1].owner
    c = read_c.operands[0].owner
    if scratch.attrs["offset"] < c.attrs["offset"] + c.result.type.nbytes:
        assert any(isinstance(op, ops.SyncOp) for op in between)
    a = np.random.default_rng(0).standard_normal((70, 70)).astype(np.float32)
    y, want = np.zeros(70, np.float32), np.zeros(70, np.float32)
    assert prog.interpret(level="thread", target=target, A=a, Y=y).ok
    assert prog.interpret(A=a, Y=want).ok
    np.testing.assert_allclose(y, want, rtol=1e-5)


def test_over_the_limit_is_a_located_error() -> None:
    prog = tiledsl.load(EXAMPLES / "gemm.tdsl", params={"BM": 256, "BN": 256, "BK": 128})
    with pytest.raises(TdslError) as e:
        layout_ir(prog, "gfx942")
    assert "LDS" in e.value.message and "65536" in e.value.message
    assert e.value.loc is not None and e.value.loc.line > 0
