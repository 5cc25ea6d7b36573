"""Hypothesis profiles for the whole suite.

``long`` is for the fuzz tests (tests/fuzz): thousands of generated programs and mutants,
random rather than derandomised. Tests that fix their own ``max_examples`` keep it.

    python -m pytest tests/fuzz --hypothesis-profile=long
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("long", max_examples=2000, deadline=None, derandomize=False,
                          suppress_health_check=list(HealthCheck))
