"""examples/torch_train.py runs end to end on the CPU (two steps, the interpreter standing in for
the GPU): both curves written, the same batches and weights giving the same losses to ~1e-3."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_train.py"


def test_two_steps_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "curve"
    run = subprocess.run([sys.executable, str(EXAMPLE), "--device", "cpu", "--steps", "2", "--seq", "32",
                          "--batch", "2", "--dim", "64", "--heads", "2", "--out", str(out)],
                         check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = list(csv.DictReader(out.with_suffix(".csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["0", "1"]
    for r in rows:
        assert abs(float(r["tiledsl"]) - float(r["sdpa"])) < 5e-3
    assert float(rows[1]["tiledsl"]) < float(rows[0]["tiledsl"])       # it learns
    assert out.with_suffix(".png").stat().st_size > 1000
