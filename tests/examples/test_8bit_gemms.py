"""examples/fp8_gemm.tdsl and int4_gemm.tdsl against their float64 references
(examples/reference.py) at hypothesis-drawn odd shapes, at block level and at thread level on
gfx942, gfx1100, sm_90 and sm_90a."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-5}
NUMPY = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32}


@functools.cache
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def program(name: str, params: tuple[tuple[str, object], ...]) -> tiledsl.Program:
    return tiledsl.load(EXAMPLES / f"{name}.tdsl", params=dict(params))


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64 = out.astype(np.float64)
    assert np.all(np.isfinite(out64)), "non-finite values (unwritten?) in the output"
    return float(np.linalg.norm(out64 - ref) / max(np.linalg.norm(ref), 1e-30))


def fp8_inputs(m: int, n: int, k: int, out: str, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {"A": (rng.standard_normal((m, k)) * 16).astype(ml_dtypes.float8_e4m3fn),
            "B": rng.standard_normal((n, k)).astype(ml_dtypes.float8_e4m3fn),
            "SA": rng.uniform(0.25, 2, m).astype(np.float32), "SB": rng.uniform(0.25, 2, n).astype(np.float32),
            "C": np.full((m, n), np.nan, NUMPY[out]), "scale_a": 0.5, "scale_b": 0.125}


def int4_inputs(m: int, n: int, groups: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((m, 128 * groups)).astype(np.float16),
            "Wq": rng.integers(0, 256, (64 * groups, n)).astype(np.uint8),
            "S": rng.uniform(0.005, 0.05, (groups, n)).astype(np.float16),
            "C": np.full((m, n), np.nan, np.float32)}


def run_fp8(level: str, target: str | None, m: int, n: int, k: int, out: str, tiles: dict[str, int],
            seed: int) -> None:
    args = fp8_inputs(m, n, k, out, seed)
    where = {} if target is None else {"target": target}
    report = program("fp8_gemm", tuple(sorted({"T": out, **tiles}.items()))).interpret(level=level, **where, **args)
    assert report.ok, str(report)
    ref = reference().fp8_gemm(**args)
    assert rel_error(args["C"], ref) <= TOLERANCE[out]


def run_int4(level: str, target: str | None, m: int, n: int, groups: int, tiles: dict[str, int], seed: int) -> None:
    args = int4_inputs(m, n, groups, seed)
    where = {} if target is None else {"target": target}
    report = program("int4_gemm", tuple(sorted(tiles.items()))).interpret(level=level, **where, **args)
    assert report.ok, str(report)
    assert rel_error(args["C"], reference().int4_gemm(**args)) <= 1e-5


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 150), n=st.integers(1, 150), k=st.integers(1, 200), out=st.sampled_from(sorted(NUMPY)),
       bm=st.sampled_from([16, 32, 64]), bn=st.sampled_from([16, 32, 64]), bk=st.sampled_from([32, 64]),
       seed=st.integers(0, 2**16))
@example(m=1, n=1, k=1, out="f16", bm=16, bn=16, bk=32, seed=0)
@example(m=131, n=77, k=200, out="bf16", bm=64, bn=64, bk=64, seed=1)
def test_fp8_gemm_block(m: int, n: int, k: int, out: str, bm: int, bn: int, bk: int, seed: int) -> None:
    run_fp8("block", None, m, n, k, out, {"BM": bm, "BN": bn, "BK": bk}, seed)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 150), n=st.integers(1, 150), groups=st.integers(1, 3),
       bm=st.sampled_from([16, 32, 64]), bn=st.sampled_from([16, 32, 64]), seed=st.integers(0, 2**16))
@example(m=1, n=1, groups=1, bm=16, bn=16, seed=0)
@example(m=129, n=65, groups=3, bm=64, bn=64, seed=1)
def test_int4_gemm_block(m: int, n: int, groups: int, bm: int, bn: int, seed: int) -> None:
    run_int4("block", None, m, n, groups, {"BM": bm, "BN": bn}, seed)


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "sm_90a"])
def test_fp8_gemm_thread(target: str) -> None:
    run_fp8("thread", target, 77, 93, 150, "bf16", {}, 0)


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "sm_90a"])
def test_int4_gemm_thread(target: str) -> None:
    run_int4("thread", target, 70, 45, 2, {}, 0)


def test_int4_reference_unpacks_the_documented_packing() -> None:
    # Row 128g + r sits in the low nibble of byte 64g + r, row 128g + 64 + r in its high nibble.
    wq = np.zeros((128, 1), np.uint8)
    wq[64 + 5, 0] = 0x2F                      # group 1, r = 5: low nibble 15 -> q = 7, high 2 -> q = -6
    s = np.array([[1.0], [0.5]], np.float16)
    w = reference().int4_unpack(wq, s)
    assert w.shape == (256, 1)
    assert w[128 + 5, 0] == 3.5 and w[128 + 64 + 5, 0] == -3.0
    assert w[0, 0] == -8.0                    # a zero byte is q = -8 in both nibbles
