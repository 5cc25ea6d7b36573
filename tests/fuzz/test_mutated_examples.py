"""Mutated examples (examples/*.tdsl and the whole kernels of tests/kernels: gathers, 'until'
bounds, atomics, ragged loops) through the thread level: every mutant that passes ``check``
goes through layout assignment, thread IR and the thread interpreter on gfx942 and sm_90 at
small shapes, and runs (its own checks may fail: it may be a wrong program) or is refused with
a located error. Internal errors, tracebacks, stages over their time budget, and answers that
differ from the block level's fail, except where they match an open bug (triage.KNOWN_BUGS,
counted as hypothesis events). ``--hypothesis-profile=long`` draws many more, at random."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .harness import evaluate_mutant, fuzz_settings
from .mutants import EXAMPLE_TEXT, mutants


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXT))
@fuzz_settings(10)
@given(data=st.data())
def test_mutated_examples_run_at_the_thread_level_or_are_refused(name: str, data: st.DataObject) -> None:
    text = data.draw(mutants(name), label="mutant")
    v = evaluate_mutant(text, seed=data.draw(st.integers(0, 2**16), label="seed"))
    event("passes check" if v.outcomes[0].status == "ok" else "refused by check")
    for bug in v.known:
        event(f"known bug ({bug.branch}): {bug.key}")
    assert not v.new, v.report()


def test_mutations_keep_many_examples_checkable() -> None:
    """The mutations are worth running only if a good share of mutants pass check."""
    from hypothesis import HealthCheck, Phase, seed, settings

    import tiledsl

    texts: list[str] = []

    @seed(0)
    @settings(max_examples=40, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(mutants("softmax"))
    def collect(text: str) -> None:
        texts.append(text)

    collect()
    ok = 0
    for text in texts:
        try:
            tiledsl.load(text)
            ok += 1
        except tiledsl.TdslError:
            pass
    assert ok >= len(texts) // 4, f"only {ok} of {len(texts)} mutants pass check"
    assert ok < len(texts), "no mutant is refused: the mutations do not change anything"
