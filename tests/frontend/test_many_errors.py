"""Sema reports every independent error of a kernel in one run (as clang does), not only the
first: a failed statement is skipped, the names it defines are poisoned so that their uses are
not reported again, and checking stops after ``MAX_ERRORS``."""

from __future__ import annotations

import pytest

import tiledsl
from tiledsl.diagnostics import TdslError
from tiledsl.frontend.sema import MAX_ERRORS
from tiledsl.ir.types import DTYPES

HEADER = """\
kernel k(X: f32[M, N], out Y: f32[M, N])
  param BM = 32, BN = 64
  grid (cdiv(M, BM)) as (bm)
  block 4 waves
{
  x = X[bm*BM : +BM, 0 : +BN]
"""


def errors_of(body: str) -> TdslError:
    with pytest.raises(TdslError) as info:
        tiledsl.load(HEADER + body + "}\n")
    return info.value


def test_independent_statements_each_report_their_error() -> None:
    e = errors_of("""\
  a = x + undefined_one
  c = fill(0, f32[BM, 7]) + x
  lds s: f99[BM, BN]
  Y[bm*BM : +BM, 0 : +BN] <- x + nope
""")
    assert str(e) == f"""\
<string>:7:11: error: 'undefined_one' is not defined
    a = x + undefined_one
            ^~~~~~~~~~~~~
<string>:8:27: error: '+' of shapes [32,7] and [32,64]: dims 7 and 64 do not match
    c = fill(0, f32[BM, 7]) + x
                            ^
<string>:9:10: error: unknown dtype 'f99'
    lds s: f99[BM, BN]
           ^~~
  note: dtypes: {', '.join(DTYPES)}; a dtype parameter is declared in the header, e.g. 'dtype T = f16'
<string>:10:34: error: 'nope' is not defined
    Y[bm*BM : +BM, 0 : +BN] <- x + nope
                                   ^~~~"""
    assert e.loc is not None and (e.loc.line, e.loc.col) == (7, 11)     # the first, as before
    assert e.message == "'undefined_one' is not defined"


def test_uses_of_a_failed_definition_are_not_reported_again() -> None:
    # 'a' failed: 'b = a * 2', the store of b and the loop that carries a are skipped silently.
    e = errors_of("""\
  a = x + nope
  b = a * 2
  for i in 0 .. 4 {
    a = a + b
  }
  lds s: f32[BM, BN]
  s <- a
  Y[bm*BM : +BM, 0 : +BN] <- x + also_undefined
""")
    assert [(d.loc.line, d.message) for d in e.diagnostics] == [
        (7, "'nope' is not defined"), (14, "'also_undefined' is not defined")]


def test_both_names_of_a_failed_two_result_assignment_are_poisoned() -> None:
    e = errors_of("""\
  v, i = argmax(x * nope, axis=1)
  Y[bm*BM : +BM, 0 : +BN] <- fill(0, f32[BM, BN]) + v[:, _] + f32(i)[:, _]
  Y[bm*BM : +BM, 0 : +BN] <- x * again
""")
    assert [(d.loc.line, d.message) for d in e.diagnostics] == [
        (7, "'nope' is not defined"), (9, "'again' is not defined")]


def test_an_error_inside_a_loop_and_one_after_it() -> None:
    # The loop's scope and block are left behind cleanly: the statement after the loop is
    # checked in the kernel's scope ('i' is not visible there).
    e = errors_of("""\
  acc = fill(0, f32[BM, BN])
  for i in 0 .. 4 {
    acc = acc + x * undefined_in_loop
  }
  Y[bm*BM : +BM, 0 : +BN] <- x + i
  Y[bm*BM : +BM, 0 : +BN] <- acc
""")
    assert [(d.loc.line, d.loc.col, d.message) for d in e.diagnostics] == [
        (9, 21, "'undefined_in_loop' is not defined"), (11, 34, "'i' is not defined")]


def test_a_loop_whose_carried_value_changes_type_poisons_it() -> None:
    e = errors_of("""\
  acc = fill(0, f32[BM, BN])
  for i in 0 .. 4 {
    acc = fill(0, f32[BM, 1])
  }
  Y[bm*BM : +BM, 0 : +BN] <- acc
  Y[bm*BM : +BM, 0 : +BN] <- x * wrong
""")
    assert [(d.loc.line, d.message.split(":")[0]) for d in e.diagnostics] == [
        (9, "'acc' changes type inside the loop"), (12, "'wrong' is not defined")]


def test_header_declarations_report_every_duplicate() -> None:
    source = """\
kernel k(X: f32[M], out Y: f32[M], X: f32[M], exp: f32)
  param BM = 32, BM = 64
  grid (cdiv(M, BM)) as (bm)
  block 1 waves
{
  Y[bm*BM : +BM] <- X[bm*BM : +BM]
}
"""
    with pytest.raises(TdslError) as info:
        tiledsl.load(source)
    assert [d.message for d in info.value.diagnostics] == [
        "'X' is declared twice (first at <string>:1:10)", "'exp' is a built-in name",
        "'BM' is declared twice (first at <string>:2:9)"]


def test_checking_stops_after_the_error_limit() -> None:
    body = "".join(f"  v{i} = x + undefined{i}\n" for i in range(MAX_ERRORS + 5))
    e = errors_of(body)
    assert len(e.diagnostics) == MAX_ERRORS + 1
    assert [d.message for d in e.diagnostics[:-1]] == [f"'undefined{i}' is not defined" for i in range(MAX_ERRORS)]
    last = e.diagnostics[-1]
    assert last.loc is None and last.format() == f"error: too many errors ({MAX_ERRORS}), stopping here"


def test_one_error_is_raised_as_it_was() -> None:
    e = errors_of("  Y[bm*BM : +BM, 0 : +BN] <- x * nope\n")
    assert len(e.diagnostics) == 1 and e.message == "'nope' is not defined"


def test_each_kernel_of_a_file_reports_its_errors() -> None:
    source = """\
kernel first(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  Y[b*16 : +16] <- X[b*16 : +16] * one
}

kernel second(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  Y[b*16 : +16] <- X[b*16 : +16] * two
}
"""
    with pytest.raises(TdslError) as info:
        tiledsl.load(source)
    assert [(d.loc.line, d.message) for d in info.value.diagnostics] == [
        (5, "'one' is not defined"), (12, "'two' is not defined")]
    assert "<string>:12:36: error: 'two' is not defined\n" in str(info.value)
