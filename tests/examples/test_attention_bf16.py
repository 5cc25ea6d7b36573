"""The attention example at T=bf16 (its dtype parameter) against the float64 NumPy reference at
the block level, at hypothesis-drawn shapes that are not multiples of the tiles: given by
``params``, and bound from bf16 arrays (ml_dtypes)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_bf16

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BF16_TOLERANCE = 1.6e-2


@functools.cache
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference_bf16", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    out64 = np.asarray(out, dtype=np.float64)
    assert np.all(np.isfinite(out64)), "unwritten (NaN) output"
    return float(np.linalg.norm(out64 - ref) / np.linalg.norm(ref))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 200), d=st.sampled_from([16, 32, 64]), bm=st.sampled_from([32, 64, 128]),
       bn=st.sampled_from([16, 32, 64]), causal=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
@example(n=77, d=32, bm=64, bn=32, causal=1, seed=0)
def test_attention_bf16_block_level(n: int, d: int, bm: int, bn: int, causal: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # bf16 values in f32 arrays: the kernel holds them exactly, so the reference sees the same inputs.
    q, k, v = (round_bf16(rng.standard_normal((1, 2, n, d)).astype(np.float32)) for _ in range(3))
    o = np.full_like(q, np.nan)
    params = {"T": "bf16", "BM": bm, "BN": bn, "CAUSAL": causal}
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params=params)
    lse = np.full(q.shape[:3], np.nan, np.float32)
    report = prog.interpret(Q=q, K=k, V=v, O=o, L=lse, scale=d ** -0.5)
    assert report.ok, str(report)
    np.testing.assert_array_equal(o, round_bf16(o))           # O was stored as bf16
    ref = reference().attention(q, k, v, d ** -0.5, CAUSAL=causal)
    assert _rel(o, ref["O"]) <= BF16_TOLERANCE
    assert _rel(lse, ref["L"]) <= 1e-5                        # L is f32 whatever T is


def test_attention_bf16_bound_from_bf16_arrays() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 1, 93, 32)).astype(ml_dtypes.bfloat16) for _ in range(3))
    o = np.zeros_like(q)
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"BM": 64, "BN": 32})
    lse = np.zeros((2, 1, 93), np.float32)
    assert prog.interpret(Q=q, K=k, V=v, O=o, L=lse, scale=0.2).ok
    assert prog.bind_shapes({"Q": q, "K": k, "V": v, "O": o, "L": lse})[0].dtypes == {"T": "bf16"}
    ref = reference().attention(*(x.astype(np.float32) for x in (q, k, v)), 0.2)["O"]
    assert _rel(o.astype(np.float32), ref) <= BF16_TOLERANCE
    # The same arrays in f16 run the f16 kernel: a different result, closer to the reference.
    o16 = np.zeros(q.shape, np.float16)
    assert prog.interpret(Q=q.astype(np.float16), K=k.astype(np.float16), V=v.astype(np.float16), O=o16,
                          L=lse, scale=0.2).ok
    assert _rel(o16, ref) < _rel(o.astype(np.float32), ref) and _rel(o16, ref) <= 2e-3
