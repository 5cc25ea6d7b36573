"""The examples of docs/python-api.md run as written, each with ``tiledsl`` imported as the page
does once at its top (those marked '# needs a GPU' are left out here; the GPU tests of
tests/runtime cover the launcher)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tiledsl

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python-api.md").read_text(), re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", [b for b in BLOCKS if not b.startswith("# needs a GPU")],
                         ids=lambda b: b.splitlines()[0][:40])
def test_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)     # the examples use paths from the repository root
    exec(compile(code, "python-api.md", "exec"), {"tiledsl": tiledsl})  # noqa: S102  (our own docs)
