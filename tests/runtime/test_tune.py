"""The tuner's choice among its finalists: each is timed once per round, round-robin, and the
lowest median wins (one lucky round does not); the cache round-trips. No GPU needed: the timer
is replaced by a script of times."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiledsl import tune


def test_confirm_takes_the_lowest_median_over_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # "a" is lucky once (0.5) but usually slow; "b" is steadily fast; calls alternate a, b, c.
    script = {"a": [0.5, 2.0, 2.1], "b": [1.0, 1.1, 0.9], "c": [3.0, 3.0, 3.0]}
    calls: list[str] = []

    def fake_time(kernel: str, args: dict, reps: int = 30) -> float:
        calls.append(kernel)
        return script[kernel][sum(c == kernel for c in calls) - 1]
    monkeypatch.setattr(tune, "time_launch", fake_time)
    key, ms = tune.confirm({k: k for k in script}, {}, rounds=3)
    assert (key, ms) == ("b", 1.0)
    assert calls == ["a", "b", "c"] * 3                         # round-robin, not one kernel after another


def test_cache_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tune.best_params("attention", {"N": 64, "D": 64}) is None
    tune.store("attention", {"N": 64, "D": 64}, {"BM": 64}, 0.1, "gpu")
    assert tune.best_params("attention", {"D": 64, "N": 64}) == {"BM": 64}
    assert tune.cache_path() == tmp_path / "tiledsl" / "tune.json"
