"""The tuner without a GPU: its choice among finalists (a script of times replaces the timer), the
kept entries (keyed by source, kernel, target, GPU and shape; written under a lock by concurrent
processes), the tuning space from the kernel's `tune` header, the parallel compile of the points,
and launchers and `tdslc tune` reading and checking all that."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tiledsl
from tiledsl import tune
from tiledsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
ATTENTION = ROOT / "examples" / "attention.tdsl"
SOFTMAX = ROOT / "examples" / "softmax.tdsl"
TUNED_SOFTMAX = SOFTMAX.read_text().replace("param BM = 16, BN = 128", "param BM = 16, BN = 128\n  tune BM in (16, 32)")


@pytest.fixture(autouse=True)
def tune_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "_CHOSEN", {})
    return tmp_path


@dataclass
class DeviceArray:
    shape: tuple[int, ...]
    typestr: str

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"data": (4096, False), "shape": self.shape, "strides": None, "typestr": self.typestr,
                "version": 3}


def test_confirm_takes_the_lowest_median_over_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # "a" is lucky once (0.5) but usually slow; "b" is steadily fast; calls alternate a, b, c.
    script = {"a": [0.5, 2.0, 2.1], "b": [1.0, 1.1, 0.9], "c": [3.0, 3.0, 3.0]}
    calls: list[str] = []

    def fake_time(kernel: str, args: dict, reps: int = 30, flush_l2: bool = False) -> float:
        assert flush_l2
        calls.append(kernel)
        return script[kernel][sum(c == kernel for c in calls) - 1]
    monkeypatch.setattr(tune, "time_launch", fake_time)
    key, ms = tune.confirm({k: k for k in script}, {}, rounds=3)
    assert (key, ms) == ("b", 1.0)
    assert calls == ["a", "b", "c"] * 3                         # round-robin, not one kernel after another


def test_entries_are_kept_per_source_kernel_target_gpu_and_shape(tune_dir: Path) -> None:
    prog = tiledsl.load(SOFTMAX)
    edited = tiledsl.load(SOFTMAX.read_text() + "\n# an edit\n")
    assert tune.best_params(prog, {"M": 64, "N": 64}, "sm_90", "H200") is None
    tune.store(prog, {"M": 64, "N": 64}, {"BM": 32}, 0.1, "H200", "sm_90")
    assert tune.best_params(prog, {"N": 64, "M": 64}, "sm_90", "H200") == {"BM": 32}
    assert tune.best_params(edited, {"M": 64, "N": 64}, "sm_90", "H200") is None        # another source
    assert tune.best_params(prog, {"M": 64, "N": 64}, "sm_90", "H100") is None          # another GPU
    assert tune.best_params(prog, {"M": 64, "N": 64}, "sm_90a", "H200") is None         # another target
    assert tune.best_params(prog, {"M": 65, "N": 64}, "sm_90", "H200") is None          # another shape
    assert tune.cache_path() == tune_dir / "tune.json"


def test_concurrent_writers_keep_every_entry(tune_dir: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, tiledsl
        from tiledsl import tune
        prog = tiledsl.load({str(SOFTMAX)!r})
        for i in range(10):
            tune.store(prog, {{"M": int(sys.argv[1]), "N": i}}, {{"BM": 16}}, 0.1, "H200", "sm_90")
    """)
    env = {**os.environ, "TDSL_CACHE_DIR": str(tune_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(m)], env=env, cwd=ROOT, stderr=subprocess.PIPE)
             for m in range(8)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read() if p.stderr else ""
    assert len(tune.load_cache()) == 80


def test_the_space_comes_from_the_tune_header_without_fixed_params() -> None:
    prog = tiledsl.load(ATTENTION, params={"D": 64})
    assert tune.space_of(prog) == {"BM": [64, 128], "BN": [32, 64, 128], "WAVES": [4, 8], "QREGS": [0, 1]}
    assert tune.space_of(prog.specialize(BM=64), {"BN": [64]}) == {"BN": [64], "WAVES": [4, 8], "QREGS": [0, 1]}
    assert tune.space_of(tiledsl.load(SOFTMAX)) == {}


