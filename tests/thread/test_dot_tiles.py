"""``dot`` at any tile shape and wave count: a matrix layout where one fits (its waves
replicating data when the tile is smaller than the waves' instruction tiles), else the LDS/FMA
fallback (``lds_dot``). Every case gives the block interpreter's answer and the NumPy product, at
matrix sizes that are not multiples of the tiles, on every target, and compiles natively."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.diagnostics import TdslError
from tiledsl.interp.numerics import round_bf16

SIZES = [1, 2, 3, 16, 24, 32, 48, 64, 96, 128]
THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]

# Operands from registers (global loads), from LDS, or B stored as [N, K] and read transposed.
SOURCE = """
kernel tiles(A: {dt}[M, K], B: {dt}[{b_dims}], out C: f32[M, N])
  param BM = 16, BN = 16, BK = 16
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block {waves} waves
{{
  lds a_s: {dt}[BM, BK]
  lds b_s: {dt}[{b_tile}]
  acc = fill(0, f32[BM, BN])
  for k in 0 .. K step BK {{
    {body}
  }}
  C[bm*BM : +BM, bn*BN : +BN] <- acc
}}
"""
BODIES = {
    "regs": "acc = dot(A[bm*BM : +BM, k : +BK], B[k : +BK, bn*BN : +BN], acc)",
    "lds": "sync\n    a_s <- A[bm*BM : +BM, k : +BK]\n    b_s <- B[k : +BK, bn*BN : +BN]\n    sync\n"
           "    acc = dot(a_s, b_s, acc)",
    "lds_t": "sync\n    a_s <- A[bm*BM : +BM, k : +BK]\n    b_s <- B[bn*BN : +BN, k : +BK]\n    sync\n"
             "    acc = dot(a_s, b_s^T, acc)",
}


def _program(form: str, dtype: str, waves: int, bm: int, bn: int, bk: int) -> tiledsl.Program:
    transposed = form == "lds_t"
    src = SOURCE.format(dt=dtype, waves=waves, body=BODIES[form], b_dims="N, K" if transposed else "K, N",
                        b_tile="BN, BK" if transposed else "BK, BN")
    return tiledsl.load(src, params={"BM": bm, "BN": bn, "BK": bk})


@st.composite
def _cases(draw: st.DrawFn) -> dict:
    bm, bn, bk = (draw(st.sampled_from(SIZES)) for _ in range(3))
    return {"bm": bm, "bn": bn, "bk": bk, "waves": draw(st.sampled_from([1, 2, 4, 8])),
            "dtype": draw(st.sampled_from(["f16", "bf16", "f32"])),
            "form": draw(st.sampled_from(sorted(BODIES))),
            # matrix sizes up to two tiles, mostly not multiples of them
            "m": draw(st.integers(1, 2 * bm)), "n": draw(st.integers(1, 2 * bn)),
            "k": draw(st.integers(1, 2 * bk)),
            "seed": draw(st.integers(0, 2**16))}


def _inputs(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A, B as the kernel takes them, and the float64 product."""
    rng = np.random.default_rng(case["seed"])
    a = rng.standard_normal((case["m"], case["k"])).astype(np.float32)
    b = rng.standard_normal((case["k"], case["n"])).astype(np.float32)
    if case["dtype"] == "f16":
        a, b = a.astype(np.float16), b.astype(np.float16)
    elif case["dtype"] == "bf16":
        a, b = round_bf16(a), round_bf16(b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    return a, (b.T.copy() if case["form"] == "lds_t" else b), ref


def _too_much_lds(err: TdslError) -> bool:
    """The one user error a legal tile combination may meet: f32 operand tiles of 128x96 over LDS."""
    return "bytes of LDS" in err.message


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=_cases(), target=st.sampled_from(THREAD_TARGETS))
def test_dot_at_any_tile_gives_the_block_interpreters_answer(case: dict, target: str) -> None:
    prog = _program(case["form"], case["dtype"], case["waves"], case["bm"], case["bn"], case["bk"])
    a, b, ref = _inputs(case)
    c_block = np.full((case["m"], case["n"]), np.nan, np.float32)
    assert prog.interpret(A=a, B=b, C=c_block).ok
    c_thread = np.full_like(c_block, np.nan)
    try:
        report = prog.interpret(level="thread", target=target, A=a.copy(), B=b.copy(), C=c_thread)
    except TdslError as e:
        assert _too_much_lds(e), str(e)
        return
    assert report.ok, str(report)
    scale = max(float(np.linalg.norm(ref)), 1e-30)
    assert np.linalg.norm(c_thread - c_block) / scale <= 1e-5
    assert np.linalg.norm(c_thread - ref) / scale <= 1e-5


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=_cases(), target=st.sampled_from(NATIVE_TARGETS))
def test_dot_at_any_tile_compiles(case: dict, target: str) -> None:
    prog = _program(case["form"], case["dtype"], case["waves"], case["bm"], case["bn"], case["bk"])
    try:
        art = prog.compile(target=target)
    except TdslError as e:
        assert _too_much_lds(e), str(e)
        return
    assert art.binary


@pytest.mark.parametrize(("target", "bm", "bn", "uses"), [
    ("gfx942", 16, 32, "mfma_f32_16x16x16"),      # 4 waves over 1x2 instruction tiles
    ("gfx1100", 16, 16, "wmma"),
    ("sm_90", 16, 8, "mma_m16n8k16"),
    ("generic", 16, 16, "fma_f32_16x16x1"),
    ("gfx942", 24, 32, None),                     # 24 rows: no instruction tiles them, lds_dot
])
def test_small_tiles_take_a_matrix_layout_with_replicated_waves(target: str, bm: int, bn: int,
                                                                 uses: str | None) -> None:
    from tiledsl.thread import compile_thread_ir
    prog = _program("lds", "f16", 4, bm, bn, 16)
    kernel, _ = compile_thread_ir(prog, target)
    names = [op.name for op in kernel.walk()]
    instrs = [op.attrs["instr"] for op in kernel.walk() if op.name == "mma_tile"]
    if uses is None:
        assert "lds_dot" in names and not instrs
    else:
        assert instrs and all(i.startswith(uses) for i in instrs), instrs
    case = {"bm": bm, "bn": bn, "bk": 16, "m": 2 * bm + 3, "n": bn + 5, "k": 37, "dtype": "f16",
            "form": "lds", "seed": 1}
    a, b, ref = _inputs(case)
    c = np.full(ref.shape, np.nan, np.float32)
    report = prog.interpret(level="thread", target=target, A=a, B=b, C=c)
    assert report.ok, str(report)
    assert np.linalg.norm(c - ref) / np.linalg.norm(ref) <= 1e-5
