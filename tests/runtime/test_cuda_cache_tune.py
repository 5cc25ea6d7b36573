"""The compile cache and the tuner on a real NVIDIA GPU (skipped where there is none): attention
launched from a cache hit in a new process (the cubin where ptxas is installed) matches the
reference, and the hit is fast; `tdslc tune` keeps a tuning that `tdslc bench` and launchers use;
a launcher with ``autotune=True`` tunes on first use and still computes the right thing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl import tune
from tiledsl.cli import main
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
_spec = importlib.util.spec_from_file_location("reference", EXAMPLES / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)
TUNED_SOFTMAX = (EXAMPLES / "softmax.tdsl").read_text().replace(
    "param BM = 16, BN = 128", "param BM = 16, BN = 128\n  tune BM in (16, 32), BN in (64, 128)")


@pytest.fixture
def cache_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TDSL_CACHE", "1")
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "_CHOSEN", {})
    return tmp_path


_LAUNCH = """
    import json, sys, time
    t = time.perf_counter()
    import tiledsl
    art = tiledsl.compiled({path!r}, target="sm_90a", params={{"D": 128, "WAVES": 8, "QREGS": 0}})
    hit_s = time.perf_counter() - t
    import cupy, numpy as np
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 200, 128)).astype(np.float16) for _ in range(3))
    o = cupy.zeros(q.shape, cupy.float16)
    art.launcher()(Q=cupy.asarray(q), K=cupy.asarray(k), V=cupy.asarray(v), O=o,
                   L=cupy.zeros(q.shape[:3], cupy.float32), scale=128 ** -0.5)
    np.save(sys.argv[1], o.get())
    print(json.dumps({{"hit_s": hit_s}}))
"""


def test_attention_launches_from_a_cache_hit_in_a_new_process(cache_on: Path, tmp_path_factory: pytest.TempPathFactory
                                                              ) -> None:
    out_dir = tmp_path_factory.mktemp("out")
    env = {**os.environ, "TDSL_CACHE": "1", "TDSL_CACHE_DIR": str(cache_on)}
    code = textwrap.dedent(_LAUNCH.format(path=str(EXAMPLES / "attention.tdsl")))
    runs = []
    for i in range(2):
        proc = subprocess.run([sys.executable, "-c", code, str(out_dir / f"o{i}.npy")], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 200, 128)).astype(np.float16) for _ in range(3))
    ref = reference.attention(q, k, v, 128 ** -0.5)["O"]
    for i in range(2):
        o = np.load(out_dir / f"o{i}.npy").astype(np.float64)
        assert np.linalg.norm(o - ref) / np.linalg.norm(ref) < 2e-3
    print(f"attention sm_90a D=128: cold {runs[0]['hit_s']:.2f} s, from the cache {runs[1]['hit_s']:.3f} s")
    assert runs[1]["hit_s"] < 0.5
    if any(Path(p, "ptxas").exists() for p in os.environ["PATH"].split(os.pathsep)):
        assert list(cache_on.glob("compile/*/*/kernel.cubin"))


def test_tdslc_tune_keeps_a_tuning_that_bench_uses(cache_on: Path, tmp_path_factory: pytest.TempPathFactory,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path_factory.mktemp("src") / "softmax.tdsl"
    src.write_text(TUNED_SOFTMAX)
    assert main(["tune", str(src), "--shape", "M=1000,N=3000", "--jobs", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ms") >= 4 and "best {" in out
    entries = tune.load_cache()
    assert len(entries) == 1
    (entry,) = entries.values()
    assert entry["device"] == tune.device_name() and entry["shape"] == {"M": 1000, "N": 3000}
    assert main(["bench", str(src), "--shape", "M=1000,N=3000", "--reps", "10"]) == 0
    tuned = ", ".join(f"{k}={v}" for k, v in sorted(entry["params"].items()))
    assert f"tuned: {tuned}" in capsys.readouterr().out


def test_autotune_on_first_use_computes_the_right_thing(cache_on: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TDSL_PRINT_AUTOTUNING", "1")
    kernel = tiledsl.load(TUNED_SOFTMAX).launcher(target="sm_90", autotune=True)
    x = np.random.default_rng(1).standard_normal((300, 1000)).astype(np.float32)
    y = cupy.full(x.shape, np.nan, cupy.float32)
    kernel(X=cupy.asarray(x), Y=y)
    assert "tuned now on" in capsys.readouterr().err
    np.testing.assert_allclose(y.get(), reference.softmax(x), rtol=1e-5, atol=1e-6)
    y[...] = np.nan
    kernel(X=cupy.asarray(x), Y=y)                   # the second launch: no tuning
    assert capsys.readouterr().err == ""
    np.testing.assert_allclose(y.get(), reference.softmax(x), rtol=1e-5, atol=1e-6)


def test_timing_with_l2_flushed(cache_on: Path) -> None:
    kernel = tiledsl.load(EXAMPLES / "softmax.tdsl").compile(target="sm_90").launcher()
    x = cupy.ones((256, 256), cupy.float32)
    ms = tune.time_launch(kernel, {"X": x, "Y": cupy.empty_like(x)}, reps=10, flush_l2=True)
    assert 0 < ms < 100
