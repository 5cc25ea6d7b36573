"""Seeded tiling bugs: each is found, at both levels where it applies, and reported at
the source line of the op that commits it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tiledsl

ATTENTION = (Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl").read_text()
TARGETS = ["gfx942", "gfx1100", "sm_90", "generic"]


def _line_of(src: str, pattern: str) -> int:
    return next(i + 1 for i, line in enumerate(src.splitlines()) if re.search(pattern, line))


def _attention_args(n: int = 100, d: int = 32) -> dict:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, n, d)).astype(np.float16) for _ in range(3))
    return {"Q": q, "K": k, "V": v, "O": np.zeros_like(q), "L": np.zeros(q.shape[:3], np.float32), "scale": 0.2}


@pytest.mark.parametrize("target", TARGETS)
def test_attention_without_the_sync_after_the_copies_races(target: str) -> None:
    lines = ATTENTION.splitlines()
    copy_v = _line_of(ATTENTION, r"vs <- V")
    assert lines[copy_v].strip().startswith("sync")
    broken = "\n".join(line for i, line in enumerate(lines) if i != copy_v)
    # Unpipelined: a pipelined loop places its own barrier after the wait for the copies
    # (tests/thread/test_pipeline.py seeds the bugs a pipeline schedule can have).
    prog = tiledsl.load(broken, params={"BM": 64, "BN": 32, "STAGES": 1})
    report = prog.interpret(level="thread", target=target, **_attention_args())
    races = [e for e in report.errors if e.kind == "lds-race"]
    assert races, str(report)
    read_ks = _line_of(broken, r"dot\(q, ks\^T\)")
    assert races[0].loc.line == read_ks
    assert "ks" in races[0].message and races[0].wave is not None and races[0].lane is not None
    # The block level cannot see races: it runs each block's ops in order.
    assert prog.interpret(**_attention_args()).ok


READ_BEFORE_WRITE = """
kernel k(X: f32[M, N], out Y: f32[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM)) as (i)
  block 2 waves
{
  lds t: f32[BM, BN]
  y = t                                   # nothing has written t yet
  t <- X[i*BM : +BM, 0 : +BN]
  Y[i*BM : +BM, 0 : +BN] <- y
}
"""


@pytest.mark.parametrize("level", ["block", "thread"])
def test_lds_read_before_write(level: str) -> None:
    prog = tiledsl.load(READ_BEFORE_WRITE)
    x = np.ones((20, 32), np.float32)
    report = prog.interpret(level=level, X=x, Y=np.zeros_like(x))
    errs = [e for e in report.errors if e.kind == "uninitialized-lds"]
    assert errs and errs[0].loc.line == _line_of(READ_BEFORE_WRITE, r"y = t")


def test_nan_fill_poisons_what_an_uninitialised_read_returns() -> None:
    prog = tiledsl.load(READ_BEFORE_WRITE)
    x = np.ones((20, 32), np.float32)
    y = np.zeros_like(x)
    prog.interpret(level="thread", nan_fill=True, X=x, Y=y)
    assert np.isnan(y).all()


HOLE = """
kernel k(X: f32[M, N], out Y: f32[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM)) as (i)
  block 2 waves
{
  x = X[i*BM : +BM, 0 : +BN]
  Y[i*BM : +BM, 0 : +BN] <- x              # columns past BN are never written
}
"""

OVERLAP = """
kernel k(X: f32[M, N], out Y: f32[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM), 1) as (i, j)
  block 2 waves
{
  x = X[i*(BM//2) : +BM, 0 : +BN]
  Y[i*(BM//2) : +BM, 0 : +BN] <- x         # tiles overlap by half
}
"""

OOB = """
kernel k(X: f32[M, N], out Y: f32[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM)) as (i)
  block 2 waves
{
  y = fill(0, f32[BM, BN])
  for r in 0 .. BM {
    y = y + X[i*BM + r, 0 : +BN][_, :]     # row index unmasked: past M at the tail
  }
  Y[i*BM : +BM, 0 : +BN] <- y
}
"""


@pytest.mark.parametrize("level", ["block", "thread"])
@pytest.mark.parametrize("program, kind, pattern, shape", [
    (HOLE, "output-hole", r"Y\[.*<-", (20, 40)),
    (OVERLAP, "output-double-write", r"Y\[.*<-", (40, 32)),
    (OOB, "out-of-bounds", r"y = y \+ X", (20, 32)),
])
def test_coverage_and_bounds(level: str, program: str, kind: str, pattern: str, shape: tuple) -> None:
    prog = tiledsl.load(program)
    x = np.ones(shape, np.float32)
    report = prog.interpret(level=level, target="sm_90" if level == "thread" else None, X=x,
                            Y=np.zeros_like(x))
    errs = [e for e in report.errors if e.kind == kind]
    assert errs, str(report)
    assert errs[0].loc.line == _line_of(program, pattern)
    if kind == "out-of-bounds":
        assert errs[0].block == (1,)


def test_correct_programs_report_nothing() -> None:
    prog = tiledsl.load(OOB.replace("i*BM + r,", "min(i*BM + r, M - 1),"))
    x = np.ones((32, 32), np.float32)
    assert prog.interpret(level="thread", target="gfx942", X=x, Y=np.zeros_like(x)).ok


def test_shuffled_block_order_gives_the_same_result() -> None:
    prog = tiledsl.load(Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl",
                        params={"BM": 64, "BN": 32})
    a, b = _attention_args(150), _attention_args(150)
    assert prog.interpret(level="thread", target="gfx942", **a).ok
    assert prog.interpret(level="thread", target="gfx942", shuffle_blocks=True, seed=3, **b).ok
    assert np.array_equal(a["O"], b["O"])