@pytest.mark.parametrize("source, message", [
    ("param BM = 16, BN = 128\n  tune BM in (16), BM in (32)", "'BM' is tuned twice"),
    ("param BM = 16, BN = 128\n  tune M in (16)", "'M' cannot be tuned: it is not a param of the kernel"),
    ("param BM = 16, BN = 128\n  tune BN in (64, 64)", "the values of 'BN' repeat: [64, 64]"),
])
def test_tune_header_mistakes_are_located(source: str, message: str) -> None:
    text = SOFTMAX.read_text().replace("param BM = 16, BN = 128", source)
    with pytest.raises(tiledsl.TdslError) as e:
        tiledsl.load(text)
    assert e.value.message.startswith(message) and e.value.loc is not None and e.value.loc.line == 6


def test_points_compile_in_parallel_and_unfit_points_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDSL_CACHE", "0")
    prog = tiledsl.load(SOFTMAX)
    points = tune.points_of({"BM": [16, 32], "BN": [128, 100000]})
    assert points == [{"BM": 16, "BN": 128}, {"BM": 16, "BN": 100000}, {"BM": 32, "BN": 128},
                      {"BM": 32, "BN": 100000}]
    arts = tune.compile_points(prog, points, "sm_90", jobs=2)
    for point, art in zip(points, arts):
        if point["BN"] == 100000:
            assert isinstance(art, str) and art.startswith("skipped:")
        else:
            assert art.params["BM"] == point["BM"]
            assert art.asm == prog.specialize(**point).compile(target="sm_90").asm


def _softmax_args() -> dict[str, Any]:
    return {"X": DeviceArray((100, 300), "<f4"), "Y": DeviceArray((100, 300), "<f4")}


def test_a_launcher_runs_the_kept_tuning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    monkeypatch.setattr(tune, "device_name", lambda: "H200")
    monkeypatch.setenv("TDSL_PRINT_AUTOTUNING", "1")
    prog = tiledsl.load(TUNED_SOFTMAX)
    tune.store(prog, {"M": 100, "N": 300}, {"BM": 32}, 0.1, "H200", "sm_90")
    launcher = prog.launcher(target="sm_90")
    assert launcher.kernel_for(_softmax_args()).artifact.params["BM"] == 32
    assert launcher.kernel_for({"X": DeviceArray((50, 300), "<f4"), "Y": DeviceArray((50, 300), "<f4")}
                               ).artifact.params["BM"] == 16           # another shape: the default
    err = capsys.readouterr().err
    assert "tiledsl autotune: softmax on sm_90 at M=100, N=300: BM=32 (kept from an earlier tuning)" in err
    assert "at M=50, N=300: the kernel's defaults (not tuned)" in err
    fixed = tiledsl.load(TUNED_SOFTMAX, params={"BM": 16}).launcher(target="sm_90")
    assert fixed.kernel_for(_softmax_args()).artifact.params["BM"] == 16     # params= wins


def test_autotune_tunes_on_first_use_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "device_name", lambda: "H200")
    calls = []

    def fake_tune(program: Any, space: dict, args: dict, shape: dict, target: str) -> tuple:
        calls.append((space, shape))
        tune.store(program, shape, {"BM": 32}, 0.1, "H200", target)
        return {"BM": 32}, 0.1, []
    monkeypatch.setattr(tune, "tune", fake_tune)
    prog = tiledsl.load(TUNED_SOFTMAX)
    assert prog.launcher(target="sm_90").kernel_for(_softmax_args()).artifact.params["BM"] == 16   # opt-in
    launcher = prog.launcher(target="sm_90", autotune=True)
    for _ in range(2):
        assert launcher.kernel_for(_softmax_args()).artifact.params["BM"] == 32
    assert calls == [({"BM": [16, 32]}, {"M": 100, "N": 300})]


def test_tdslc_tune_checks_its_space_before_the_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", str(SOFTMAX), "--shape", "M=64,N=64"]) == 1
    assert "nothing to tune: 'softmax' declares no `tune NAME in (V1, V2)`" in capsys.readouterr().err
    assert main(["tune", str(SOFTMAX), "--shape", "M=64,N=64", "-D", "BM=16", "--space", "BM=16,32"]) == 1
    assert "BM is fixed with -D and cannot be tuned too" in capsys.readouterr().err
