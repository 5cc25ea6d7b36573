"""The math functions (tanh, sigmoid, erf, log, log1p, sin, cos, pow, floor, ceil, round, isnan,
isinf, clamp; max/min on i32) in both interpreters against NumPy, at shapes that are not multiples
of the tiles, with special values (NaN, ±inf, ±0, subnormals, huge and tiny magnitudes, ties of
round); and what sema does with them: constant folding, dtype rules, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_to

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
UNARY = ["tanh", "sigmoid", "erf", "log", "log1p", "sin", "cos", "floor", "ceil", "round"]
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 1.4e-45, 3e38, -3e38, 1.0, -1.0, 0.5,
                     -0.5, 1.5, 2.5, -2.5, 1e-30, 1e5, -1e7, 88.0, -104.0, 4.0, 0.625], np.float32)
NP = {"f32": np.float32, "f16": np.float16, "bf16": np.float32, "i32": np.int32}
_erf = np.vectorize(math.erf, otypes=[np.float64])


def reference(name: str, *xs: np.ndarray) -> np.ndarray:
    """float64 NumPy/math values of the function (independent of ``numerics``)."""
    a = [np.asarray(x, np.float64) for x in xs]
    with np.errstate(all="ignore"):
        return {"tanh": lambda: np.tanh(a[0]), "erf": lambda: _erf(a[0]), "log": lambda: np.log(a[0]),
                "log1p": lambda: np.log1p(a[0]), "sin": lambda: np.sin(a[0]), "cos": lambda: np.cos(a[0]),
                "floor": lambda: np.floor(a[0]), "ceil": lambda: np.ceil(a[0]), "round": lambda: np.round(a[0]),
                "sigmoid": lambda: np.where(a[0] >= 0, 1 / (1 + np.exp(-a[0])), np.exp(a[0]) / (1 + np.exp(a[0]))),
                "pow": lambda: np.power(a[0], a[1]),
                "clamp": lambda: np.where(np.isnan(a[0]), a[0], np.fmin(np.fmax(a[0], a[1]), a[2])),
                "isnan": lambda: np.isnan(a[0]), "isinf": lambda: np.isinf(a[0])}[name]()


def values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator, positive: bool = False) -> np.ndarray:
    """Normal values at mixed scales with the special values sprinkled in, as stored in ``dtype``."""
    scale = rng.choice([1e-3, 1.0, 4.0, 30.0, 1e4, 1e30], shape)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x.flat[rng.integers(0, x.size, min(x.size, 12))] = rng.choice(SPECIALS, min(x.size, 12))
    if positive:
        x = np.abs(x)
    return np.asarray(round_to(x, dtype), NP[dtype]) if dtype != "bf16" else round_to(x, "bf16")


def agree(got: np.ndarray, want64: np.ndarray, dtype: str, ulps: float = 1.0) -> None:
    """Equal to the float64 reference rounded to ``dtype`` within ``ulps`` of the result (the
    definition rounds a float64 value, as the reference is rounded, up to a double rounding), with
    NaN, the infinities and the sign of zero exactly where the reference has them."""
    want = np.asarray(round_to(want64, dtype), np.float64)
    got = np.asarray(got, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"NaN at {np.argwhere(np.isnan(got) != np.isnan(want))[:4]}"
    special = ~np.isfinite(want) | (want == 0)
    bad = special & ~np.isnan(want) & ((got != want) | (np.signbit(got) != np.signbit(want)))
    assert not bad.any(), f"special values differ at {np.argwhere(bad)[:4].tolist()}: {got[bad][:4]} vs {want[bad][:4]}"
    step = np.asarray(round_to(np.spacing(np.abs(want).astype(np.float32)), "f32"), np.float64)
    if dtype in ("f16", "bf16"):
        step = np.abs(want) * (2.0 ** (-10 if dtype == "f16" else -7)) + 2.0 ** -24
    with np.errstate(invalid="ignore"):
        far = ~special & ~np.isnan(want) & (np.abs(got - want) > ulps * step)
    assert not far.any(), f"off by more than {ulps} ulp at {np.argwhere(far)[:4].tolist()}: " \
                          f"{got[far][:4]} vs {want[far][:4]}"


def program(expr: str, dtype: str, out_dtype: str, inputs: int = 1) -> tiledsl.Program:
    params = ", ".join(f"{n}: {dtype}[M, N]" for n in "XYW"[:inputs])
    loads = "\n  ".join(f"{n.lower()} = {n}[i*BM : +BM, j*BN : +BN]" for n in "XYW"[:inputs])
    return tiledsl.load(f"""
