"""Values loaded from tensors steering kernels, at every level: one-element loads as slice starts,
loop bounds (per-block trip counts, nested) and ``if`` conditions; ragged slices cut at a run-time
bound (``until``) for reads and writes; gathers and scatters through index tiles (``X[idx, :]``,
``Y[idx, :] <- v``, ``ks <- K[pages, slots, h, :]``); grids sized by scalar parameters.

Each kernel (``tests/kernels``, cases in ``gather_cases.py``) runs at block level against NumPy,
at thread level on five targets against the block level, and compiles natively on six; out-of-range
indices and stores that spill are reported with the access's location.
"""

from __future__ import annotations

import numpy as np
import pytest
from gather_cases import CASES, Case, moe, nested, offsets, permute, rel_error, run_level, segments, varlen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.backend_nvptx.ptx import PtxasNotFound, find_ptxas
from tiledsl.interp.block import BlockInterpreter
from tiledsl.interp.report import Report
from tiledsl.ir.core import verify_tree
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.thread import compile_thread_ir, layout_ir

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]


def _check(case: Case, got: dict[str, np.ndarray], want: dict[str, np.ndarray], tolerance: float) -> None:
    for k in case.outs:
        assert rel_error(got[k], want[k]) <= tolerance, k


@pytest.mark.parametrize("name", list(CASES))
def test_block_level_matches_numpy(name: str) -> None:
    case = CASES[name]
    _check(case, run_level(case, "block"), case.reference(case.inputs(np.random.default_rng(0))), case.tolerance)


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize("name", list(CASES))
def test_thread_level_matches_block_level(name: str, target: str) -> None:
    case = CASES[name]
    _check(case, run_level(case, "thread", target), run_level(case, "block"), 1e-5)


NATIVE_CASES = ["segments-W2-BR5", "nested-BR3", "permute-37x24-BM16-W2", "gather_shapes-M21", "paged-P16-BN32-S2",
                "moe-BM32-W4", "varlen-causal1"]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("name", NATIVE_CASES)
def test_compiles_natively(name: str, target: str) -> None:
    art = CASES[name].program().compile(target=target)
    assert len(art.binary) > 0
    if target.startswith("sm_") and _has_ptxas():
        assert len(art.cubin()) > 0         # ptxas accepts the PTX


def _has_ptxas() -> bool:
    try:
        find_ptxas()
    except PtxasNotFound:
        return False
    return True


# ---------------------------------------------------------------- drawn inputs

@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6), br=st.sampled_from([1, 3, 8, 16, 64]),
       waves=st.sampled_from([1, 2, 4]), target=st.sampled_from(THREAD_TARGETS), seed=st.integers(0, 99))
def test_ragged_groups_of_any_sizes(sizes: list[int], br: int, waves: int, target: str, seed: int) -> None:
    """Empty groups, groups shorter and longer than a tile, at both levels against NumPy: the stores
    cut at each group's end write every row exactly once (the coverage check holds)."""
    case = segments(sizes, waves, br, cols=45)
    want = case.reference(case.inputs(np.random.default_rng(seed)))
    for level in ("block", "thread"):
        _check(case, run_level(case, level, target if level == "thread" else None, seed), want, 1e-5)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.integers(1, 90), d=st.sampled_from([1, 3, 8, 24, 40]), bm=st.sampled_from([1, 4, 16, 32]),
       waves=st.sampled_from([1, 2]), target=st.sampled_from(THREAD_TARGETS), seed=st.integers(0, 99))
def test_permutations_both_ways(t: int, d: int, bm: int, waves: int, target: str, seed: int) -> None:
    case = permute(t, d, bm, waves)
    want = case.reference(case.inputs(np.random.default_rng(seed)))
    for level in ("block", "thread"):
        _check(case, run_level(case, level, target if level == "thread" else None, seed), want, 1e-6)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(lens=st.lists(st.integers(0, 70), min_size=1, max_size=4).filter(any), causal=st.sampled_from([0, 1]),
       target=st.sampled_from(["gfx942", "sm_90", "gfx1100"]))
def test_varlen_attention_of_drawn_lengths(lens: list[int], causal: int, target: str) -> None:
    case = varlen(lens, 16, causal, bm=32, bn=16, waves=2)
    want = case.reference(case.inputs(np.random.default_rng(0)))
    _check(case, run_level(case, "block"), want, case.tolerance)
    _check(case, run_level(case, "thread", target), want, case.tolerance)


# ---------------------------------------------------------------- what is reported

GATHER = """
kernel gather(X: f32[T, D], Idx: i32[M], out Y: f32[M, D])
  const D = 8
  param BM = 16
  grid (cdiv(M, BM)) as (t)
  block 1 waves
{
  idx = Idx[t*BM : +BM]
  Y[t*BM : +BM, :] <- X[idx, :]
}
"""


