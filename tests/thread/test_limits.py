"""The target's limits, refused when the thread level starts (``tiledsl.thread.limits``), at the
right line and at once: a block over the target's threads or not a whole number of its waves, an
LDS tile over its LDS, a register tile no thread can hold, a pipelined loop whose buffers cannot
fit. Before, these hung in layout assignment or ran for minutes before LDS allocation said no."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.targets import get_target
from tiledsl.thread import compile_thread_ir
from tiledsl.thread.limits import check_limits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST_S = 20.0    # generous, so that a loaded CI machine does not flake; the checks take milliseconds

COPY = """kernel copy(X: f32[M, N], out Y: f32[M, N])
  param BM = 16, BN = 64
  grid (cdiv(M, BM)) as (bm)
  {block}
{{
  x = X[bm*BM : +BM, 0 : +BN]
  Y[bm*BM : +BM, 0 : +BN] <- x + 1.0
}}"""


def _refused(prog: tiledsl.Program, target: str) -> tiledsl.TdslError:
    start = time.perf_counter()
    with pytest.raises(tiledsl.TdslError) as info:
        compile_thread_ir(prog, target)
    assert time.perf_counter() - start < FAST_S
    return info.value


def _at(err: tiledsl.TdslError, line: int, col: int) -> None:
    assert err.loc is not None and (err.loc.line, err.loc.col) == (line, col), err.format()


def _check(prog: tiledsl.Program, target: str) -> None:
    check_limits(prog.lowered(), get_target(target))


def test_17_waves_of_64_lanes_are_refused_at_the_block_line_on_gfx942() -> None:
    prog = tiledsl.load(COPY.format(block="block 17 waves"))
    err = _refused(prog, "gfx942")
    assert err.message == ("a block of 17 waves is 1088 threads on gfx942 (64-lane waves); a block has at "
                           "most 1024 threads there")
    assert err.diagnostics[0].notes == ["use at most 16 waves on gfx942"]
    _at(err, 4, 3)
    assert "block 17 waves" in err.format()          # the source line is quoted


def test_the_thread_interpreter_refuses_the_block_too() -> None:
    prog = tiledsl.load(COPY.format(block="block W waves").replace("BN = 64", "BN = 64, W = 4"), params={"W": 17})
    x, y = np.zeros((20, 64), np.float32), np.zeros((20, 64), np.float32)
    start = time.perf_counter()
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(level="thread", target="gfx942", X=x, Y=y)
    assert time.perf_counter() - start < FAST_S
    assert "a block of 17 waves is 1088 threads on gfx942" in info.value.message
    _at(info.value, 4, 3)


@pytest.mark.parametrize("target", ["gfx1100", "sm_90", "generic"])
def test_17_waves_of_32_lanes_fit_and_run(target: str) -> None:
    prog = tiledsl.load(COPY.format(block="block 17 waves"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 64)).astype(np.float32)
    y = np.zeros_like(x)
    report = prog.interpret(level="thread", target=target, X=x, Y=y)
    assert report.ok, str(report)
    np.testing.assert_array_equal(y, x + 1.0)


def test_16_waves_of_64_lanes_are_the_most_gfx942_takes() -> None:
    _check(tiledsl.load(COPY.format(block="block 16 waves")), "gfx942")


@pytest.mark.parametrize(("target", "ok"), [("gfx942", False), ("gfx90a", False), ("gfx1100", True),
                                             ("sm_90", True), ("generic", True)])
def test_a_thread_count_must_be_whole_waves_of_the_target(target: str, ok: bool) -> None:
    prog = tiledsl.load(COPY.format(block="block 96 threads"))
    if ok:
        _check(prog, target)
        return
    err = _refused(prog, target)
    assert err.message == f"a block of 96 threads is not a whole number of 64-lane waves on {target}"
    _at(err, 4, 3)


def test_an_lds_tile_over_the_targets_lds_is_refused_at_its_declaration() -> None:
    source = """kernel k(X: f32[M, 256], out Y: f32[M, 256])
  grid (cdiv(M, 128)) as (bm)
  block 4 waves
{
  lds t: f32[128, 256]
  t <- X[bm*128 : +128, :]
  sync
  Y[bm*128 : +128, :] <- t
}"""
    prog = tiledsl.load(source)
    err = _refused(prog, "gfx942")
    assert err.message == "LDS tile 't' takes 131072 bytes but gfx942 has 65536 bytes of LDS"
    _at(err, 5, 3)
    _check(prog, "sm_90")       # 227 KiB there


def test_softmax_with_a_tile_no_thread_can_hold_is_refused_at_the_load() -> None:
    prog = tiledsl.load(EXAMPLES / "softmax.tdsl", params={"BN": 65536})
    err = _refused(prog, "sm_90")
    assert err.message == ("this f32[16,65536] tile needs at least 8192 32-bit registers in each of the 128 "
                           "threads of the block on sm_90, which hold at most 255")
    assert err.diagnostics[0].notes == ["use a smaller tile: lower BN (now 65536), or more waves (now 4)"]
    _at(err, 12, 9)
    err = _refused(prog, "gfx942")
    assert "4096 32-bit registers in each of the 256 threads of the block on gfx942, which hold at most 512" \
        in err.message


@pytest.mark.parametrize(("target", "threads", "limit"), [("sm_90", 128, 255), ("gfx1100", 128, 256),
                                                          ("gfx942", 256, 512), ("generic", 128, 255)])
def test_the_register_bound_is_exact_at_the_limit(target: str, threads: int, limit: int) -> None:
    # softmax's widest tile is f32[BM, BN]: BM * BN / threads registers a thread.
    fits = tiledsl.load(EXAMPLES / "softmax.tdsl", params={"BM": 1, "BN": limit * threads})
    _check(fits, target)
    over = tiledsl.load(EXAMPLES / "softmax.tdsl", params={"BM": 1, "BN": limit * threads + 1})
    with pytest.raises(tiledsl.TdslError, match=f"needs at least {limit + 1} 32-bit registers"):
        _check(over, target)


def test_an_lds_tile_read_for_a_dot_is_not_counted_as_registers() -> None:
    # ks^T is read k-step by k-step beside the matrix instructions (or by wgmma from LDS): the
    # 64x512 f16 tile would need 512 registers in each of 32 threads if it were held whole.
    source = """kernel k(A: f16[M, 512], B: f16[64, 512], out C: f32[M, 64])
  grid (cdiv(M, 16)) as (bm)
  block 1 waves
{
  lds ks: f16[64, 512]
  ks <- B[:, :]
  sync
  C[bm*16 : +16, :] <- dot(A[bm*16 : +16, :], ks^T)
}"""
    _check(tiledsl.load(source), "sm_90")


def _attention_line(text: str) -> int:
    """The line of examples/attention.tdsl that holds ``text``."""
    lines = (EXAMPLES / "attention.tdsl").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_attention_with_a_256_wide_accumulator_is_refused_on_sm_90() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 256})
    err = _refused(prog, "sm_90")
    assert err.message.startswith("this f32[128,256] tile needs at least 256 32-bit registers")
    _at(err, _attention_line("acc = fill(0, f32[BM, D]) @ rows"), 9)


def test_a_pipelined_loop_whose_buffers_cannot_fit_is_refused_at_the_loop() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "STAGES": 16})
    err = _refused(prog, "sm_90")
    assert err.message == ("this loop, pipelined with 16 stages, needs at least 262144 bytes of LDS (16 buffers "
                           "of ks 8192 B and vs 8192 B) but sm_90 has 232448")
    assert err.diagnostics[0].notes[0] == "at most 14 stages fit with these tiles on sm_90"
    _at(err, _attention_line("for n in 0 .. hi step BN pipeline STAGES"), 3)


def test_the_tiles_live_across_a_pipelined_loop_count_against_its_lds() -> None:
    # QREGS=0: qs (16 KiB) is read in the loop, so it lives beside the 13 stage buffers.
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "STAGES": 14, "QREGS": 0})
    err = _refused(prog, "sm_90")
    assert "needs at least 245760 bytes of LDS (14 buffers of ks 8192 B and vs 8192 B, and qs 16384 B)" \
        in err.message
    assert err.diagnostics[0].notes[0] == "at most 13 stages fit with these tiles on sm_90"


def test_pipeline_stages_cost_no_lds_where_the_loop_is_run_as_written() -> None:
    # gfx942 has no asynchronous copies: the loop is not pipelined, so 16 stages cost nothing.
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "STAGES": 16})
    _check(prog, "gfx942")


def test_layout_assignment_says_why_when_no_default_layout_fits_instead_of_looping() -> None:
    # What the 17-wave block did before check_limits stopped it: every default layout was
    # refused, and layout assignment offered the same value one again, forever.
    from tiledsl.layout import LayoutError
    from tiledsl.thread import layouts
    from tiledsl.thread.context import ThreadContext
    kernel = parse_op(print_op(tiledsl.load(COPY.format(block="block 17 waves")).lowered()))
    start = time.perf_counter()
    with pytest.raises(LayoutError, match="a block of 17 waves of 64 lanes does not fit on gfx942"):
        layouts.run(kernel, ThreadContext.for_kernel(kernel, "gfx942"))
    assert time.perf_counter() - start < FAST_S


def test_every_target_record_says_how_many_registers_a_thread_holds() -> None:
    from tiledsl.targets import TARGETS
    want = {"sm_80": 255, "sm_90": 255, "sm_90a": 255, "gfx90a": 512, "gfx942": 512, "gfx1100": 256, "gfx1030": 256,
            "generic": 255}
    assert {name: t.max_registers_per_thread for name, t in TARGETS.items()} == want
