"""The thread interpreter against the block interpreter: every example, every target,
hypothesis-drawn shapes (not multiples of the tiles) and tile parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TARGETS = ["gfx90a", "gfx942", "gfx1100", "sm_80", "sm_90", "sm_90a", "generic"]
SETTINGS = settings(max_examples=4, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a64 - b64) / max(np.linalg.norm(b64), 1e-30))


def _both_levels(prog: tiledsl.Program, target: str, args: dict, out: str) -> tuple[np.ndarray, np.ndarray]:
    block_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    thread_args = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    rb = prog.interpret(**block_args)
    rt = prog.interpret(level="thread", target=target, **thread_args)
    assert rb.ok, str(rb)
    assert rt.ok, str(rt)
    return block_args[out], thread_args[out]


@pytest.mark.parametrize("target", TARGETS)
@SETTINGS
@given(n=st.integers(1, 200), d=st.sampled_from([16, 32, 64]), bm=st.sampled_from([64, 128]),
       bn=st.sampled_from([16, 32, 64]), causal=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_attention(target: str, n: int, d: int, bm: int, bn: int, causal: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"BM": bm, "BN": bn, "CAUSAL": causal})
    q, k, v = (rng.standard_normal((1, 2, n, d)).astype(np.float16) for _ in range(3))
    args = {"Q": q, "K": k, "V": v, "O": np.full_like(q, np.nan),
            "L": np.full(q.shape[:3], np.nan, np.float32), "scale": 1 / np.sqrt(d)}
    ob, ot = _both_levels(prog, target, args, "O")
    # f16 output: the thread level sums rows in another order; allow one f16 rounding step.
    assert _rel(ot, ob) <= 2e-3


@pytest.mark.parametrize("target", TARGETS)
@SETTINGS
@given(m=st.integers(1, 150), n=st.integers(1, 150), k=st.integers(1, 100), bm=st.sampled_from([16, 32, 64]),
       bn=st.sampled_from([16, 32, 64]), bk=st.sampled_from([16, 32]), seed=st.integers(0, 2**16))
def test_gemm(target: str, m: int, n: int, k: int, bm: int, bn: int, bk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prog = tiledsl.load(EXAMPLES / "gemm.tdsl", params={"BM": bm, "BN": bn, "BK": bk})
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    cb, ct = _both_levels(prog, target, {"A": a, "B": b, "C": np.full((m, n), np.nan, np.float32)}, "C")
    assert _rel(ct, cb) <= 1e-5


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", ["softmax", "layernorm"])
@SETTINGS
@given(m=st.integers(1, 70), n=st.integers(1, 300), bm=st.sampled_from([16, 32]),
       bn=st.sampled_from([32, 64, 128]), seed=st.integers(0, 2**16))
def test_row_kernels(target: str, example: str, m: int, n: int, bm: int, bn: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prog = tiledsl.load(EXAMPLES / f"{example}.tdsl", params={"BM": bm, "BN": bn})
    args = {"X": rng.standard_normal((m, n)).astype(np.float32), "Y": np.full((m, n), np.nan, np.float32)}
    if example == "layernorm":
        args.update(W=rng.standard_normal(n).astype(np.float32), B=rng.standard_normal(n).astype(np.float32),
                    eps=1e-5)
    yb, yt = _both_levels(prog, target, args, "Y")
    assert _rel(yt, yb) <= 1e-5


@pytest.mark.parametrize("target", TARGETS)
@SETTINGS
@given(m=st.integers(1, 300), n=st.integers(1, 150), bm=st.sampled_from([16, 64]), bn=st.sampled_from([32, 64]),
       seed=st.integers(0, 2**16))
def test_reduce_atomic(target: str, m: int, n: int, bm: int, bn: int, seed: int) -> None:
    """Atomics from many blocks, in shuffled order at thread level: the sums agree to rounding, the
    maxima and counts exactly."""
    rng = np.random.default_rng(seed)
    prog = tiledsl.load(EXAMPLES / "reduce_atomic.tdsl", params={"BM": bm, "BN": bn})
    x = rng.standard_normal((m, n)).astype(np.float32)
    outs = [{"S": np.zeros(n, np.float32), "Mx": np.full(n, -np.inf, np.float32), "Pos": np.zeros(1, np.int32)}
            for _ in range(2)]
    assert prog.interpret(X=x, **outs[0]).ok
    report = prog.interpret(level="thread", target=target, shuffle_blocks=True, seed=seed, X=x, **outs[1])
    assert report.ok, str(report)
    block, thread = outs
    assert _rel(thread["S"], block["S"]) <= 1e-5
    np.testing.assert_array_equal(thread["Mx"], block["Mx"])
    np.testing.assert_array_equal(thread["Pos"], block["Pos"])


COPY = """
kernel copy(X: {dt}[M, N], out Y: {dt}[M, N])
  param BM = 32, BN = 64
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{{
  lds t: {dt}[BM, BN]
  t <- X[i*BM : +BM, j*BN : +BN]
  sync
  Y[i*BM : +BM, j*BN : +BN] <- t
}}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32", "i32"])
@settings(max_examples=5, deadline=None, derandomize=True)
@given(m=st.integers(1, 100), n=st.integers(1, 150), seed=st.integers(0, 2**16))
def test_data_movement_is_exact(target: str, dtype: str, m: int, n: int, seed: int) -> None:
    """Pure data movement (global → LDS → global) must agree bit for bit."""
    rng = np.random.default_rng(seed)
    prog = tiledsl.load(COPY.format(dt=dtype))
    np_dtype = {"f16": np.float16, "bf16": np.float32, "f32": np.float32, "i32": np.int32}[dtype]
    x = (rng.standard_normal((m, n)) * 100).astype(np_dtype)
    if dtype == "bf16":
        from tiledsl.interp.numerics import round_bf16
        x = round_bf16(x)
    yb, yt = _both_levels(prog, target, {"X": x, "Y": np.zeros((m, n), np_dtype)}, "Y")
    assert np.array_equal(yb, yt)
    assert np.array_equal(yb, x)


CROSS_WAVE = """
kernel rows(X: f32[M, N], out Y: f32[M])
  param BM = 4, BN = 512
  grid (cdiv(M, BM)) as (i)
  block 4 waves
{
  layout cols = blocked(spt=[1,4], order=[1,0], waves=[1,4])   # waves split each row
  x = X[i*BM : +BM, 0 : +BN] @ cols
  Y[i*BM : +BM] <- rowsum(x) + rowmax(x)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_reduction_across_waves(target: str) -> None:
    """Rows spread over several waves are combined through LDS, race-free."""
    from tiledsl.ir.printer import print_op
    from tiledsl.thread import compile_thread_ir
    prog = tiledsl.load(CROSS_WAVE)
    assert "held_by_wave" in print_op(compile_thread_ir(prog, target)[0])
    x = np.random.default_rng(0).standard_normal((37, 512)).astype(np.float32)
    yb, yt = _both_levels(prog, target, {"X": x, "Y": np.zeros(37, np.float32)}, "Y")
    assert _rel(yt, x.sum(1) + x.max(1)) <= 1e-5
    assert _rel(yt, yb) <= 1e-5
