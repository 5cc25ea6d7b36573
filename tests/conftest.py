"""Hypothesis profiles for the whole suite.

``long`` is for the fuzz tests (tests/fuzz): thousands of generated programs and mutants,
random rather than derandomised. Tests that fix their own ``max_examples`` keep it.

    python -m pytest tests/fuzz --hypothesis-profile=long
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, settings

settings.register_profile("long", max_examples=2000, deadline=None, derandomize=False,
                          suppress_health_check=list(HealthCheck))

# The compile cache is off in the suite (TDSL_CACHE=0): many tests monkeypatch the compiler, which the
# cache's key (a hash of tiledsl's files) cannot see; tests/test_cache.py turns it on in a temporary
# directory. TDSL_CACHE_DIR points at a directory of this run (not created: with the cache off
# nothing is written there), so that no test reads the user's kept tunings (tune.json).
os.environ["TDSL_CACHE"] = "0"
os.environ["TDSL_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"tdsl-test-cache-{os.getpid()}")
