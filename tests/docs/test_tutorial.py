"""The tutorial's kernels (docs/tutorial/*.tdsl) check, and compute what their NumPy references
do at shapes that are not multiples of the tiles, at block level and at thread level; and
docs/tutorial.md shows each of them as it is in the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"
TUTORIAL = DOCS / "tutorial"
STEPS = sorted(TUTORIAL.glob("*.tdsl"))
rng = np.random.default_rng(7)


def _f16(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float16)


def _f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# Inputs per kernel: shapes that no tile divides.
CASES = {
    "vector_add": lambda: {"A": _f32(1000), "B": _f32(1000), "C": np.zeros(1000, np.float32)},
    "softmax": lambda: {"X": _f32(37, 48), "Y": np.zeros((37, 48), np.float32)},
    "gemm": lambda: {"A": _f16(70, 40), "B": _f16(40, 50), "C": np.zeros((70, 50), np.float32)},
    "attention": lambda: {"Q": _f16(100, 64), "K": _f16(100, 64), "V": _f16(100, 64),
                              "O": np.zeros((100, 64), np.float16), "scale": 64 ** -0.5},
}
OUTPUT = {"vector_add": "C", "softmax": "Y", "gemm": "C", "attention": "O"}
TOLERANCE = {"vector_add": 1e-6, "softmax": 1e-6, "gemm": 1e-6, "attention": 2e-3}


def reference(name: str, args: dict) -> np.ndarray:
    import importlib.util
    spec = importlib.util.spec_from_file_location("tutorial_reference", TUTORIAL / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)(**args)


def test_the_tutorial_has_its_four_steps() -> None:
    assert [p.name for p in STEPS] == ["1_vector_add.tdsl", "2_softmax.tdsl", "3_gemm.tdsl", "4_attention.tdsl"]


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_step_checks(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok: kernel ")


@pytest.mark.parametrize("level, target", [("block", None), ("thread", "gfx942"), ("thread", "sm_90")])
@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_step_matches_numpy(path: Path, level: str, target: str | None) -> None:
    prog = tiledsl.load(path)
    args = CASES[prog.name]()
    report = prog.interpret(level=level, target=target, **args)
    assert report.ok, report.errors
    out = args[OUTPUT[prog.name]].astype(np.float64)
    want = reference(prog.name, {k: v for k, v in args.items() if k != OUTPUT[prog.name]})
    assert np.linalg.norm(out - want) / np.linalg.norm(want) < TOLERANCE[prog.name]


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_the_tutorial_shows_the_file_as_it_is(path: Path) -> None:
    text = (DOCS / "tutorial.md").read_text()
    assert f"```\n{path.read_text()}```" in text, f"docs/tutorial.md does not show {path.name} as it is"
    assert f"docs/tutorial/{path.name}" in text
