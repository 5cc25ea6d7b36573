"""Each example against its float64 NumPy reference, at hypothesis-drawn shapes and tile
sizes, most of them not multiples of one another (the masked tails are the point)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Relative Frobenius error allowed for an output of each dtype.
TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-4}
# Caps the work of one attention case (Z*H*N*D) so that the file stays fast.
ATTENTION_CAP = 2 * 300 * 64
TILES = [16, 32, 64, 128]


@functools.cache
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def program(name: str, params: tuple[tuple[str, int], ...]) -> tiledsl.Program:
    return tiledsl.load(EXAMPLES / f"{name}.tdsl", params=dict(params))


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = out.astype(np.float64), np.asarray(ref, dtype=np.float64)
    assert out64.shape == ref64.shape
    assert np.all(np.isfinite(out64)), "the kernel left non-finite values (unwritten NaN?) in its output"
    denom = np.linalg.norm(ref64)
    return float(np.linalg.norm(out64 - ref64) / (denom if denom > 0 else 1.0))


def run_and_compare(name: str, params: dict[str, int], out: str, dtype: str, **args: object) -> None:
    prog = program(name, tuple(sorted(params.items())))
    report = prog.interpret(**args)
    assert report.ok, str(report)
    ref = getattr(reference(), name)(**args, **params)
    outs = ref if isinstance(ref, dict) else {out: ref}
    for name_out, want in outs.items():
        limit = TOLERANCE[dtype] if name_out == out else TOLERANCE[prog_dtype(prog, name_out)]
        err = rel_error(args[name_out], want)  # type: ignore[arg-type]
        assert err <= limit, f"{name} {params} {name_out}: relative error {err:.3e}"


def prog_dtype(prog: tiledsl.Program, name: str) -> str:
    return next(p.dtype for p in prog.tensor_params if p.name == name)


@settings(max_examples=60, deadline=None)
@given(z=st.integers(1, 2), h=st.integers(1, 2), n=st.integers(1, 300), d=st.sampled_from([16, 32, 64, 128]),
       bm=st.sampled_from(TILES), bn=st.sampled_from(TILES), causal=st.sampled_from([0, 1]),
       seed=st.integers(0, 2**16))
@example(z=1, h=1, n=1, d=16, bm=128, bn=16, causal=1, seed=0)
@example(z=1, h=1, n=300, d=128, bm=16, bn=128, causal=1, seed=1)
@example(z=2, h=1, n=77, d=64, bm=32, bn=16, causal=0, seed=2)
@example(z=1, h=2, n=129, d=32, bm=64, bn=64, causal=1, seed=3)
def test_attention(z: int, h: int, n: int, d: int, bm: int, bn: int, causal: int, seed: int) -> None:
    if z * h * n * d > ATTENTION_CAP:
        z = h = 1
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((z, h, n, d)).astype(np.float16) for _ in range(3))
    o = np.full((z, h, n, d), np.nan, dtype=np.float16)
    lse = np.full((z, h, n), np.nan, dtype=np.float32)
    run_and_compare("attention", {"BM": bm, "BN": bn, "CAUSAL": causal}, "O", "f16",
                    Q=q, K=k, V=v, O=o, L=lse, scale=float(d) ** -0.5)


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 150), n=st.integers(1, 150), k=st.integers(1, 150),
       bm=st.integers(16, 64), bn=st.integers(16, 64), bk=st.integers(16, 64), seed=st.integers(0, 2**16))
@example(m=1, n=1, k=1, bm=16, bn=16, bk=16, seed=0)
@example(m=150, n=150, k=150, bm=64, bn=64, bk=64, seed=1)
@example(m=65, n=33, k=100, bm=17, bn=31, bk=23, seed=2)
def test_gemm(m: int, n: int, k: int, bm: int, bn: int, bk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.full((m, n), np.nan, dtype=np.float32)
    run_and_compare("gemm", {"BM": bm, "BN": bn, "BK": bk}, "C", "f32", A=a, B=b, C=c)


ROWS_STRATEGY = {"m": st.integers(1, 70), "n": st.integers(1, 300), "bm": st.sampled_from([1, 4, 16, 32]),
                 "bn": st.sampled_from([16, 32, 64, 128]), "seed": st.integers(0, 2**16)}


@settings(max_examples=40, deadline=None)
@given(**ROWS_STRATEGY)
@example(m=1, n=1, bm=16, bn=128, seed=0)
@example(m=70, n=300, bm=16, bn=128, seed=1)
@example(m=17, n=129, bm=4, bn=64, seed=2)
def test_softmax(m: int, n: int, bm: int, bn: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, n)) * 4).astype(np.float32)
    y = np.full((m, n), np.nan, dtype=np.float32)
    run_and_compare("softmax", {"BM": bm, "BN": bn}, "Y", "f32", X=x, Y=y)


@settings(max_examples=40, deadline=None)
@given(**ROWS_STRATEGY)
@example(m=1, n=1, bm=16, bn=128, seed=0)
@example(m=70, n=300, bm=16, bn=128, seed=1)
@example(m=33, n=17, bm=32, bn=16, seed=2)
def test_layernorm(m: int, n: int, bm: int, bn: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, n)) * 3 + 1).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    y = np.full((m, n), np.nan, dtype=np.float32)
    run_and_compare("layernorm", {"BM": bm, "BN": bn}, "Y", "f32", X=x, W=w, B=b, Y=y, eps=1e-5)


def test_attention_detects_a_wrong_answer() -> None:
    """The comparison itself can fail: a kernel output perturbed past the f16 tolerance is caught."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((1, 1, 40, 16)).astype(np.float16) for _ in range(3))
    o = np.full_like(q, np.nan)
    lse = np.full((1, 1, 40), np.nan, np.float32)
    assert program("attention", (("BM", 16), ("BN", 16))).interpret(Q=q, K=k, V=v, O=o, L=lse, scale=0.25).ok
    ref = reference().attention(q, k, v, 0.25)
    assert rel_error(o, ref["O"]) <= TOLERANCE["f16"] and rel_error(lse, ref["L"]) <= TOLERANCE["f32"]
    # A different scale than the kernel used: the error must be far over the tolerance.
    wrong = reference().attention(q, k, v, 0.5)
    assert rel_error(o, wrong["O"]) > 10 * TOLERANCE["f16"] and rel_error(lse, wrong["L"]) > 10 * TOLERANCE["f32"]


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 400), n=st.integers(1, 150), bm=st.sampled_from([1, 16, 32, 64]),
       bn=st.sampled_from([16, 32, 64, 128]), seed=st.integers(0, 2**16))
@example(m=1, n=1, bm=64, bn=16, seed=0)
@example(m=400, n=150, bm=16, bn=32, seed=1)
@example(m=77, n=65, bm=32, bn=64, seed=2)
def test_reduce_atomic(m: int, n: int, bm: int, bn: int, seed: int) -> None:
    """Many blocks fold their partial column sums, maxima and counts into the same outputs."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, n)) * 3).astype(np.float32)
    out = {"S": np.zeros(n, np.float32), "Mx": np.full(n, -np.inf, np.float32), "Pos": np.zeros(1, np.int32)}
    report = program("reduce_atomic", (("BM", bm), ("BN", bn))).interpret(X=x, **out)
    assert report.ok, str(report)
    ref = reference().reduce_atomic(x)
    assert rel_error(out["S"], ref["S"]) <= TOLERANCE["f32"]
    np.testing.assert_array_equal(out["Mx"], ref["Mx"])
    assert out["Pos"][0] == ref["Pos"][0]
