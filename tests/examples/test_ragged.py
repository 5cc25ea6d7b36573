"""The ragged, backward and top-k examples — ``attention_varlen`` (packed sequences), ``moe_gemm``
(grouped GEMM over experts with ragged token counts), ``layernorm_bwd`` (dX, and dW/dB through
atomics) and ``topk`` — against their float64 references at hypothesis-drawn shapes that are not
multiples of the tiles (empty groups and sequences included), at thread level on gfx942, gfx1100
and sm_90 against the block level, and compiled natively for every target. GPU runs:
``tests/runtime/test_cuda_ragged.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ragged_cases import Case, check, layernorm_bwd, moe, rel_error, run_level, topk, varlen

from tiledsl.backend_nvptx.ptx import PtxasNotFound, find_ptxas
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]
def drawn(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _block_vs_reference(case: Case, seed: int = 0) -> None:
    args, got = run_level(case, "block", seed=seed)
    check(case, got, case.reference(args))


# ---------------------------------------------------------------- block level vs NumPy

@drawn(25)
@given(lens=st.lists(st.integers(0, 150), min_size=1, max_size=4).filter(any), d=st.sampled_from([16, 32, 64]),
       causal=st.sampled_from([0, 1]), dtype=st.sampled_from(["f16", "bf16"]), bm=st.sampled_from([16, 32, 64]),
       bn=st.sampled_from([16, 32, 64]), seed=st.integers(0, 99))
@example(lens=[37, 0, 100, 5], d=32, causal=1, dtype="f16", bm=64, bn=32, seed=0)
@example(lens=[1], d=16, causal=0, dtype="bf16", bm=16, bn=64, seed=1)
def test_varlen_attention_block_level(lens: list[int], d: int, causal: int, dtype: str, bm: int, bn: int,
                                      seed: int) -> None:
    _block_vs_reference(varlen(lens, d, causal, dtype, bm=bm, bn=bn, heads=1 + seed % 2), seed)


@drawn(25)
@given(counts=st.lists(st.integers(0, 100), min_size=1, max_size=5).filter(any), k=st.integers(1, 100),
       n=st.integers(1, 100), dtype=st.sampled_from(["f16", "bf16"]), bm=st.sampled_from([16, 32, 64]),
       bn=st.sampled_from([16, 32, 64]), bk=st.sampled_from([16, 32]), seed=st.integers(0, 99))
@example(counts=[10, 0, 70, 3], k=45, n=77, dtype="f16", bm=32, bn=32, bk=32, seed=0)
@example(counts=[1], k=1, n=1, dtype="bf16", bm=64, bn=64, bk=16, seed=1)
def test_moe_gemm_block_level(counts: list[int], k: int, n: int, dtype: str, bm: int, bn: int, bk: int,
                              seed: int) -> None:
    _block_vs_reference(moe(counts, k, n, dtype, bm=bm, bn=bn, bk=bk), seed)


@drawn(25)
@given(m=st.integers(1, 70), n=st.integers(1, 300), bm=st.sampled_from([1, 4, 16, 32]),
       bn=st.sampled_from([16, 32, 64, 128]), seed=st.integers(0, 99))
@example(m=1, n=1, bm=16, bn=128, seed=0)
@example(m=70, n=300, bm=16, bn=128, seed=1)
def test_layernorm_bwd_block_level(m: int, n: int, bm: int, bn: int, seed: int) -> None:
    _block_vs_reference(layernorm_bwd(m, n, bm, bn), seed)


@drawn(25)
@given(m=st.integers(1, 40), n=st.integers(1, 300), k=st.integers(1, 8), dtype=st.sampled_from(["f32", "f16", "bf16"]),
       bm=st.sampled_from([1, 4, 16]), bn=st.sampled_from([16, 32, 128]), seed=st.integers(0, 99))
@example(m=1, n=1, k=1, dtype="f32", bm=16, bn=128, seed=0)
@example(m=37, n=150, k=8, dtype="f16", bm=16, bn=32, seed=1)
def test_topk_block_level(m: int, n: int, k: int, dtype: str, bm: int, bn: int, seed: int) -> None:
    _block_vs_reference(topk(m, n, min(k, n), dtype, bm, bn), seed)


def test_the_comparison_can_fail() -> None:
    """A reference at shifted offsets (one token moved to the next expert) is far off: the checks
    above compare something."""
    case = moe([10, 0, 70, 3], 45, 77)
    args, got = run_level(case, "block")
    wrong = dict(args, Off=np.array([0, 11, 11, 80, 83], np.int32))
    assert rel_error(got["Y"], case.reference(wrong)["Y"]) > 10 * case.outs["Y"]


# ---------------------------------------------------------------- thread level vs block level

THREAD_CASES: dict[str, Case] = {
    "varlen-causal0": varlen([37, 0, 100, 5], 32, 0),
    "varlen-causal1-bf16-S1": varlen([70, 3], 16, 1, "bf16", bm=32, bn=16, waves=2, stages=1),
    "moe-f16": moe([10, 0, 70, 3], 45, 77, bm=32, bn=32),
    "moe-bf16-W2": moe([33, 5], 40, 24, "bf16", bm=16, bn=16, bk=16, waves=2, stages=1),
    "layernorm_bwd": layernorm_bwd(37, 150, 16, 64),
    "layernorm_bwd-BM1": layernorm_bwd(5, 33, 1, 32),
    "topk-f32": topk(37, 150, 5, "f32", 16, 64),
    "topk-bf16": topk(9, 20, 8, "bf16", 4, 16),
}


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize("name", list(THREAD_CASES))
def test_thread_level_matches_block_level(name: str, target: str) -> None:
    case = THREAD_CASES[name]
    _, block = run_level(case, "block")
    _, thread = run_level(case, "thread", target)
    # Both levels round alike; atomically accumulated sums may differ in their order.
    check(case, thread, block, scale=0.1)


@drawn(6)
@given(lens=st.lists(st.integers(0, 70), min_size=1, max_size=3).filter(any), counts=st.lists(
       st.integers(0, 50), min_size=1, max_size=3).filter(any), target=st.sampled_from(THREAD_TARGETS))
def test_thread_level_at_drawn_lengths(lens: list[int], counts: list[int], target: str) -> None:
    for case in (varlen(lens, 16, 1, bm=32, bn=16, waves=2), moe(counts, 24, 20, bm=16, bn=16, bk=16, waves=1)):
        args, got = run_level(case, "thread", target)
        check(case, got, case.reference(args))


# ---------------------------------------------------------------- native code

NATIVE_CASES: dict[str, Case] = {
    "varlen": varlen([5], 64, 0),
    "varlen-causal-bf16-D128": varlen([5], 128, 1, "bf16", bm=64, bn=64),
    "moe": moe([5], 64, 64),
    "moe-bf16": moe([5], 64, 64, "bf16"),
    "layernorm_bwd": layernorm_bwd(5, 5),
    "topk": topk(5, 5, 2),
    "topk-f16": topk(5, 5, 2, "f16"),
}


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("name", list(NATIVE_CASES))
def test_compiles_natively(name: str, target: str) -> None:
    art = NATIVE_CASES[name].program().compile(target=target)
    assert len(art.binary) > 0
    if target == "sm_90a" and name.startswith(("varlen", "moe")):
        assert "wgmma.mma_async" in art.asm          # the dots are on the Hopper instruction
    if target.startswith("sm_") and _has_ptxas():
        assert len(art.cubin()) > 0                  # ptxas accepts the PTX


def _has_ptxas() -> bool:
    try:
        find_ptxas()
    except PtxasNotFound:
        return False
    return True


# ---------------------------------------------------------------- what the kernels touch

def _trace(case: Case, kind: str, names: tuple[str, ...], row_elems: int) -> dict[tuple[int, ...], list[int]]:
    """The rows (first index, ``row_elems`` elements each) of tensors ``names`` that each block
    reads or writes (``kind``), at block level."""
    prog, tensors, scalars, dims = case.program().prepare_arguments(case.inputs(np.random.default_rng(0)))
    rows: dict[tuple[int, ...], list[int]] = {}

    def tracer(op: object, k: str, name: str, index: np.ndarray, mask: np.ndarray,
               coords: list[np.ndarray]) -> None:
        if k != kind or name not in names:
            return
        first = np.broadcast_to(index, mask.shape) // row_elems
        for b in range(mask.shape[0]):
            hit = first[b][mask[b]]
            if hit.size:
                rows.setdefault(tuple(int(c[b]) for c in coords), []).extend(hit.tolist())

    it = BlockInterpreter(prog.lowered(), tensors, scalars, dims, Report(level="block"))
    it.tracer = tracer
    it.run()
    assert it.report.ok, str(it.report)
    return rows


def test_varlen_blocks_skip_fully_masked_work() -> None:
    """No block reads a key or query of another sequence; a block whose query tile starts past its
    sequence's end reads nothing; with CAUSAL=1 no key past the tile's last query is read."""
    lens, bm = [37, 0, 100, 5], 32
    cu = np.cumsum([0, *lens])
    reads = _trace(varlen(lens, 16, 1, bm=bm, bn=16, waves=2), "read", ("Q", "K", "V"), 2 * 16)
    for (t, _h, b), rows in reads.items():
        start, end = int(cu[b]), int(cu[b + 1])
        assert start + t * bm < end, (t, b)
        assert min(rows) >= start and max(rows) < min(end, start + (t + 1) * bm)
    assert len(reads) == 2 * (2 + 4 + 1)     # blocks with queries: 2 heads x (2 + 4 + 1) tiles, not 2 x 4 x 4


def test_moe_stores_stay_in_their_experts_rows() -> None:
    """Each block writes only rows of its own expert: the last tile of an expert (cut at Off[e+1])
    does not spill into the next expert's rows, and blocks past an expert's rows write nothing."""
    counts, bm = [10, 0, 70, 3], 32
    off = np.cumsum([0, *counts])
    writes = _trace(moe(counts, 45, 77, bm=bm, bn=32), "write", ("Y",), 77)
    for (t, _bn, e), rows in writes.items():
        assert off[e] + t * bm < off[e + 1]
        assert min(rows) >= off[e] + t * bm and max(rows) < min(off[e + 1], off[e] + (t + 1) * bm), (t, e)
    assert {(t, e) for t, _, e in writes} == {(0, 0), (0, 2), (1, 2), (2, 2), (0, 3)}


def test_layernorm_bwd_accumulates_into_dw_and_db() -> None:
    """DW and DB are accumulators: what the caller put there plus the sums of every block's rows."""
    case = layernorm_bwd(45, 70, bm=4, bn=32)
    args = case.inputs(np.random.default_rng(3))
    args["DW"][:] = 1.5
    args["DB"][:] = -2.0
    assert case.program().interpret(level="thread", target="gfx942", **args).ok
    want = case.reference(args)
    assert rel_error(args["DW"], want["DW"] + 1.5) <= 1e-5
    assert rel_error(args["DB"], want["DB"] - 2.0) <= 1e-5


def test_topk_orders_ties_by_index_and_skips_nan() -> None:
    x = np.array([[1, 3, 3, np.nan, 3, -1, 2],
                  [np.nan, np.nan, np.nan, 5, np.nan, np.nan, -np.inf]], np.float32)
    v = np.full((2, 4), np.nan, np.float32)
    i = np.zeros((2, 4), np.int32)
    assert topk(2, 7, 4, bn=16).program().interpret(X=x, V=v, I=i).ok
    assert v.tolist() == [[3, 3, 3, 2], [5, -np.inf, -np.inf, -np.inf]]
    assert i.tolist() == [[1, 2, 4, 6], [3, 6, 7, 7]]      # the row has only two non-NaN elements
