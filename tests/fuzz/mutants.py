"""Mutations of the examples that keep them parseable more often than not.

Where ``tests/frontend/test_fuzz.py`` mutates characters and tokens blindly to test the parser
and the checker, these mutations keep to the language's own alphabet — a number for a number,
an operator for an operator of its kind, a built-in for a sibling, a name for another name of
the program, a broadcast the other way round, a statement dropped, doubled or moved — so that
many mutants pass ``check`` and go on through the thread level.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The examples and the whole kernels of tests/kernels (gathers, 'until' bounds, ragged loops,
# scatters, paged caches, block-sparse and varlen attention), by name.
_KERNEL = re.compile(r"^kernel\s+(\w+)", re.MULTILINE)


def _kernels(name: str, text: str) -> dict[str, str]:
    """A file's text by name; a file of several kernels as one text per kernel (``name:kernel``),
    each kernel with its own header, so each mutant is one Program."""
    found = list(_KERNEL.finditer(text))
    if len(found) < 2:
        return {name: text}
    bounds = [0, *(m.start() for m in found[1:]), len(text)]
    return {f"{name}:{m.group(1)}": text[lo:hi] for m, lo, hi in zip(found, bounds, bounds[1:])}


EXAMPLE_TEXT = {k: v for p in sorted(EXAMPLES.glob("*.tdsl")) for k, v in _kernels(p.stem, p.read_text()).items()} | \
    {k: v for p in sorted((ROOT / "tests" / "kernels").glob("*.tdsl"))
     for k, v in _kernels(f"kernels/{p.stem}", p.read_text()).items()}

TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+|\^T|<-|\.\."
                   r"|<=|>=|==|!=|//|\[:, _\]|\[_, :\]|.")
INTS = ["0", "1", "2", "3", "8", "16", "24", "32", "48", "64", "96", "128"]
FLOATS = ["0.0", "0.5", "1.0", "2.0", "1e-5", "3.5"]
WAVES = ["1", "2", "3", "4", "8", "16", "17", "32"]      # over 16: refused up front on 64-lane targets
SIBLINGS = [
    ["+", "-", "*", "/"], ["//", "%"], ["<", "<=", ">", ">=", "==", "!="], ["and", "or"],
    ["rowmax", "rowsum", "colmax", "colsum"],
    ["exp", "exp2", "sqrt", "abs", "rsqrt", "log2", "tanh", "sigmoid", "erf", "log", "log1p", "sin", "cos",
     "floor", "ceil", "round"],
    ["max", "min", "argmax", "argmin"], ["sum", "cumsum"],
    ["f16", "bf16", "f32", "i32", "f8e4m3", "f8e5m2", "i8", "u8", "i16", "u32", "i64"], ["[:, _]", "[_, :]"],
    ["atomic_add", "atomic_max", "atomic_min"], ["pad", "until"],
]
KEYWORDS = {"kernel", "out", "const", "param", "grid", "as", "block", "waves", "threads", "lds", "layout", "for",
            "in", "step", "pipeline", "if", "else", "sync", "not", "pad", "inf", "true", "false", "fill", "iota",
            "dot", "where", "cdiv", "mma", "blocked", "slice", "dot_operand", "replicated", "arange", "sum",
            "LOG2E", "swap", "instr", "spt", "order", "until"}


def tokens(text: str) -> list[str]:
    toks = TOKEN.findall(text)
    assert "".join(toks) == text
    return toks


def _sibling(tok: str) -> list[str] | None:
    return next((group for group in SIBLINGS if tok in group), None)


@st.composite
def mutants(draw: st.DrawFn, name: str) -> str:
    """The example ``name`` with one to three mutations."""
    text = EXAMPLE_TEXT[name]
    for _ in range(draw(st.integers(1, 3))):
        text = draw(_mutation(text))
    return text


@st.composite
def _mutation(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["number", "number", "sibling", "sibling", "name", "transpose", "line"]))
    if kind == "line":
        lines = text.split("\n")
        # Statements sit between the kernel's braces; the header stays whole.
        body = [i for i, line in enumerate(lines) if line.startswith("  ") and i > lines.index("{")]
        if not body:
            return text
        i = draw(st.sampled_from(body))
        how = draw(st.sampled_from(["delete", "duplicate", "swap"]))
        if how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return "\n".join(lines)
    toks = tokens(text)
    code = [i for i, t in enumerate(toks) if not t.isspace() and not t.startswith("#")]
    if kind == "number":
        where = [i for i in code if toks[i][0].isdigit()]
        if not where:
            return text
        i = draw(st.sampled_from(where))
        waves = any(t == "waves" for t in toks[i + 1:i + 3])
        toks[i] = draw(st.sampled_from(WAVES if waves else FLOATS if "." in toks[i] or "e" in toks[i] else INTS))
    elif kind == "sibling":
        where = [i for i in code if _sibling(toks[i])]
        i = draw(st.sampled_from(where))
        toks[i] = draw(st.sampled_from(_sibling(toks[i])))
    elif kind == "name":
        names = sorted({toks[i] for i in code if re.fullmatch(r"[A-Za-z_]\w*", toks[i])
                        and toks[i] not in KEYWORDS and not _sibling(toks[i])})
        where = [i for i in code if toks[i] in names]
        i = draw(st.sampled_from(where))
        toks[i] = draw(st.sampled_from(names))
    else:
        names = [i for i in code if re.fullmatch(r"[a-z_]\w*", toks[i]) and toks[i] not in KEYWORDS
                 and not _sibling(toks[i])]
        transposed = [i for i in code if toks[i] == "^T"]
        if transposed and draw(st.booleans()):
            toks[draw(st.sampled_from(transposed))] = ""
        else:
            i = draw(st.sampled_from(names))
            toks[i] += "^T"
    return "".join(toks)
