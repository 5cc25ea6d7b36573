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


# --- fp8 and int4 GEMMs (examples/fp8_gemm.tdsl, int4_gemm.tdsl) -------------------------------


def fp8_gemm(A, B, SA, SB, scale_a, scale_b, **_):
    """(A @ Bᵀ) * scale_a * scale_b * SA[:, None] * SB[None, :] in float64, from the fp8 values."""
    a, b = A.astype(np.float64), B.astype(np.float64)
    return (a @ b.T) * (float(scale_a) * float(scale_b)) * SA.astype(np.float64)[:, None] \
        * SB.astype(np.float64)[None, :]


def int4_unpack(Wq, S):
    """The f16 weights W[K, N] of int4_gemm's packing: per group g, byte Wq[64g + r, n] holds
    row 128g + r (low nibble) and row 128g + 64 + r (high nibble) as q + 8; W = f16(q * S[g, n])."""
    groups = S.shape[0]
    q = np.empty((groups, 2, 64, Wq.shape[1]), dtype=np.int64)
    w = Wq.astype(np.int64).reshape(groups, 64, -1)
    q[:, 0], q[:, 1] = (w & 15) - 8, (w >> 4) - 8
    q = q.reshape(groups * 128, -1)
    return (q * np.repeat(S.astype(np.float64), 128, axis=0)).astype(np.float16)


def int4_gemm(X, Wq, S, **_):
    """X @ W in float64, W the unpacked f16 weights (``int4_unpack``)."""
    return X.astype(np.float64) @ int4_unpack(Wq, S).astype(np.float64)
