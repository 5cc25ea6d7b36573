"""The suite runs with the compile cache off (``TDSL_CACHE=0``): many tests monkeypatch the compiler,
which the cache's key (a hash of tiledsl's files) cannot see. ``tests/test_cache.py`` turns it on,
in a temporary directory, where it is what is tested. ``TDSL_CACHE_DIR`` points at a
directory of this run, so that no test reads the user's kept tunings (``tune.json``)."""

import os
import tempfile

os.environ["TDSL_CACHE"] = "0"
# Not created: with the cache off nothing is written there (the tests that write use tmp_path).
os.environ["TDSL_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"tdsl-test-cache-{os.getpid()}")