kernel f({params}, out Z: {out_dtype}[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{{
  {loads}
  Z[i*BM : +BM, j*BN : +BN] <- {expr}
}}
""")


def run(prog: tiledsl.Program, level: str, target: str | None, out_dtype: str, **inputs: np.ndarray) -> np.ndarray:
    shape = next(iter(inputs.values())).shape
    z = np.zeros(shape, NP[out_dtype])
    report = prog.interpret(level=level, target=target, Z=z, **{k: v.copy() for k, v in inputs.items()})
    assert report.ok, str(report)
    return z


def check_unary(name: str, dtype: str, level: str, target: str | None, x: np.ndarray) -> None:
    if name in ("isnan", "isinf"):
        got = run(program(f"i32({name}(x))", dtype, "i32"), level, target, "i32", X=x)
        assert np.array_equal(got, reference(name, x).astype(np.int32))
        return
    got = run(program(f"{name}(x)", dtype, dtype), level, target, dtype, X=x)
    agree(got, reference(name, x), dtype)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([*UNARY, "isnan", "isinf"]), dtype=st.sampled_from(["f32", "f16", "bf16"]),
       m=st.integers(1, 70), n=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_block_level_unary_functions_agree_with_numpy(name: str, dtype: str, m: int, n: int, seed: int) -> None:
    check_unary(name, dtype, "block", None, values(dtype, (m, n), np.random.default_rng(seed)))


@pytest.mark.parametrize("target", THREAD_TARGETS)
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([*UNARY, "isnan", "isinf"]), dtype=st.sampled_from(["f32", "f16", "bf16"]),
       m=st.integers(1, 40), n=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_thread_level_unary_functions_agree_with_numpy(target: str, name: str, dtype: str, m: int, n: int,
                                                       seed: int) -> None:
    check_unary(name, dtype, "thread", target, values(dtype, (m, n), np.random.default_rng(seed)))


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
def test_special_values_of_every_function(level: str, target: str | None) -> None:
    """Every special value through every function, f32: log(0) = -inf, log(-1) NaN, log1p(-1) = -inf,
    sin(inf) NaN, round(2.5) = 2 and round(-0.5) = -0 (half to even), floor(-0.0) = -0, tanh(-0) = -0,
    sigmoid(-inf) = 0, erf(±inf) = ±1."""
    x = np.tile(SPECIALS, (3, 1))
    for name in [*UNARY, "isnan", "isinf"]:
        check_unary(name, "f32", level, target, x)
    got = run(program("round(x)", "f32", "f32"), level, target, "f32", X=x)
    assert got[0, list(SPECIALS).index(np.float32(2.5))] == 2.0
    assert np.signbit(got[0, list(SPECIALS).index(np.float32(-0.5))])


@pytest.mark.parametrize("level, target", [("block", None), ("thread", "gfx942"), ("thread", "sm_90")])
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_pow_follows_c99(level: str, target: str | None, dtype: str) -> None:
    """pow of every pair of special values and of random ones: pow(x, 0) = 1 and pow(1, y) = 1 even
    for NaN, pow(-8, 1/3) is NaN, pow(-2, 3) = -8, pow(-0, -3) = -inf, pow(-1, ±inf) = 1."""
    sp = np.concatenate([SPECIALS, np.float32([3.0, -3.0, 1 / 3, 2.0, -8.0])])
    x, y = (a.ravel().copy() for a in np.meshgrid(sp, sp))
    rng = np.random.default_rng(1)
    x = np.concatenate([x, values("f32", (300,), rng, positive=True)]).reshape(-1, 7)
    y = np.concatenate([y, rng.uniform(-6, 6, 300).astype(np.float32)]).reshape(-1, 7)
    x, y = (np.asarray(round_to(a, dtype), NP[dtype]) if dtype != "bf16" else round_to(a, dtype) for a in (x, y))
    got = run(program("pow(x, y)", dtype, dtype, 2), level, target, dtype, X=x, Y=y)
    agree(got, reference("pow", x, y), dtype)


@pytest.mark.parametrize("level, target", [("block", None), *[("thread", t) for t in THREAD_TARGETS]])
@pytest.mark.parametrize("dtype", ["f32", "f16", "i32"])
def test_clamp_max_min(level: str, target: str | None, dtype: str) -> None:
    """clamp(x, lo, hi) = min(max(x, lo), hi) with a NaN x kept and a NaN bound ignored, lo > hi giving
    hi (as np.clip); element-wise max/min on i32 with INT_MIN/INT_MAX, and on floats ignoring NaN."""
    rng = np.random.default_rng(2)
    shape = (37, 45)
    if dtype == "i32":
        x, lo, hi = (rng.integers(-2**31, 2**31, shape, dtype=np.int64).astype(np.int32) for _ in range(3))
        x.flat[:4] = lo.flat[:4] = [-2**31, 2**31 - 1, 0, -1]
        hi.flat[:4] = [2**31 - 1, -2**31, 5, -1]
    else:
        x, lo, hi = (values(dtype, shape, rng) for _ in range(3))
    got = run(program("clamp(x, y, w)", dtype, dtype, 3), level, target, dtype, X=x, Y=lo, W=hi)
    want = reference("clamp", x, lo, hi)
    if dtype == "i32":
        assert np.array_equal(got, np.minimum(np.maximum(x, lo), hi))
        got = run(program("max(x, y) - min(x, w) + max(x, 3) + min(-7, w)", dtype, dtype, 3), level, target, dtype,
                  X=x, Y=lo, W=hi)
        with np.errstate(over="ignore"):
            want_i = (np.maximum(x, lo) - np.minimum(x, hi) + np.maximum(x, 3) + np.minimum(-7, hi)).astype(np.int32)
        assert np.array_equal(got, want_i)
        return
    agree(got, want, dtype, ulps=0)
    got = run(program("max(x, y) + min(x, w)", dtype, dtype, 3), level, target, dtype, X=x, Y=lo, W=hi)
    with np.errstate(invalid="ignore"):
        want = np.fmax(x.astype(np.float64), lo) + np.fmin(x.astype(np.float64), hi)
    agree(got, want, dtype)


# ---------------------------------------------------------------- sema

FOLDED = """
kernel k(out Z: f32[8])
  grid (1) as (b)
  block 1 waves
{
  Z[0 : +8] <- fill(%s, f32[8])
}
"""


@pytest.mark.parametrize(("expr", "want"), [
    ("tanh(0.5) + sigmoid(0.0)", math.tanh(0.5) + 0.5), ("erf(1.0)", math.erf(1.0)), ("log(0.0)", -math.inf),
    ("log1p(-1.0)", -math.inf), ("pow(2.0, 10.0)", 1024.0), ("pow(-8.0, 1.0 / 3.0)", math.nan),
    ("sin(PI / 2) + cos(0.0)", 2.0), ("floor(-2.5) + ceil(-2.5) + round(2.5)", -3.0 - 2.0 + 2.0),
    ("clamp(5.0, 0.0, 1.0) + clamp(0.5, 1.0, 0.0)", 1.0), ("where(isnan(log(-1.0)) and isinf(-inf), 7.0, 0.0)", 7.0),
])
def test_static_operands_are_folded(expr: str, want: float) -> None:
    """Compile-time operands fold with the float64 definition, to a constant: no op is left."""
    prog = tiledsl.load(FOLDED % expr)
    ir = prog.ir()
    for name in [*UNARY, "pow", "clamp", "isnan", "isinf"]:
        assert f" {name}(" not in ir, ir
    z = np.zeros(8, np.float32)
    assert prog.interpret(Z=z).ok
    assert np.array_equal(z, np.full(8, np.float32(want)), equal_nan=True)


ERRORS = """
kernel k(X: f32[M, 32], I: i32[M, 32], out Z: f32[M, 32])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  x = X[b*16 : +16, :]
  k = I[b*16 : +16, :]
  Z[b*16 : +16, :] <- %s
}
"""


@pytest.mark.parametrize(("expr", "message"), [
    ("tanh(k)", "tanh() takes f16, bf16, f32, f8e4m3, f8e5m2, got i32"),
    ("f32(isnan(k))", "isnan() takes f16, bf16, f32, got i32"),
    ("pow(x)", "pow() takes 2 arguments, got 1"),
    ("pow(f32(k), k)", "'pow' of f32[16,32] and i32[16,32]: dtypes differ"),
    ("pow(f32(k), 2.5) + f32(pow(k, 2))", "pow() takes f16, bf16, f32, got i32"),
    ("f32(clamp(x > 0.0, 0, 1))", "'clamp' does not take booleans"),
    ("sin(x, x)", "sin() takes 1 arguments, got 2"),
    ("tanh(1 > 0) + x", "tanh() does not take booleans"),
    ("x + f32(isinf(1 > 0))", "isinf() does not take booleans"),
])
def test_errors(expr: str, message: str) -> None:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(ERRORS % expr)
    assert message in str(info.value.message), info.value.message
    assert info.value.loc.line == 8