@pytest.mark.parametrize("level,target", [("block", None), *(("thread", t) for t in THREAD_TARGETS)])
def test_an_index_outside_its_dim_is_reported_at_the_gather(level: str, target: str | None) -> None:
    """Entry 13 of the index tile is 12, past the 10 rows of X, and no bound masks it."""
    prog = tiledsl.load(GATHER)
    idx = np.arange(20, dtype=np.int32) % 10
    idx[13] = 12
    report = prog.interpret(level=level, target=target, X=np.ones((10, 8), np.float32), Idx=idx,
                            Y=np.zeros((20, 8), np.float32))
    bad = [e for e in report.errors if e.kind == "out-of-bounds"]
    assert bad and bad[0].loc.line == 9 and bad[0].loc.col == 23, str(report)
    assert "'X' [10, 8]" in bad[0].message and "[12, 0]" in bad[0].message
    if level == "block":
        assert "masked with 'until BOUND'" in bad[0].message


def test_a_negative_index_is_reported_too() -> None:
    prog = tiledsl.load(GATHER)
    idx = np.zeros(16, dtype=np.int32)
    idx[3] = -1
    report = prog.interpret(X=np.ones((10, 8), np.float32), Idx=idx, Y=np.zeros((16, 8), np.float32))
    assert any(e.kind == "out-of-bounds" and "[-1, 0]" in e.message for e in report.errors), str(report)


SPILL = """
kernel spill(X: f32[R, C], Off: i32[G1], out Z: f32[R, C])
  const C
  param BR = 16
  grid (G1 - 1) as (g)
  block 1 waves
{
  lo = Off[g]
  hi = Off[g + 1]
  for r in lo .. hi step BR {
    Z[r : +BR{bound}, :] <- X[r : +BR, :]
  }
}
"""


@pytest.mark.parametrize("level,target", [("block", None), ("thread", "gfx942"), ("thread", "sm_90")])
def test_a_store_not_cut_at_the_group_end_spills_into_the_next_group(level: str, target: str | None) -> None:
    """Without 'until hi' the last tile of group 0 (5 rows) writes 11 rows of group 1 too: the
    coverage check counts them as double writes; with it, every row is written once."""
    off = np.array([0, 5, 30, 33], np.int32)
    x = np.random.default_rng(0).standard_normal((33, 4)).astype(np.float32)
    for bound, ok in (("", False), (" until hi", True)):
        prog = tiledsl.load(SPILL.replace("{bound}", bound), params={"C": 4})
        z = np.full((33, 4), np.nan, np.float32)
        report = prog.interpret(level=level, target=target, X=x, Off=off, Z=z)
        assert report.ok == ok, str(report)
        if ok:
            assert np.array_equal(z, x)
        else:
            assert any(e.kind == "output-double-write" and "'Z'" in e.message for e in report.errors)


def test_a_bound_short_of_the_group_leaves_holes() -> None:
    """'until hi - 1' drops each group's last row: output coverage reports those holes."""
    prog = tiledsl.load(SPILL.replace("{bound}", " until hi - 1"), params={"C": 4})
    off = np.array([0, 5, 30, 33], np.int32)
    report = prog.interpret(X=np.ones((33, 4), np.float32), Off=off, Z=np.zeros((33, 4), np.float32))
    holes = [e for e in report.errors if e.kind == "output-hole"]
    assert holes and "12 of 132 elements" in holes[0].message, str(report)


def test_blocks_past_a_sequence_skip_all_work() -> None:
    """varlen attention reads no key of another sequence, and a block whose query tile starts past
    its sequence's end reads nothing; with CAUSAL=1 no key block past the tile's last query."""
    case = varlen([37, 0, 100, 5], 32, 1)
    prog, tensors, scalars, dims = case.program().prepare_arguments(case.inputs(np.random.default_rng(0)))
    cu = [0, 37, 37, 137, 142]
    reads: dict[tuple[int, ...], list[int]] = {}

    def tracer(op: object, kind: str, name: str, index: np.ndarray, mask: np.ndarray,
               coords: list[np.ndarray]) -> None:
        if kind != "read" or name not in ("K", "Q"):
            return
        rows = np.broadcast_to(index, mask.shape) // (2 * 32)     # rows of [T, H, D]
        for b in range(mask.shape[0]):
            hit = rows[b][mask[b]]
            if hit.size:
                reads.setdefault(tuple(int(c[b]) for c in coords), []).extend(hit.tolist())

    it = BlockInterpreter(prog.lowered(), tensors, scalars, dims, Report(level="block"))
    it.tracer = tracer
    it.run()
    assert it.report.ok, str(it.report)
    for (bm, h, b), rows in reads.items():
        start, end = cu[b], cu[b + 1]
        assert start + bm * 64 < end, (bm, h, b)
        assert min(rows) >= start and max(rows) < min(end, start + (bm + 1) * 64)
    assert len(reads) == 2 * 4      # 8 of the 12 blocks own queries (the rest are past their sequence)


