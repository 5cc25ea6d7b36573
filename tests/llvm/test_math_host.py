"""Native numerics of the math functions, run on the CPU.

1. The f32 sequences every target runs (``tiledsl.llvm.math_f32``), JIT-compiled for the host
   (``host_math``), against the interpreters' definition (``numerics.MATH64``, float64) over hundreds of
   thousands of inputs per function and range, within the bounds that docs/targets/math.md states,
   and exactly at the special values.
2. Whole kernels (math functions, argmax/argmin, cumsum) lowered for the thread IR of generic,
   gfx942, gfx1100 and sm_90 and run on the host SIMT emulator (``host_simt``): they compute what the
   thread interpreter computes, within those bounds.

The GPUs' exp2 primitive (``v_exp_f32`` 1 ulp, ``ex2.approx.ftz`` about 2 ulp) adds to the functions
built on it; that part runs in the GPU tests (``tests/runtime/test_cuda_math.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from host_math import host_math, ulp_error
from test_lower_host import run_both

from tiledsl.interp.numerics import MATH64

RNG = np.random.default_rng(2024)
N = 200_000

#: The bound (in ulps of the f32 result) of each sequence on the host: docs/targets/math.md §3.
BOUNDS = {"tanh": 2.0, "sigmoid": 3.5, "erf": 2.0, "log": 1.0, "log1p": 1.0, "sin": 2.0, "cos": 2.0}
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, 1.0, -1.0,
                     0.5, -0.5, 3.4028235e38, -3.4028235e38, 0.625, -0.625, 4.0, 88.7, -88.7, -104.0, -150.0, 1e10,
                     -1e10, 2.0 ** 12, 1.5707964, 3.1415927, 2.0 ** 24, 2.0 ** 100], np.float32)


def magnitudes(lo: float, hi: float, n: int = N, signed: bool = True) -> np.ndarray:
    """f32 values whose log2 magnitudes are uniform in [lo, hi), of both signs."""
    x = (2.0 ** RNG.uniform(lo, hi, n)).astype(np.float32)
    return x * RNG.choice(np.float32([-1, 1]), n) if signed else x


RANGES = {
    "tanh": [magnitudes(-30, -1), magnitudes(-1, 0.5), magnitudes(0.5, 6)],
    "sigmoid": [RNG.uniform(-110, 40, N).astype(np.float32), magnitudes(-30, 2)],
    "erf": [magnitudes(-30, -1), magnitudes(-1, 0.3), magnitudes(0.3, 2.2)],
    "log": [magnitudes(-149, 128, signed=False), (1 + RNG.uniform(-0.3, 0.5, N)).astype(np.float32)],
    "log1p": [magnitudes(-30, 0, signed=False), -magnitudes(-30, -0.01, signed=False),
              magnitudes(0, 100, signed=False)],
    "sin": [RNG.uniform(-10, 10, N).astype(np.float32), magnitudes(-20, 12), magnitudes(12, 128)],
    "cos": [RNG.uniform(-10, 10, N).astype(np.float32), magnitudes(-20, 12), magnitudes(12, 128)],
}


def near_multiples_of_half_pi() -> np.ndarray:
    """The f32 values next to k·π/2 for k up to 10^6, where sin or cos nearly vanishes and the
    reduction's cancellation is the hardest."""
    k = np.unique(np.concatenate([np.arange(1, 2000), RNG.integers(2000, 10**6, 5000)]))
    centre = (k * (np.pi / 2)).astype(np.float32)
    return np.concatenate([centre, np.nextafter(centre, np.float32(0)), np.nextafter(centre, np.float32(np.inf))])


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_sequence_within_its_bound(name: str) -> None:
    extra = [near_multiples_of_half_pi()] if name in ("sin", "cos") else []
    for x in [*RANGES[name], *extra]:
        got = host_math(name, x)
        with np.errstate(all="ignore"):
            want = MATH64[name](x.astype(np.float64))
        err = ulp_error(got, want)
        worst = int(np.argmax(err))
        assert err.max() <= BOUNDS[name], f"{name}({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}: " \
                                          f"{err.max():.2f} ulp"


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_special_values_are_exact(name: str) -> None:
    """NaN, the infinities, the signed zeros and the results that round to them exactly as the
    interpreters have them (results below 2^-126 included: the host's exp2 keeps subnormals)."""
    got = host_math(name, SPECIALS)
    with np.errstate(all="ignore"):
        want = MATH64[name](SPECIALS.astype(np.float64)).astype(np.float32)
    exact = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    assert same[exact].all(), f"{name} of {SPECIALS[exact & ~same]}: {got[exact & ~same]}, want {want[exact & ~same]}"
    assert ulp_error(got, MATH64[name](SPECIALS.astype(np.float64))).max() <= BOUNDS[name]


def test_pow_within_its_bound() -> None:
    """pow: 2 ulp plus one per 16 of |y| (the error of log2|x| in two f32 grows with y)."""
    cases = [(magnitudes(-20, 20, signed=False), RNG.uniform(-8, 8, N)),
             (magnitudes(-3, 3, signed=False), RNG.uniform(-120, 120, N)),
             (magnitudes(-5, 5), RNG.integers(-30, 30, N)),
             ((1 + RNG.uniform(-1e-3, 1e-3, N)), RNG.uniform(-5000, 5000, N)),
             (magnitudes(-149, 128, signed=False), RNG.uniform(-1, 1, N))]
    for x, y in cases:
        x, y = np.float32(x), np.float32(y)
        got = host_math("pow", x, y)
        with np.errstate(all="ignore"):
            want = np.power(x.astype(np.float64), y.astype(np.float64))
        err = ulp_error(got, want)
        assert (err <= 2 + np.abs(y) / 16).all(), f"pow{(x[err.argmax()], y[err.argmax()])}: {err.max():.2f} ulp"


