"""The math functions, argmax/argmin and cumsum on a real NVIDIA GPU (skipped where there is none),
on sm_90 and sm_90a: each function over a million inputs against the interpreters' float64
definition within the GPU bounds of docs/targets/math.md §3 (the sequences' own error plus that of
``ex2.approx.ftz``; results below 2^-126 may be flushed to 0), the special values exactly, and
argmax/cumsum against NumPy and the thread interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import tiledsl
from tiledsl.interp.numerics import MATH64
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

TARGETS = ["sm_90", "sm_90a"]
#: ulps of the f32 result on NVIDIA (docs/targets/math.md §3).
GPU_BOUNDS = {"tanh": 4.0, "sigmoid": 6.0, "erf": 3.0, "log": 1.0, "log1p": 1.0, "sin": 2.0, "cos": 2.0,
              "floor": 0.0, "ceil": 0.0, "round": 0.0}
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5,
                     3.4028235e38, -3.4028235e38, 4096.0, 1e10, -104.0, 88.0], np.float32)

UNARY = """
kernel f(X: {dt}[N], out Z: {dt}[N])
  grid (cdiv(N, 1024)) as (b)
  block 4 waves
{{
  Z[b*1024 : +1024] <- {fn}(X[b*1024 : +1024])
}}
"""

POW = """
kernel p(X: f32[N], Y: f32[N], out Z: f32[N])
  grid (cdiv(N, 1024)) as (b)
  block 4 waves
{
  Z[b*1024 : +1024] <- pow(X[b*1024 : +1024], Y[b*1024 : +1024])
}
"""


def inputs(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = {"log": (-149, 128), "log1p": (-30, 40)}.get(name, (-30, 20 if name in ("sin", "cos") else 7))
    x = (2.0 ** rng.uniform(lo, hi, n)).astype(np.float32)
    if name not in ("log", "log1p"):
        x *= rng.choice(np.float32([-1, 1]), n)
    x[:SPECIALS.size] = SPECIALS
    return x


def ulps(got: np.ndarray, want64: np.ndarray) -> np.ndarray:
    """Error in ulps of the f32 result; results below 2^-126 may be flushed (an error under 2^-126 is
    0 ulp); NaN and the infinities must match."""
    want32 = np.abs(want64).astype(np.float32)
    spacing = np.spacing(np.where(np.isfinite(want32), want32, np.float32(3e38))).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.float64) - want64)
        out = err / np.maximum(spacing, 2.0 ** -149)
    flushed = (np.abs(want64) < 2.0 ** -126) & (err <= 2.0 ** -126)
    same = (np.isnan(got) & np.isnan(want64)) | (got == want64.astype(np.float32)) | flushed
    return np.where(same, 0.0, out)


def launch(source: str, target: str, **arrays: np.ndarray) -> np.ndarray:
    n = next(iter(arrays.values())).size
    z = cupy.zeros(n, next(iter(arrays.values())).dtype)
    tiledsl.load(source).compile(target=target).launcher()(Z=z, **{k: cupy.asarray(v) for k, v in arrays.items()})
    return z.get()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(GPU_BOUNDS))
def test_function_within_its_gpu_bound(target: str, name: str) -> None:
    x = inputs(name, 1 << 20, np.random.default_rng(1))
    got = launch(UNARY.format(dt="f32", fn=name), target, X=x)
    with np.errstate(all="ignore"):
        want = MATH64[name](x.astype(np.float64))
    err = ulps(got, want)
    worst = int(np.argmax(err))
    assert err.max() <= GPU_BOUNDS[name], f"{name}({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"
    exact = ~np.isfinite(want) | (want == 0)
    assert np.array_equal(np.signbit(got[exact]), np.signbit(want[exact]))


@pytest.mark.parametrize("target", TARGETS)
def test_pow_within_its_gpu_bound(target: str) -> None:
    rng = np.random.default_rng(2)
    x = (2.0 ** rng.uniform(-10, 10, 1 << 20)).astype(np.float32) * rng.choice(np.float32([-1, 1]), 1 << 20)
    y = rng.uniform(-20, 20, 1 << 20).astype(np.float32)
    y[::3] = np.round(y[::3])                         # integers: negative x gives a result
    sp = np.concatenate([SPECIALS, np.float32([3.0, -3.0, 2.0])])
    xs, ys = np.meshgrid(sp, sp)
    x[:xs.size], y[:ys.size] = xs.ravel(), ys.ravel()
    got = launch(POW, target, X=x, Y=y)
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64))
    assert (ulps(got, want) <= 4 + np.nan_to_num(np.abs(y)) / 16).all()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_16_bit_results(target: str, dtype: str) -> None:
    """tanh.approx.f32 where the result is f16/bf16, the sequences elsewhere: one ulp of the dtype."""
    rng = np.random.default_rng(3)
    x32 = (rng.standard_normal(1 << 16) * 3).astype(np.float32)
    for name in ("tanh", "sigmoid", "erf", "sin"):
        if dtype == "f16":
            x = x32.astype(np.float16)
            got = launch(UNARY.format(dt=dtype, fn=name), target, X=x).astype(np.float64)
            xv = x.astype(np.float64)
            step = 2.0 ** -10
        else:
            bits = (x32.view(np.uint32) >> 16).astype(np.uint16)
            got = (launch(UNARY.format(dt=dtype, fn=name), target, X=bits).astype(np.uint32) << 16).view(np.float32)
            xv = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
            step = 2.0 ** -7
        want = MATH64[name](xv)
        assert (np.abs(got - want) <= step * np.abs(want) + 2.0 ** -24).all(), name


LINES = """
kernel lines(X: f32[M, N], out V: f32[M], out I: i32[M], out C: f32[M, N], out K: i32[M, N])
  param BM = 8, BN = 256
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  x = X[b*BM : +BM, 0 : +BN] pad (inf - inf) @ blocked(spt=[1, 1], order=[1, 0], waves=[1, 4])
  v, i = argmax(x, axis=1)
  V[b*BM : +BM] <- v
  I[b*BM : +BM] <- i
  y = X[b*BM : +BM, 0 : +BN]
  C[b*BM : +BM, 0 : +BN] <- cumsum(y, axis=1)
  K[b*BM : +BM, 0 : +BN] <- cumsum(i32(y * 100.0), axis=1)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_argmax_and_cumsum_on_the_gpu(target: str) -> None:
    """Rows of 200 over 4 warps (pairs through shared memory), ties and NaNs; prefix sums."""
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((37, 200)) * 4).astype(np.float32)      # ties
    x[rng.random(x.shape) < 0.05] = np.nan
    x[3, :] = np.nan
    x[5, 150] = 1e9
    prog = tiledsl.load(LINES)
    gpu = {"V": cupy.zeros(37, np.float32), "I": cupy.full(37, -1, np.int32),
           "C": cupy.zeros((37, 200), np.float32), "K": cupy.zeros((37, 200), np.int32)}
    prog.compile(target=target).launcher()(X=cupy.asarray(x), **gpu)
    interp = {k: np.zeros(v.shape, v.dtype) for k, v in gpu.items()}
    assert prog.interpret(level="thread", target=target, X=x, **interp).ok
    got = {k: v.get() for k, v in gpu.items()}
    nan = np.isnan(x)
    best = np.max(np.where(nan, -np.inf, x), axis=1, keepdims=True)
    want_i = np.argmax(~nan & (x == best), axis=1)
    assert np.array_equal(got["I"], want_i) and np.array_equal(got["I"], interp["I"])
    assert got["I"][5] == 150 and got["I"][3] == 0
    assert np.array_equal(got["V"], interp["V"], equal_nan=True)
    assert np.array_equal(np.isnan(got["C"]), np.isnan(np.cumsum(x, axis=1)))
    finite = ~np.isnan(got["C"])
    assert np.allclose(got["C"][finite], np.cumsum(x.astype(np.float64), axis=1)[finite], rtol=1e-6, atol=1e-3)
    with np.errstate(invalid="ignore"):
        k = np.clip(np.where(nan, 0, np.float32(x * 100).astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
    assert np.array_equal(got["K"], np.cumsum(k, axis=1, dtype=np.int32))
    assert np.array_equal(got["K"], interp["K"])