# ---------------------------------------------------------------- what distribution makes

def test_a_pipelined_gather_is_asynchronous_copies_with_per_row_addresses() -> None:
    """sm_90: the paged cache's rows go straight to LDS (cp.async), each register with its own
    page and slot index, 16-byte groups along the row."""
    kernel, _ = compile_thread_ir(CASES["paged-P16-BN32-S2"].program(), "sm_90")
    copies = [op for op in kernel.walk() if op.name == "async_copy"]
    assert copies
    for op in copies:
        page, slot = op.operands[1:3]
        assert page.type.n == slot.type.n == op.operands[-1].type.n and op.attrs["vec"] == 8
        assert page.owner.name == slot.owner.name == "reg_gather"
    ptx = CASES["paged-P16-BN32-S2"].program().compile(target="sm_90").asm
    assert "cp.async.cg.shared.global" in ptx or "cp.async.ca.shared.global" in ptx


@pytest.mark.parametrize("target", ["gfx942", "sm_90"])
def test_index_tiles_are_laid_out_as_the_gathered_axis(target: str) -> None:
    """The permutation's index tile is loaded in the slice of the data tile's layout: no conversion
    through LDS, and each data register picks its row index from a register of its own thread."""
    kernel, _ = layout_ir(CASES["permute-37x24-BM16-W2"].program(), target)
    loads = {op.operands[0].hint: op for op in kernel.walk() if op.name == "load"}
    assert loads["Perm"].result.type.layout.startswith("slice(1, ")
    assert kernel.attrs["lds_bytes"] == 0
    thread, _ = compile_thread_ir(CASES["permute-37x24-BM16-W2"].program(), target)
    assert any(op.name == "reg_gather" for op in thread.walk())


@pytest.mark.parametrize("name", ["permute-37x24-BM16-W2", "paged-P16-BN32-S2", "moe-BM32-W4", "varlen-causal1"])
def test_layout_ir_and_thread_ir_print_parse_print(name: str) -> None:
    prog = CASES[name].program()
    for target in ("gfx942", "sm_90"):
        kernel, _ = layout_ir(prog, target)
        text = print_op(kernel)
        assert print_op(parse_op(text)) == text
        thread, _ = compile_thread_ir(prog, target)
        text = print_op(thread)
        again = parse_op(text)
        verify_tree(again)
        assert print_op(again) == text


def test_groups_nested_runs_loops_of_per_block_trip_counts_together() -> None:
    """The block interpreter runs the blocks of a chunk together, each loop with an active mask;
    one block at a time gives the same answer (and so does NumPy, in the tests above)."""
    case = nested([5, 0, 25, 19, 1, 2, 7], [3, 0, 1, 3], 3)
    args = case.inputs(np.random.default_rng(0))
    prog, tensors, scalars, dims = case.program().prepare_arguments(args)
    together = BlockInterpreter(prog.lowered(), tensors, scalars, dims, Report(level="block"))
    together.run()
    apart_tensors = {k: type(v)(v.name, v.data.copy(), v.dtype, None if v.counts is None else v.counts * 0)
                     for k, v in tensors.items()}
    for t in apart_tensors.values():
        if t.counts is not None:
            t.data[...] = np.nan
    apart = BlockInterpreter(prog.lowered(), apart_tensors, scalars, dims, Report(level="block"))
    apart.run(chunk_elems=1)
    assert together.report.ok and apart.report.ok
    assert np.array_equal(tensors["T"].data, apart_tensors["T"].data)
    assert rel_error(tensors["T"].data, case.reference(args)["T"]) <= 1e-5


def test_moe_blocks_without_tokens_store_nothing() -> None:
    """Expert 1 has no tokens and the others fewer than the grid covers: the blocks past their
    expert's rows skip the if; the coverage check finds every token row written once."""
    case = moe(77, 5, 32, 48, 16, 1)
    args = case.inputs(np.random.default_rng(0))
    assert args["Off"][1] == args["Off"][2]
    report = case.program().interpret(**args)
    assert report.ok and report.blocks == -(-args["max_rows"] // 16) * 5, str(report)
    assert rel_error(args["Y"], case.reference(args)["Y"]) <= 1e-5
    assert offsets([1, 2]).tolist() == [0, 1, 3]
