"""Well-typed random programs through every stage: they give the block level's answer (and
the oracle's) on every thread target, their lowered code gives it on the CPU, and they compile
natively, or are refused with a located error. Anything else — an internal error, a failed
check, a wrong answer, a stage over its time budget — fails.

The default profile runs a fixed dozen programs and compiles for gfx942 and sm_90a (a minute
on a loaded 2-core machine); ``--hypothesis-profile=long`` (tests/conftest.py) draws thousands,
at random, and compiles for all six native targets. Failures that match an open bug
(triage.KNOWN_BUGS, by exception *and* construct) are tolerated and counted as hypothesis events
(``--hypothesis-show-statistics``) until their fix merges and the entry goes.
"""

from __future__ import annotations

from hypothesis import event, given, settings

from .harness import evaluate, fuzz_settings
from .programs import Generated, programs
from .stages import COMPILE_TARGETS

CI_COMPILE_TARGETS = ("gfx942", "sm_90a")


def _compile_targets() -> tuple[str, ...]:
    return COMPILE_TARGETS if settings.get_current_profile_name() == "long" else CI_COMPILE_TARGETS


@fuzz_settings(12)
@given(programs())
def test_generated_programs_pass_every_stage_or_are_refused(g: Generated) -> None:
    v = evaluate(g, compile_targets=_compile_targets())
    for o in v.outcomes:
        event(f"{o.stage.split(':')[0]}: {o.status}")
    for bug in v.known:
        event(f"known bug: {bug.key}")
    assert not v.new, v.report()
