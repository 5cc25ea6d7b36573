"""Each check of the block interpreter has a program that trips it, and the report says
which check, at which source line and (where it knows) in which block. The corrected
programs run clean."""

from __future__ import annotations

import numpy as np
import pytest

import tiledsl
from tiledsl.interp.report import InterpError

M = 40   # not a multiple of the 16-row tiles below


def line_of(src: str, marker: str) -> int:
    """The 1-based line of ``src`` holding ``marker``."""
    return next(i for i, s in enumerate(src.splitlines(), 1) if marker in s)


def errors_of(report: tiledsl.Report, kind: str) -> list[InterpError]:
    return [e for e in report.errors if e.kind == kind]


def rows(m: int = M, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(m * n, dtype=np.float32).reshape(m, n)
    return x, np.full((m, n), np.nan, dtype=np.float32)


# ---------------------------------------------------------------- out of bounds

OOB = """\
kernel shift(X: f32[M, N], out Y: f32[M, N])
  grid (M) as (r)
  block 1 waves
{
  Y[r, 0 : +16] <- X[r + SHIFT, 0 : +16]     # the last row reads one past the end
}
"""


def test_unmasked_scalar_index_past_the_end() -> None:
    x, y = rows()
    report = tiledsl.load(OOB.replace("SHIFT", "1")).interpret(X=x, Y=y)
    assert not report.ok
    (err,) = errors_of(report, "out-of-bounds")
    assert err.loc is not None and err.loc.line == line_of(OOB, "X[r + SHIFT")
    assert err.loc.col == OOB.splitlines()[err.loc.line - 1].index("X[") + 1
    assert err.block == (M - 1,)
    assert "'X'" in err.message and f"[{M}, 0]" in err.message and "1 blocks" in err.message
    # the in-bounds rows were still computed
    np.testing.assert_array_equal(y[:-1], x[1:])


def test_unmasked_negative_index() -> None:
    x, y = rows()
    report = tiledsl.load(OOB.replace("SHIFT", "(0 - 1)")).interpret(X=x, Y=y)
    (err,) = errors_of(report, "out-of-bounds")
    assert err.block == (0,)
    assert "[-1, 0]" in err.message


def test_unmasked_store_past_the_end() -> None:
    src = OOB.replace("Y[r, 0 : +16] <- X[r + SHIFT, 0 : +16]", "Y[r + 1, 0 : +16] <- X[r, 0 : +16]")
    x, y = rows()
    report = tiledsl.load(src).interpret(X=x, Y=y)
    (err,) = errors_of(report, "out-of-bounds")
    assert err.loc is not None and err.loc.line == line_of(src, "Y[r + 1") and err.loc.col == 3
    assert err.block == (M - 1,) and "'Y'" in err.message
    # ... and row 0 is a hole, since nobody stores to it
    (hole,) = errors_of(report, "output-hole")
    assert "16 of 640 elements of 'Y' never written" in hole.message


EMPTY = """
kernel k(out Y: f32[N], out S: f32[N])
  const N = 0
  grid (3) as (g)
  block 1 waves
{
  Y[g] <- 1.0
  atomic_add(S[g], 1.0)
}
"""


@pytest.mark.parametrize("target", [None, "gfx942", "sm_90"])
def test_an_unmasked_store_to_an_empty_tensor_is_reported(target: str | None) -> None:
    """Found by the mutation fuzz (a const dim mutated to 0): the thread level wrote the
    out-of-bounds elements to position 0 of a tensor that has none (an IndexError)."""
    prog = tiledsl.load(EMPTY)
    kw = {"level": "thread", "target": target} if target else {}
    report = prog.interpret(Y=np.zeros(0, np.float32), S=np.zeros(0, np.float32), **kw)
    errs = errors_of(report, "out-of-bounds")
    assert {e.loc.line for e in errs} == {line_of(EMPTY, "Y[g"), line_of(EMPTY, "atomic_add")}
    assert all("'Y'" in e.message or "'S'" in e.message for e in errs)


def test_masked_slices_past_the_end_are_fine() -> None:
    x, y = rows()
    report = tiledsl.load(OOB.replace("SHIFT", "0")).interpret(X=x, Y=y)
    assert report.ok, str(report)
    np.testing.assert_array_equal(y, x)


# ---------------------------------------------------------------- uninitialised LDS

LDS = """\
kernel staged(X: f32[M, N], out Y: f32[M, N])
  grid (cdiv(M, 16)) as (b)
  block 4 waves
{
  lds t: f32[16, 16]
  COPY
  sync
  Y[b*16 : +16, 0 : +16] <- t
}
"""


def test_lds_read_before_any_write() -> None:
    src = LDS.replace("COPY", "")
    x, y = rows()
    report = tiledsl.load(src).interpret(X=x, Y=y)
    errs = errors_of(report, "uninitialized-lds")
    assert errs, str(report)
    err = errs[0]
    line = line_of(src, "<- t")
    assert err.loc is not None and err.loc.line == line
    assert err.loc.col == src.splitlines()[line - 1].index("t", 20) + 1
    assert err.block == (0,)
    assert "'t'" in err.message and "256 elements" in err.message


def test_lds_written_only_in_some_blocks() -> None:
    src = LDS.replace("COPY", "if b > 0 { t <- X[b*16 : +16, 0 : +16] }")
    x, y = rows()
    report = tiledsl.load(src).interpret(X=x, Y=y)
    (err,) = errors_of(report, "uninitialized-lds")
    assert err.block == (0,)      # only block 0 skipped the copy
    assert err.loc is not None and err.loc.line == line_of(src, "<- t")
    np.testing.assert_array_equal(y[16:], x[16:])


def test_lds_written_before_read_is_fine() -> None:
    src = LDS.replace("COPY", "t <- X[b*16 : +16, 0 : +16]")
    x, y = rows()
    report = tiledsl.load(src).interpret(X=x, Y=y)
    assert report.ok, str(report)
    np.testing.assert_array_equal(y, x)


# ---------------------------------------------------------------- output coverage

COVER = """\
kernel cover(X: f32[M], out Y: f32[M])
  grid (GRID) as (b)
  block 1 waves
{
  Y[b*STEP : +WIDTH] <- X[b*STEP : +WIDTH]
}
"""


def cover(grid: str, step: int, width: int) -> str:
    return COVER.replace("GRID", grid).replace("STEP", str(step)).replace("WIDTH", str(width))


def run_cover(src: str) -> tuple[tiledsl.Report, np.ndarray, np.ndarray]:
    x = np.arange(M, dtype=np.float32)
    y = np.full(M, -1.0, dtype=np.float32)
    return tiledsl.load(src).interpret(X=x, Y=y), x, y


def test_output_hole_from_a_grid_too_small() -> None:
    src = cover("M // 16", 16, 16)          # 40 // 16 = 2 blocks cover 32 of 40 elements
    report, x, y = run_cover(src)
    (err,) = errors_of(report, "output-hole")
    assert err.loc is not None and err.loc.line == line_of(src, "<- X[")
    assert "8 of 40 elements of 'Y' never written" in err.message
    assert "first at [[32], [33], [34], [35]]" in err.message
    assert not errors_of(report, "output-double-write")
    np.testing.assert_array_equal(y[:32], x[:32])


def test_output_hole_from_a_store_that_covers_half_the_tile() -> None:
    src = cover("cdiv(M, 16)", 16, 8)
    report, _, y = run_cover(src)
    (err,) = errors_of(report, "output-hole")
    assert err.loc is not None and err.loc.line == line_of(src, "<- X[")
    assert "16 of 40 elements of 'Y' never written" in err.message
    assert (y[8:16] == -1).all()


def test_output_double_write_from_overlapping_tiles() -> None:
    src = cover("cdiv(M, 8)", 8, 16)        # each block writes 16 elements, 8 apart
    report, x, y = run_cover(src)
    (err,) = errors_of(report, "output-double-write")
    assert err.loc is not None and err.loc.line == line_of(src, "<- X[") and err.loc.col == 3
    assert "32 of 40 elements of 'Y' written more than once" in err.message
    assert not errors_of(report, "output-hole")
    np.testing.assert_array_equal(y, x)


def test_double_write_inside_one_block() -> None:
    src = """\
kernel twice(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  Y[b*16 : +16] <- X[b*16 : +16]
  Y[b*16 : +16] <- X[b*16 : +16]
}
"""
    report, _, _ = run_cover(src)
    (err,) = errors_of(report, "output-double-write")
    assert "40 of 40 elements" in err.message


def test_exact_cover_is_ok() -> None:
    report, x, y = run_cover(cover("cdiv(M, 16)", 16, 16))
    assert report.ok and report.blocks == 3
    np.testing.assert_array_equal(y, x)


def test_report_text_names_kind_location_and_block() -> None:
    x, y = rows()
    report = tiledsl.load(OOB.replace("SHIFT", "1")).interpret(X=x, Y=y)
    text = str(report)
    assert f"<string>:{line_of(OOB, 'SHIFT')}:" in text
    assert "error: out-of-bounds:" in text and f"block ({M - 1})" in text


CORRECT = [OOB.replace("SHIFT", "0"), LDS.replace("COPY", "t <- X[b*16 : +16, 0 : +16]"),
           cover("cdiv(M, 16)", 16, 16)]


@pytest.mark.parametrize("src", CORRECT, ids=["shift", "staged", "cover"])
def test_correct_programs_are_ok_at_every_size(src: str) -> None:
    prog = tiledsl.load(src)
    for m in (1, 15, 16, 17, 33):
        if "X: f32[M, N]" in src:
            x, y = rows(m)
        else:
            x, y = np.arange(m, dtype=np.float32), np.zeros(m, dtype=np.float32)
        report = prog.interpret(X=x, Y=y)
        assert report.ok, f"M={m}: {report}"
        np.testing.assert_array_equal(y, x)


# ---------------------------------------------------------------- run-time mistakes

STEP = """\
kernel stepper(X: f32[M], out Y: f32[M], st: i32)
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  acc = fill(0.0, f32[16])
  for n in 0 .. M step STEP { acc = acc + X[n : +16] }
  Y[b*16 : +16] <- acc
}
"""


@pytest.mark.parametrize(("step", "message"), [("st", "loop step 0 is not positive"),
                                               ("b", "loop step is not positive in some block")])
def test_non_positive_run_time_loop_step_is_a_located_error(step: str, message: str) -> None:
    src = STEP.replace("STEP", step)
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(src).interpret(X=np.ones(32, np.float32), Y=np.zeros(32, np.float32), st=0)
    loc = info.value.loc
    assert info.value.message == message
    assert loc is not None and (loc.line, loc.col) == (line_of(src, "for n"), 3)


def test_positive_run_time_loop_step_runs() -> None:
    y = np.zeros(32, np.float32)
    report = tiledsl.load(STEP.replace("STEP", "st")).interpret(X=np.ones(32, np.float32), Y=y, st=16)
    assert report.ok and (y == 2.0).all()


# ---------------------------------------------------------------- blocks run in chunks

@pytest.fixture
def one_block_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the interpreter run the grid one block at a time (normally many blocks share one
    NumPy op), so that chunk boundaries are crossed everywhere."""
    from tiledsl.interp.block import BlockInterpreter
    run = BlockInterpreter.run
    monkeypatch.setattr(BlockInterpreter, "run", lambda self, chunk_elems=1: run(self, chunk_elems=1))


def test_checks_in_later_chunks_name_the_right_block(one_block_per_chunk: None) -> None:
    x, y = rows()
    report = tiledsl.load(OOB.replace("SHIFT", "1")).interpret(X=x, Y=y)
    (err,) = errors_of(report, "out-of-bounds")
    assert err.block == (M - 1,) and report.blocks == M
    report, _, _ = run_cover(cover("cdiv(M, 8)", 8, 16))
    (dbl,) = errors_of(report, "output-double-write")
    assert "32 of 40 elements" in dbl.message


def test_chunked_and_vectorised_runs_agree(one_block_per_chunk: None) -> None:
    from pathlib import Path
    src = Path(__file__).resolve().parents[2] / "examples" / "softmax.tdsl"
    x = np.random.default_rng(0).standard_normal((37, 50)).astype(np.float32)
    y = np.zeros_like(x)
    assert tiledsl.load(src, params={"BM": 4, "BN": 16}).interpret(X=x, Y=y).ok
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5)
