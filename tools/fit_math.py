"""Derive the polynomial coefficients of the f32 math sequences (``tiledsl/llvm/lower_math.py``).

    python tools/fit_math.py            # prints each fit: its coefficients and its error in f32

Each polynomial is a weighted minimax fit (Lawson's algorithm: least squares, reweighted by the
error until the largest weighted error stops falling) on a dense Chebyshev grid, in float64 against
float64/long-double references (NumPy, ``math.erfc``); the coefficients are then rounded to f32 and
the approximation is evaluated as the lowering evaluates it (f32 Horner steps, each an FMA) to
report the error that the rounding to f32 leaves. The weights make the fit minimise the error of
the function the sequence returns, relative (or, for erf near 1, absolute), not of the polynomial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LD = np.longdouble


@dataclass
class Fit:
    name: str
    lo: float
    hi: float
    degree: int
    target: Callable[[np.ndarray], np.ndarray]      # the polynomial's ideal values, in long double
    weight: Callable[[np.ndarray], np.ndarray]      # what one unit of polynomial error costs
    variable: Callable[[np.ndarray], np.ndarray] = lambda x: x


def lawson(fit: Fit, points: int = 6000, iters: int = 400) -> np.ndarray:
    k = np.arange(points)
    x = (fit.lo + fit.hi) / 2 + (fit.hi - fit.lo) / 2 * np.cos(np.pi * (k + 0.5) / points)
    x = np.sort(x).astype(LD)
    t = fit.variable(x).astype(np.float64)
    w_err = fit.weight(x).astype(np.float64)
    a = np.stack([t ** p for p in range(fit.degree + 1)], axis=1) * w_err[:, None]
    y = (fit.target(x) * w_err).astype(np.float64)
    w = np.full(points, 1.0 / points)
    best, coeffs = np.inf, None
    for _ in range(iters):
        s = np.sqrt(w)
        c, *_ = np.linalg.lstsq(a * s[:, None], y * s, rcond=None)
        e = np.abs(a @ c - y)
        if e.max() < best:
            best, coeffs = e.max(), c
        w = w * e
        w /= w.sum()
    return coeffs


def horner_f32(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The polynomial in f32 as the lowering computes it: acc = fma(acc, t, c_i), highest first."""
    c32 = c.astype(np.float32)
    t32 = t.astype(np.float32)
    acc = np.full(t.shape, c32[-1], np.float32)
    for ci in c32[-2::-1]:
        acc = (acc.astype(np.float64) * t32 + np.float64(ci)).astype(np.float32)
    return acc


def fits() -> list[Fit]:
    def tanh_p(x: np.ndarray) -> np.ndarray:
        # (tanh x - x) / x^3 in long double; its series below 0.02, where the difference cancels.
        t = x * x
        series = LD(-1) / 3 + 2 * t / 15 - 17 * t * t / 315 + 62 * t ** 3 / 2835
        return np.where(x < 0.02, series, (np.tanh(x) - x) / (x * t))

    erfc = np.vectorize(math.erfc)
    erf = np.vectorize(math.erf)

    def erf_p(x: np.ndarray) -> np.ndarray:
        # (erf(x)/x - 2/sqrt(pi)) / x^2; its series below 0.05, where the difference cancels.
        t = x * x
        c = 2 / np.sqrt(np.pi, dtype=LD)
        series = c * (LD(-1) / 3 + t / 10 - t * t / 42 + t ** 3 / 216)
        safe = np.maximum(x, LD(0.05))
        return np.where(x < 0.05, series, (erf(safe.astype(np.float64)).astype(LD) / safe - c) / (safe * safe))

    def log_g(z: np.ndarray) -> np.ndarray:
        # (2 atanh(s) - 2 s) / s / z, z = s^2: 2/3 + 2z/5 + 2z^2/7 + ...
        s = np.sqrt(z)
        exact = (np.log((1 + s) / (1 - s)) - 2 * s) / (s * z)
        series = sum(LD(2) / (2 * k + 3) * z ** k for k in range(8))
        return np.where(z < 1e-3, series, exact)

    return [
        Fit("tanh: tanh(x) = x + x^3 P(x^2), |x| < 0.625", 0.0, 0.625, 5, tanh_p,
            lambda x: np.maximum(x, 1e-3) ** 3 / np.tanh(np.maximum(x, 1e-3)), lambda x: x * x),
        Fit("erf: erf(x) = x (2/sqrt(pi) + x^2 P(x^2)), |x| < 1", 0.0, 1.0, 5, erf_p,
            lambda x: np.maximum(x, 1e-3) ** 3 / erf(np.maximum(x, 1e-3)), lambda x: x * x),
        Fit("erf: erf(x) = 1 - 2^R(x - 1), 1 <= x <= 4", 1.0, 4.0, 7,
            lambda x: np.log2(erfc(x).astype(LD)), lambda x: erfc(x) * math.log(2), lambda x: x - 1.0),
        Fit("log: log(1+f) = f - (f^2/2 - s (f^2/2 + z G(z))), s = f/(2+f), z = s^2", 0.0, 0.0295, 2,
            log_g, lambda z: np.sqrt(z) * z, lambda z: z),
        Fit("sin: sin(r) = r + r^3 S(r^2), |r| <= 0.8", 0.0, 0.8, 3,
            lambda r: np.where(r > 0.02, (np.sin(r) - r) / r ** 3, LD(-1) / 6 + r * r / 120 - r ** 4 / 5040),
            lambda r: np.maximum(r, 1e-3) ** 3 / np.sin(np.maximum(r, 1e-3)), lambda r: r * r),
        Fit("cos: cos(r) = 1 - r^2/2 + r^4 C(r^2), |r| <= 0.8", 0.0, 0.8, 2,
            lambda r: np.where(r > 0.02, (np.cos(r) - 1 + r * r / 2) / r ** 4,
                               LD(1) / 24 - r * r / 720 + r ** 4 / 40320),
            lambda r: r ** 4 / np.cos(r), lambda r: r * r),
    ]


def main() -> None:
    for fit in fits():
        c = lawson(fit)
        x = np.linspace(fit.lo, fit.hi, 200001).astype(LD)[1:]
        t = fit.variable(x)
        got = horner_f32(c, t.astype(np.float64)).astype(np.float64)
        err = np.abs((got - fit.target(x).astype(np.float64)) * fit.weight(x).astype(np.float64))
        print(f"{fit.name}\n  degree {fit.degree}, weighted error in f32 {err.max():.3g} "
              f"(2^{math.log2(err.max()):.1f})")
        print("  [" + ", ".join(repr(float(np.float32(v))) for v in c) + "]")


if __name__ == "__main__":
    main()
