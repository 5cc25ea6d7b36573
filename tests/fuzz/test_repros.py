"""The reproducers the program generator found (tests/fuzz/repros/*.tdsl) through every stage.

A fixed one (``# known: fixed ...``) must now pass on every thread target, its lowered code on
the CPU and a native compile for an AMD and an NVIDIA target. One whose bug is still open
(``# known: KEY`` with KEY in triage.KNOWN_BUGS) is an xfail with the bug's description; it is not
run (an open one may take minutes: see python -m tests.fuzz.explore run FILE)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import evaluate_source, read_repro
from .triage import KNOWN_BUGS

REPROS = sorted((Path(__file__).parent / "repros").glob("*.tdsl"))
OPEN = {b.key: b for b in KNOWN_BUGS}


def _param(path: Path) -> object:
    key = read_repro(path.read_text())["known"]
    if key in OPEN:
        return pytest.param(path, id=path.stem, marks=pytest.mark.xfail(run=False, reason=OPEN[key].item))
    return pytest.param(path, id=path.stem)


@pytest.mark.parametrize("path", [_param(p) for p in REPROS])
def test_reproducer_passes_every_stage(path: Path) -> None:
    text = path.read_text()
    fields = read_repro(text)
    v = evaluate_source(text, fields["params"], fields["dims"], fields["seed"], compile_targets=("gfx942", "sm_90a"))
    assert v.outcomes[0].status == "ok", v.report()
    assert not v.failures, v.report()
    assert len(v.outcomes) > 3, v.report()          # it ran beyond the block level
