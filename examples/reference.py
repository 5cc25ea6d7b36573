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


# ---- ragged data, backward, top-k (attention_varlen, moe_gemm, layernorm_bwd, topk)

def attention_varlen(Q, K, V, Cu, scale, CAUSAL=0, **_):
    """softmax(q k^T * scale) v for each packed sequence b (rows Cu[b] .. Cu[b+1]) and head, in
    float64; causal masks keys after the query within the sequence."""
    out = np.zeros(Q.shape)
    for b in range(len(Cu) - 1):
        lo, hi = int(Cu[b]), int(Cu[b + 1])
        if hi == lo:
            continue
        q, k, v = (np.asarray(a[lo:hi], dtype=np.float64) for a in (Q, K, V))
        s = np.einsum("nhd,mhd->hnm", q, k) * float(scale)
        if CAUSAL:
            s = np.where(np.tri(hi - lo, dtype=bool), s, -np.inf)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        out[lo:hi] = np.einsum("hnm,mhd->nhd", p / p.sum(axis=-1, keepdims=True), v)
    return out


def moe_gemm(X, W, Off, **_):
    """Y[r] = X[r] @ W[e] for the rows r of expert e (Off[e] .. Off[e+1]), in float64."""
    y = np.zeros((X.shape[0], W.shape[2]))
    for e in range(len(Off) - 1):
        lo, hi = int(Off[e]), int(Off[e + 1])
        y[lo:hi] = np.asarray(X[lo:hi], dtype=np.float64) @ np.asarray(W[e], dtype=np.float64)
    return y


def layernorm_bwd(X, W, DY, eps, **_):
    """dX, dW, dB of y = (x - mean) / sqrt(var + eps) * w + b over each row, in float64:
    the gradient of sum(y * DY) by the chain rule, written out."""
    x, w, dy = (np.asarray(a, dtype=np.float64) for a in (X, W, DY))
    n = x.shape[1]
    mu = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=1, keepdims=True) + float(eps))
    xhat = (x - mu) * rstd
    g = dy * w                                     # d loss / d xhat
    # d xhat_j / d x_i = rstd * (delta_ij - 1/n - xhat_i xhat_j / n)
    dx = rstd * (g - g.sum(axis=1, keepdims=True) / n - xhat * (g * xhat).sum(axis=1, keepdims=True) / n)
    return {"DX": dx, "DW": (dy * xhat).sum(axis=0), "DB": dy.sum(axis=0)}


def topk(X, K, **_):
    """The K largest values of each row in descending order and their column indices, equal
    values in increasing index order (a stable sort of -X)."""
    x = np.asarray(X, dtype=np.float64)
    order = np.argsort(-x, axis=1, kind="stable")[:, :K]
    return {"V": np.take_along_axis(x, order, axis=1), "I": order.astype(np.int32)}
