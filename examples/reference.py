"""Independent NumPy references for the examples, written plainly (not through
tiledsl). Each takes the kernel's inputs and compile-time params by name and
returns the out tensor(s); extra keyword arguments are ignored."""

from __future__ import annotations

import numpy as np


def attention(Q, K, V, scale, CAUSAL=0, **_):
    """softmax(Q K^T * scale) V per (z, h), in float64; causal masks keys after the query."""
    q, k, v = (x.astype(np.float64) for x in (Q, K, V))
    s = np.einsum("zhnd,zhmd->zhnm", q, k) * float(scale)
    if CAUSAL:
        n = s.shape[-1]
        s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("zhnm,zhmd->zhnd", p, v)


def gemm(A, B, **_):
    """C = A @ B in float64."""
    return A.astype(np.float64) @ B.astype(np.float64)


def softmax(X, **_):
    """Row softmax in float64."""
    x = X.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def layernorm(X, W, B, eps, **_):
    """(x - mean) / sqrt(var + eps) * w + b over each row, in float64."""
    x = X.astype(np.float64)
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + float(eps)) * W.astype(np.float64) + B.astype(np.float64)


def reduce_atomic(X, **_):
    """Column sums and column maxima of X and the number of its positive elements, in float64:
    what the kernel accumulates into S and Pos (from 0) and Mx (from -inf)."""
    x = X.astype(np.float64)
    return {"S": x.sum(axis=0), "Mx": x.max(axis=0), "Pos": np.array([np.count_nonzero(x > 0)])}
