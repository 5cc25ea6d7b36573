"""The parser and checker answer every input with a program or a located error.

Three sources of input: token soup (random sequences of the language's tokens and
junk characters), mutated examples (tokens or characters deleted, duplicated, swapped,
inserted), and random but grammatical programs that stress the checker rather than
the parser. Anything but a Program or a TdslError located inside the text fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.tdsl"))
EXAMPLE_TEXT = {p.stem: p.read_text() for p in EXAMPLE_FILES}

KEYWORDS = ["kernel", "out", "const", "param", "grid", "as", "block", "waves", "threads", "lds", "layout",
            "for", "in", "step", "if", "else", "sync", "and", "or", "not", "pad", "inf", "true", "false"]
DTYPES = ["f16", "bf16", "f32", "i32", "i1"]
PUNCT = ["(", ")", "{", "}", "[", "]", ",", ":", ";", "=", "@", "<-", "..", "^T", "_", "+", "-", "*", "/",
         "//", "%", "<", "<=", ">", ">=", "==", "!=", ":+", "#c\n"]
NAMES = ["k", "X", "Y", "N", "M", "D", "BM", "b", "x", "acc", "fill", "dot", "rowmax", "rowsum", "where",
         "iota", "cdiv", "exp2", "max", "mma", "blocked", "LOG2E", "transpose", "sum"]
NUMBERS = ["0", "1", "16", "128", "2.5", "1e3", "0.0", "99999999999", "4294967296"]
JUNK = ["$", "?", "!", "\"", "'", "\\", "`", "~", "&", "|", "\t", "é", "€", "\x00", "0x", "1.", ".5"]
TOKENS = KEYWORDS + DTYPES + PUNCT + NAMES + NUMBERS + JUNK

KERNEL_PREFIX = ("kernel k(X: f32[M, N], out Y: f32[M, N], s: f32)\n"
                 "  param BM = 16\n  grid (cdiv(M, BM)) as (b)\n  block 4 waves\n{\n")


def assert_answers(text: str, params: dict[str, int] | None = None) -> None:
    """``tiledsl.load`` returns a Program (or a Module of them) or raises a TdslError located inside ``text``."""
    # A string with neither a newline nor a '{' is taken as a path: make it source.
    text = text if "\n" in text or "{" in text else text + "\n"
    try:
        prog = tiledsl.load(text, params=params)
    except tiledsl.TdslError as e:
        assert e.loc is not None, f"an error with no location: {e.message}"
        assert e.message
        lines = text.split("\n")
        assert 1 <= e.loc.line <= len(lines), (e.loc, e.message)
        assert 1 <= e.loc.col <= len(lines[e.loc.line - 1]) + 1, (e.loc, e.message)
        assert e.format().startswith(f"<string>:{e.loc.line}:{e.loc.col}: error: ")
        return
    # A file of several kernels is a Module of Programs; each that checks survives the tile IR passes.
    programs = list(prog.kernels.values()) if isinstance(prog, tiledsl.Module) else [prog]
    for one in programs:
        assert isinstance(one, tiledsl.Program)
        kernel, _ = one.lower()
        assert kernel.name == "kernel"


# ---------------------------------------------------------------- token soup

separators = st.sampled_from([" ", " ", " ", "\n", ""])
soup = st.lists(st.tuples(st.sampled_from(TOKENS), separators), max_size=60).map(
    lambda pairs: "".join(t + s for t, s in pairs))


@settings(max_examples=300, deadline=None)
@given(soup)
def test_token_soup(text: str) -> None:
    assert_answers(text)


@settings(max_examples=300, deadline=None)
@given(soup)
def test_token_soup_inside_a_kernel(text: str) -> None:
    assert_answers(KERNEL_PREFIX + text + "\n}\n")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text(text: str) -> None:
    assert_answers(KERNEL_PREFIX + text + "\n}")


# ---------------------------------------------------------------- mutated examples

TOKEN_RE = re.compile(r"\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?|\^T|<-|\.\.|<=|>=|==|!=|//|.")


def tokens_of(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


@st.composite
def mutated(draw: st.DrawFn, name: str) -> str:
    text = EXAMPLE_TEXT[name]
    # Mutate whole tokens or single characters.
    toks = tokens_of(text) if draw(st.booleans()) else list(text)
    assert "".join(toks) == text
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace"]))
        i = draw(st.integers(0, len(toks) - 1))
        j = draw(st.integers(0, len(toks) - 1))
        if kind == "delete":
            del toks[i]
        elif kind == "duplicate":
            toks.insert(i, toks[i])
        elif kind == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "insert":
            toks.insert(i, draw(st.sampled_from(TOKENS)) + " ")
        else:
            toks[i] = draw(st.sampled_from(TOKENS))
        if not toks:
            toks = ["x"]
    return "".join(toks)


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXT))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_example(name: str, data: st.DataObject) -> None:
    assert_answers(data.draw(mutated(name)))


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXT))
@settings(max_examples=25, deadline=None)
@given(params=st.dictionaries(st.sampled_from(["BM", "BN", "BK", "D", "CAUSAL", "NOPE"]),
                              st.integers(-2, 130), max_size=3))
def test_examples_with_random_parameters(name: str, params: dict[str, int]) -> None:
    assert_answers(EXAMPLE_TEXT[name], params)


# ---------------------------------------------------------------- grammatical random programs

VALUE_NAMES = ["x", "y", "acc", "s", "b", "N", "M", "BM", "t", "X", "Y", "inf", "LOG2E", "rows", "f16"]
FUNCS = ["fill", "dot", "rowmax", "rowsum", "colmax", "colsum", "where", "iota", "cdiv", "exp2", "exp", "max",
         "min", "sum", "abs", "sqrt", "rsqrt", "log2", "f16", "f32", "i32", "bf16", "i1", "transpose",
         "arange", "nope"]
LITERALS = ["0", "1", "16", "-1", "0.0", "2.5", "inf", "true", "1e30"]


def expressions() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(VALUE_NAMES + LITERALS)
    tile_type = st.builds(lambda d, a, b: f"{d}[{a}, {b}]", st.sampled_from(["f32", "f16", "i32"]),
                          st.sampled_from(["16", "BM", "N", "0"]), st.sampled_from(["16", "BM", "8"]))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        index = st.one_of(st.sampled_from([":", "_", "0", "b*BM : +BM", "0 : +16", "n : +N"]),
                          inner.map(lambda e: f"{e} : +16"))
        return st.one_of(
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner,
                      st.sampled_from(["+", "-", "*", "/", "//", "%", "<", "==", "and", "or"]), inner),
            st.builds(lambda f, args: f"{f}({', '.join(args)})", st.sampled_from(FUNCS),
                      st.lists(inner, max_size=3)),
            st.builds(lambda v, t: f"fill({v}, {t})", inner, tile_type),
            st.builds(lambda f, e, ax: f"{f}({e}, axis={ax})", st.sampled_from(["max", "sum"]), inner,
                      st.sampled_from(["0", "1", "2", "x"])),
            st.builds(lambda base, idx, pad: f"{base}[{', '.join(idx)}]{pad}",
                      st.sampled_from(["X", "Y", "x", "t", "s"]), st.lists(index, min_size=1, max_size=3),
                      st.sampled_from(["", "", " pad -inf", " pad x"])),
            inner.map(lambda e: f"({e})^T"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"not {e}"),
        )
    return st.recursive(leaf, extend, max_leaves=6)


def statements(depth: int = 0) -> st.SearchStrategy[str]:
    expr = expressions()
    simple = [
        st.builds(lambda n, e, lay: f"{n} = {e}{lay}", st.sampled_from(["x", "y", "acc", "s", "q"]), expr,
                  st.sampled_from(["", "", "", " @ rows", " @ mma(waves=[4, 1])", " @ blocked(spt=[1, 1])",
                                   " @ slice(0, rows)"])),
        st.builds(lambda t, idx, e: f"{t}[{idx}] <- {e}", st.sampled_from(["Y", "X", "x"]),
                  st.sampled_from(["b*BM : +BM, 0 : +16", "0 : +16, :", "0", "b, 0 : +16"]), expr),
        expr.map(lambda e: f"t <- {e}"),
        st.just("sync"),
        st.builds(lambda n, d, s: f"lds {n}: {d}[{s}, 16]", st.sampled_from(["t", "u", "x"]),
                  st.sampled_from(["f16", "f32"]), st.sampled_from(["16", "BM", "N", "D", "0"])),
        st.sampled_from(["layout rows = mma(waves=[4, 1])", "layout r2 = mma(waves=[2, 1])",
                         "layout r3 = blocked(spt=[1, 2], order=[1, 0])", "layout r4 = dot_operand(0, rows)",
                         "layout r5 = slice(1, rows)", "layout r6 = foo(1)", "layout r7 = mma(swap=1)"]),
    ]
    if depth >= 2:
        return st.one_of(simple)
    body = st.lists(statements(depth + 1), max_size=3).map("\n".join)
    nested = [
        st.builds(lambda v, lo, hi, step, b: f"for {v} in {lo} .. {hi} step {step} {{\n{b}\n}}",
                  st.sampled_from(["n", "x", "i"]), expr, expr, st.sampled_from(["16", "BM", "0", "x", "-1"]),
                  body),
        st.builds(lambda c, a, b: f"if {c} {{\n{a}\n}} else {{\n{b}\n}}", expr, body, body),
    ]
    return st.one_of(simple + nested)


HEADERS = [
    "kernel k(X: f32[M, N], out Y: f32[M, N], s: f32)",
    "kernel k(X: f16[M, D], out Y: f16[M, D], s: f32)",
    "kernel k(X: f32[M, N], Y: f32[N], s: i32)",
]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(HEADERS), body=st.lists(statements(), max_size=6),
       params=st.sampled_from([{}, {"D": 16}, {"BM": 32}]))
def test_grammatical_random_programs(header: str, body: list[str], params: dict[str, int]) -> None:
    text = (header + "\n  const D\n  param BM = 16\n  grid (cdiv(M, BM)) as (b)\n  block 4 waves\n{\n"
            "  lds t: f32[BM, 16]\n  layout rows = mma(waves=[4, 1])\n" + "\n".join(body) + "\n}\n")
    assert_answers(text, params)


# Statements the generators above once found to crash the checker with a Python exception
# (or, for the last two, to build IR that failed verification).
REGRESSIONS = [
    "q = max(X, 1)",              # a tensor where a value is needed, in a built-in
    "q = where(x > 0, Y, 1.0)",
    "q = where(x > 0, f16(1), 2.0)",
    "q = rsqrt(0)",               # compile-time division by zero
    "q = i32(inf)",               # compile-time conversion of inf / nan / huge values to i32
    "q = i32(-inf)",
    "q = i32(1e30)",
    "q = max(t, x)",              # an LDS tile in a binary built-in
    "for i in 0 .. t step 16 { sync }",   # an LDS tile as a loop bound
    "q = X[t, 0 : +16]",          # ... and as a slice start
]


@pytest.mark.parametrize("stmt", REGRESSIONS)
def test_regressions(stmt: str) -> None:
    text = KERNEL_PREFIX + "  lds t: f32[16, 16]\n  x = X[b*BM : +BM, 0 : +16]\n  " + stmt + "\n}\n"
    assert_answers(text)


@pytest.mark.parametrize("sep", ["\u2028", "\x1c", "\x0c", "\r", "\x85"])
def test_end_of_input_after_an_exotic_line_break(sep: str) -> None:
    """Python's splitlines breaks at these, lark does not: the end-of-input position must
    still be counted as lark counts lines."""
    text = f"kernel k(X: f32[M]) # a{sep}b\n"
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(text)
    loc = info.value.loc
    assert loc is not None and "unexpected end of input" in info.value.message
    assert (loc.line, loc.col) == (1, len(text.split("\n")[0]) + 1)


def test_lds_tile_in_max_reads_the_tile() -> None:
    src = KERNEL_PREFIX + ("  lds t: f32[16, 16]\n  t <- X[b*BM : +BM, 0 : +16]\n  sync\n"
                           "  Y[b*BM : +BM, 0 : +16] <- max(t, X[b*BM : +BM, 0 : +16])\n}\n")
    text = tiledsl.load(src).ir()
    assert "lds_read(" in text and "max(" in text


def test_where_of_two_compile_time_scalars_takes_the_strong_dtype() -> None:
    src = KERNEL_PREFIX + ("  x = X[b*BM : +BM, 0 : +16]\n"
                           "  Y[b*BM : +BM, 0 : +16] <- f32(where(x > 0.0, f16(1), 2.0))\n}\n")
    text = tiledsl.load(src).ir(())
    assert re.search(r"= select\(.*\) : f16\[16,16\]", text), text


# ---------------------------------------------------------------- tdslc check on mutated files

@pytest.mark.parametrize(("name", "old", "new", "line_offset"), [
    # the missing ')' shows at the first token of the next line
    ("attention", "m_new = max(m, rowmax(s) * qk_scale)", "m_new = max(m, rowmax(s) * qk_scale", 1),
    ("gemm", "acc = dot(a_s, b_s, acc)", "acc = dot(a_s, acc)", 0),
    ("softmax", "m = m_new", "m = m_neww", 0),
    ("layernorm", "rstd = rsqrt(", "rstd = rsqrt(X, ", 0),
])
def test_tdslc_check_on_mutated_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, old: str,
                                      new: str, line_offset: int) -> None:
    text = EXAMPLE_TEXT[name]
    assert old in text
    path = tmp_path / f"{name}.tdsl"
    path.write_text(text.replace(old, new, 1))
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    line = next(i for i, s in enumerate(text.splitlines(), 1) if old in s) + line_offset
    assert re.match(rf"{re.escape(str(path))}:{line}:\d+: error: ", err), err
    assert "Traceback" not in err and "Traceback" not in out