def test_pow_special_cases_are_c99() -> None:
    """Every pair of special values: pow(x, ±0) = 1 and pow(1, y) = 1 even for NaN, pow(-1, ±inf) = 1,
    pow(-0, -3) = -inf, pow(-inf, 3) = -inf, pow(-8, 1/3) NaN, pow(3e38, 2^25) = inf, pow(0.5, -inf) = inf."""
    sp = np.concatenate([SPECIALS, np.float32([3.0, -3.0, 1 / 3, 2.0, -8.0, 2.0 ** 25, 2.0 ** 24 + 2])])
    x, y = (a.ravel() for a in np.meshgrid(sp, sp))
    got = host_math("pow", x, y)
    with np.errstate(all="ignore"):
        want64 = np.power(x.astype(np.float64), y.astype(np.float64))
        want = want64.astype(np.float32)
    exact = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    bad = exact & ~same
    assert not bad.any(), f"pow{list(zip(x[bad], y[bad]))[:4]} = {got[bad][:4]}, want {want[bad][:4]}"
    normal = (np.abs(want64) >= 2.0 ** -126) & np.isfinite(want)
    assert (ulp_error(got, want64)[normal] <= 2 + np.nan_to_num(np.abs(y[normal])) / 16).all()


# ---------------------------------------------------------------- kernels on the host SIMT emulator

KERNEL = """
kernel math(X: f32[M, N], Y: f32[M, N], out E: f32[M, N], out P: f32[M, N], out H: f16[M, N], out B: i32[M, N],
            out V: f32[M], out I: i32[M], out J: i32[M], out C: f32[M, N], out D: i32[M, N],
            out K: i32[M], out S: i32[M, N])
  param BM = 16, BN = 96
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  x = X[b*BM : +BM, 0 : +BN]
  y = Y[b*BM : +BM, 0 : +BN]
  E[b*BM : +BM, 0 : +BN] <- tanh(x) + sigmoid(y) + erf(x) + log(abs(y)) + log1p(abs(x)) + sin(y) + cos(x)
                            + floor(y) + ceil(x) + round(y)
  P[b*BM : +BM, 0 : +BN] <- pow(abs(x), y)
  h = f16(x)
  H[b*BM : +BM, 0 : +BN] <- tanh(h) + sigmoid(h) + erf(h) + sin(h) + clamp(h, f16(-0.5), f16(0.5))
  B[b*BM : +BM, 0 : +BN] <- i32(isnan(x)) + 2 * i32(isinf(y)) + clamp(i32(y * 10.0), -7, 9)
  v, i = argmax(x, axis=1)
  V[b*BM : +BM] <- v
  I[b*BM : +BM] <- i
  J[b*BM : +BM] <- argmin(y, axis=1)
  C[b*BM : +BM, 0 : +BN] <- cumsum(x, axis=1)
  D[b*BM : +BM, 0 : +BN] <- cumsum(i32(y * 1000.0), axis=1)
  w = Y[b*BM : +BM, 0 : +BN] @ blocked(spt=[1, 1], order=[1, 0], waves=[1, 4])    # rows across the waves
  K[b*BM : +BM] <- argmin(w, axis=1)
  S[b*BM : +BM, 0 : +BN] <- cumsum(i32(w * 1000.0), axis=1)
}
"""


@pytest.mark.parametrize("like", ["generic", "gfx942", "gfx1100", "sm_90"])
def test_kernel_on_the_host_agrees_with_the_thread_interpreter(like: str) -> None:
    """Every function, argmax/argmin and cumsum in one kernel (37 rows: a partial block), with NaN,
    ±inf, ±0, subnormals and huge values among the inputs: the lowered code on the CPU against the
    thread interpreter (exact for the integers, arg-reductions and sums of integers; within the bounds
    for the functions)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((37, 96)) * 3).astype(np.float32)
    y = (rng.standard_normal((37, 96)) * 5).astype(np.float32)
    x[0, :12] = y[1, :12] = SPECIALS[:12]
    x[2, 3] = x[2, 40] = 1e20           # a tie for the argmax
    with np.errstate(all="ignore"):
        host, interp, _ = run_both(KERNEL, like, {"X": x, "Y": y})
    for name in ("B", "I", "J", "D", "K", "S"):
        assert np.array_equal(host[name], interp[name]), name
    assert np.array_equal(host["V"], interp["V"], equal_nan=True)
    assert host["I"][2] == 3 and np.array_equal(host["K"], host["J"])
    # E sums ten functions: a few ulp of each, relative to the sum of their magnitudes (about 10);
    # P within pow's bound; C is a float sum in another order than the interpreter's.
    tolerances = {"E": lambda t: 8 * np.spacing(np.float32(np.abs(t) + 10)),
                  "P": lambda t: 10 * np.spacing(np.abs(t).astype(np.float32)),
                  "C": lambda t: 1e-5 * np.cumsum(np.abs(x), axis=1)}
    for name, tolerance in tolerances.items():
        h, t = host[name], interp[name]
        assert np.array_equal(np.isnan(h), np.isnan(t)), name
        special = ~np.isfinite(t)
        assert np.array_equal(h[special & ~np.isnan(t)], t[special & ~np.isnan(t)]), name
        with np.errstate(invalid="ignore"):
            assert (np.abs(h - t) <= tolerance(t))[~special].all(), name
    hh, th = host["H"], interp["H"]
    assert np.array_equal(np.isnan(hh), np.isnan(th))
    ok = ~np.isnan(th)
    assert (np.abs(hh[ok] - th[ok]) <= 2 * np.spacing(np.abs(th[ok]).astype(np.float16)).astype(np.float64)).all()
