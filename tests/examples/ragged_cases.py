"""Inputs for the ragged, backward and top-k examples (``attention_varlen``, ``moe_gemm``,
``layernorm_bwd``, ``topk``) and their float64 references from ``examples/reference.py``.

Shared by the interpreter and native tests (``test_ragged.py``) and the GPU tests
(``tests/runtime/test_cuda_ragged.py``); self-contained so that each can load it by path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tiledsl
from tiledsl.interp.numerics import round_bf16

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Relative Frobenius error allowed for an output of each dtype.
TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-5, "i32": 0.0}


def _reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference_ragged", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference_module()


@dataclass
class Case:
    """An example, its compile-time values, its inputs (outs filled with NaN, accumulators with 0)
    and which outs to compare at which tolerance."""

    example: str
    params: dict[str, Any]
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    outs: dict[str, float] = field(default_factory=dict)

    def program(self) -> tiledsl.Program:
        return tiledsl.load(EXAMPLES / f"{self.example}.tdsl", params=self.params)

    def reference(self, args: dict[str, Any]) -> dict[str, np.ndarray]:
        want = getattr(REF, self.example)(**args, **self.params)
        return want if isinstance(want, dict) else {next(iter(self.outs)): want}


def offsets(sizes: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, scale: float = 1.0) -> np.ndarray:
    """Normal values of ``dtype``: bf16 as f32 arrays holding bf16 values (NumPy has no bf16), so
    that the kernel and the reference see the same inputs."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    return round_bf16(x) if dtype == "bf16" else x.astype({"f16": np.float16, "f32": np.float32}[dtype])


def _out(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return np.full(shape, np.nan, np.float16 if dtype == "f16" else np.float32)


def varlen(lens: list[int], d: int, causal: int, dtype: str = "f16", bm: int = 64, bn: int = 32,
           waves: int = 4, stages: int = 2, heads: int = 2) -> Case:
    cu = offsets(lens)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        t = int(cu[-1])
        q, k, v = (_values(rng, (t, heads, d), dtype) for _ in range(3))
        return {"Q": q, "K": k, "V": v, "Cu": cu.copy(), "O": _out((t, heads, d), dtype), "scale": d ** -0.5,
                "max_seqlen": max(lens)}
    params = {"D": d, "T": dtype, "CAUSAL": causal, "BM": bm, "BN": bn, "WAVES": waves, "STAGES": stages}
    return Case("attention_varlen", params, inputs, {"O": TOLERANCE[dtype]})


def moe(counts: list[int], k: int, n: int, dtype: str = "f16", bm: int = 64, bn: int = 64, bk: int = 32,
        waves: int = 4, stages: int = 2) -> Case:
    off = offsets(counts)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        t, e = int(off[-1]), len(counts)
        return {"X": _values(rng, (t, k), dtype), "W": _values(rng, (e, k, n), dtype, k ** -0.5),
                "Off": off.copy(), "Y": _out((t, n), dtype), "max_rows": max(max(counts), 1)}
    params = {"T": dtype, "BM": bm, "BN": bn, "BK": bk, "WAVES": waves, "STAGES": stages}
    return Case("moe_gemm", params, inputs, {"Y": TOLERANCE[dtype]})


def layernorm_bwd(m: int, n: int, bm: int = 16, bn: int = 128) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": _values(rng, (m, n), "f32", 3.0) + np.float32(1.0), "W": _values(rng, (n,), "f32"),
                "DY": _values(rng, (m, n), "f32"), "DX": _out((m, n), "f32"),
                "DW": np.zeros(n, np.float32), "DB": np.zeros(n, np.float32), "eps": 1e-5}
    # dW and dB sum M products in f32 (over blocks in any order): a looser bound than dX's.
    return Case("layernorm_bwd", {"BM": bm, "BN": bn}, inputs, {"DX": 1e-5, "DW": 1e-5 * max(1, m) ** 0.5,
                                                                 "DB": 1e-5 * max(1, m) ** 0.5})


def topk(m: int, n: int, k: int, dtype: str = "f32", bm: int = 16, bn: int = 128, ties: bool = True) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        x = _values(rng, (m, n), dtype)
        if ties and n > 1:                 # equal values in a row: their order is by index
            x[::2, rng.integers(0, n, n // 2 + 1)] = x[::2, :1]
        return {"X": x, "V": _out((m, k), dtype), "I": np.full((m, k), -7, np.int32)}
    return Case("topk", {"T": dtype, "K": k, "BM": bm, "BN": bn}, inputs, {"V": 0.0, "I": 0.0})


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert g.shape == w.shape
    assert np.all(np.isfinite(g)), "the kernel left non-finite values (unwritten NaN?) in its output"
    return float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30))


def run_level(case: Case, level: str, target: str | None = None, seed: int = 0) -> tuple[dict[str, Any],
                                                                                          dict[str, np.ndarray]]:
    """The case's inputs and its outs after one interpretation (asserting that no check failed)."""
    args = case.inputs(np.random.default_rng(seed))
    report = case.program().interpret(level=level, target=target, **args)
    assert report.ok, str(report)
    return args, {k: args[k] for k in case.outs}


def check(case: Case, got: dict[str, np.ndarray], want: dict[str, np.ndarray], scale: float = 1.0) -> None:
    """Each out within its tolerance (times ``scale``); exact ones (top-k) equal."""
    for name, tol in case.outs.items():
        if tol == 0.0:
            np.testing.assert_array_equal(np.asarray(got[name], np.float64), np.asarray(want[name], np.float64),
                                          err_msg=name)
        else:
            err = rel_error(got[name], want[name])
            assert err <= tol * scale, f"{case.example} {case.params} {name}: relative error {err:.3e}"
