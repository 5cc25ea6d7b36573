"""docs/language.md stays a reference of the whole language: every kernel in a ``tdsl`` block is
valid, and every built-in, dtype, layout kind, constant and keyword of the grammar is there. A
new op or dtype that is not documented fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tiledsl
from tiledsl.frontend.builtins import BUILTINS, CONSTANTS, LAYOUT_KINDS
from tiledsl.ir.types import DTYPES

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "language.md").read_text()
KERNELS = re.findall(r"```tdsl\n(.*?)```", TEXT, re.DOTALL)
#: The words the grammar quotes: its keywords (operators and punctuation left out).
KEYWORDS = sorted({w for w in re.findall(r'"([a-z]+)"', (ROOT / "tiledsl" / "grammar.lark").read_text())})


def test_the_page_has_kernels() -> None:
    assert len(KERNELS) >= 5


@pytest.mark.parametrize("source", KERNELS, ids=lambda s: s.split("(")[0].split()[-1])
def test_every_kernel_of_the_page_is_valid(source: str) -> None:
    prog = tiledsl.load(source)
    assert prog.name in source


@pytest.mark.parametrize("name", sorted(n for n in BUILTINS if not n.startswith("__")))
def test_every_builtin_is_documented(name: str) -> None:
    assert f"`{name}" in TEXT, f"built-in {name}() is not in docs/language.md"


@pytest.mark.parametrize("name", [*DTYPES, *LAYOUT_KINDS, *CONSTANTS])
def test_every_dtype_layout_kind_and_constant_is_documented(name: str) -> None:
    assert f"`{name}" in TEXT


@pytest.mark.parametrize("word", KEYWORDS)
def test_every_keyword_is_documented(word: str) -> None:
    assert re.search(rf"`[^`\n]*\b{word}\b[^`\n]*`", TEXT), f"keyword '{word}' is not in docs/language.md"


def test_the_keywords_are_found() -> None:
    assert {"kernel", "grid", "block", "lds", "layout", "for", "pipeline", "until", "pad", "sync"} <= set(KEYWORDS)
