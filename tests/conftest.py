"""The suite runs with the compile cache off (``TDSL_CACHE=0``): many tests monkeypatch the compiler,
which the cache's key (a hash of tiledsl's files) cannot see. ``tests/test_cache.py`` turns it on,
in a temporary directory, where it is what is tested."""

import os

os.environ["TDSL_CACHE"] = "0"
