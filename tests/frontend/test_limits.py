"""Limits every target shares, refused by sema at the right line and at once: blocks larger
than any target's, tiles over 2^20 elements, LDS tiles over any target's LDS, too many pipeline
stages. Each case used to run for minutes (or hang) at the thread level before anything said no."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.frontend.limits import MAX_PIPELINE_STAGES, MAX_TILE_ELEMENTS
from tiledsl.frontend.parser import MAX_DEPTH

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST_S = 20.0    # generous, so that a loaded CI machine does not flake; the checks take milliseconds


def _kernel(body: str, block: str = "block 4 waves", params: str = "param BM = 16, BN = 64") -> str:
    return f"""kernel k(X: f32[M, N], out Y: f32[M, N])
  {params}
  grid (cdiv(M, BM)) as (bm)
  {block}
{{
  {body}
  Y[bm*BM : +BM, 0 : +BN] <- X[bm*BM : +BM, 0 : +BN]
}}"""


def _refused(source: str | Path, params: dict | None = None) -> tiledsl.TdslError:
    start = time.perf_counter()
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(source, params=params)
    assert time.perf_counter() - start < FAST_S
    return info.value


def _at(err: tiledsl.TdslError, line: int, col: int) -> None:
    assert err.loc is not None and (err.loc.line, err.loc.col) == (line, col), err.format()


@pytest.mark.parametrize(("block", "fragment"), [
    ("block 33 waves", "a block of 33 waves has at least 1056 threads"),
    ("block 1000 waves", "more than any target allows (1024 threads)"),
    ("block 1056 threads", "a block of 1056 threads is more than any target allows (1024)"),
    ("block 48 threads", "a block of 48 threads is not a whole number of waves on any target"),
    ("block 0 waves", "the block size must be a positive integer"),
])
def test_a_block_no_target_can_run_is_refused_at_the_block_line(block: str, fragment: str) -> None:
    err = _refused(_kernel("", block=block))
    assert fragment in err.message
    _at(err, 4, 3)


@pytest.mark.parametrize("block", ["block 32 waves", "block 1024 threads", "block 96 threads", "block 1 waves"])
def test_a_block_some_target_can_run_passes_sema(block: str) -> None:
    tiledsl.load(_kernel("", block=block))


def test_a_block_size_from_a_param_is_refused_at_the_block_line() -> None:
    err = _refused(_kernel("", block="block W waves", params="param BM = 16, BN = 64, W = 4"), {"W": 64})
    assert "a block of 64 waves" in err.message
    _at(err, 4, 3)


def test_softmax_with_a_million_wide_tile_is_refused_at_the_load() -> None:
    err = _refused(EXAMPLES / "softmax.tdsl", {"BN": 1_000_000})
    assert err.message == ("this f32[16,1000000] tile has 16000000 elements; a tile may have at most "
                           f"{MAX_TILE_ELEMENTS} (2^20)")
    assert err.diagnostics[0].notes == ["use a smaller tile: lower BN (now 1000000)"]
    _at(err, 12, 9)        # x = X[bm*BM : +BM, n : +BN] pad -inf


@pytest.mark.parametrize(("expr", "col", "elements"), [
    ("fill(0, f32[2048, 1024])", 7, 2 * MAX_TILE_ELEMENTS),
    ("iota(2000000)", 7, 2_000_000),
    ("arange(5, 1048582)", 7, 1_048_577),
    ("dot(fill(0.0, f16[2048, 16]), fill(0.0, f16[16, 1024]))", 7, 2 * MAX_TILE_ELEMENTS),
])
def test_a_huge_tile_is_refused_where_it_is_made(expr: str, col: int, elements: int) -> None:
    err = _refused(_kernel(f"a = {expr}"))
    assert f"tile has {elements} elements" in err.message
    _at(err, 6, col)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4096), st.integers(1, 4096))
def test_a_tile_is_accepted_exactly_when_it_has_at_most_2_to_the_20_elements(m: int, n: int) -> None:
    source = _kernel(f"a = fill(1.0, f32[{m}, {n}])")
    if m * n <= MAX_TILE_ELEMENTS:
        tiledsl.load(source)
    else:
        assert f"tile has {m * n} elements" in _refused(source).message


def test_an_lds_tile_larger_than_any_targets_lds_is_refused_at_its_declaration() -> None:
    err = _refused(_kernel("lds t: f32[256, 256]"))
    assert err.message == ("LDS tile 't' takes 262144 bytes, more than the LDS of any target "
                           "(232448 bytes on sm_90)")
    _at(err, 6, 3)
    tiledsl.load(_kernel("lds t: f32[256, 224]"))      # 229376 bytes: fits sm_90


def test_too_many_pipeline_stages_are_refused_at_the_stage_count() -> None:
    err = _refused(EXAMPLES / "attention.tdsl", {"STAGES": MAX_PIPELINE_STAGES + 1, "D": 64})
    assert err.message == (f"{MAX_PIPELINE_STAGES + 1} pipeline stages is more than the {MAX_PIPELINE_STAGES} "
                           "this compiler allows")
    lines = (EXAMPLES / "attention.tdsl").read_text().splitlines()
    _at(err, next(i for i, text in enumerate(lines, 1) if "pipeline STAGES {" in text), 37)
    tiledsl.load(EXAMPLES / "attention.tdsl", params={"STAGES": MAX_PIPELINE_STAGES, "D": 64})


def test_a_loop_step_that_is_zero_or_negative_at_compile_time_is_refused() -> None:
    for step in ("0", "-2", "S"):
        err = _refused(_kernel(f"for i in 0 .. N step {step} {{ sync }}", params="param BM = 16, BN = 64, S = 0"))
        assert "the loop step must be positive" in err.message
        _at(err, 6, 24)


def _nested_loops(depth: int) -> str:
    body = "acc = acc + 1.0"
    for i in range(depth):
        body = f"for i{i} in 0 .. 1 {{ {body} }}"
    return f"kernel k(out Y: f32[16])\n  grid (1) as (b)\n  block 1 waves\n{{\n  acc = fill(0, f32[16])\n" \
           f"  {body}\n  Y[0 : +16] <- acc\n}}"


def _long_sum(terms: int) -> str:
    return "kernel k(out Y: f32[16])\n  grid (1) as (b)\n  block 1 waves\n{\n" \
           f"  Y[0 : +16] <- fill(0, f32[16]) + ({' + '.join(['1.0'] * terms)})\n}}"


@pytest.mark.parametrize("source", [_nested_loops(160), _long_sum(400), _long_sum(20000)],
                         ids=["160 loops", "400 terms", "20000 terms"])
def test_a_program_nested_too_deep_is_refused_instead_of_overflowing_the_stack(source: str) -> None:
    err = _refused(source)
    assert err.message == f"the program nests more than {MAX_DEPTH} levels deep here"
    assert err.loc is not None and err.loc.line in (5, 6)


@pytest.mark.parametrize("source", [_nested_loops(140), _long_sum(290)], ids=["140 loops", "290 terms"])
def test_a_program_just_within_the_depth_goes_through_every_level(source: str) -> None:
    prog = tiledsl.load(source)
    y = np.zeros(16, np.float32)
    assert prog.interpret(Y=y).ok
    want = 1.0 if "for i" in source else 290.0
    np.testing.assert_array_equal(y, want)
    y[:] = 0
    assert prog.interpret(level="thread", target="gfx942", Y=y).ok
    np.testing.assert_array_equal(y, want)
    assert "ret" in prog.compile(target="sm_90").asm
