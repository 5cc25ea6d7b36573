"""Independent NumPy references for the examples, written plainly (not through
tiledsl). Each takes the kernel's inputs and compile-time params by name and
returns the out tensor(s); extra keyword arguments are ignored."""

from __future__ import annotations

import numpy as np


def _scores(Q, K, scale, CAUSAL):
    """Q K^T * scale per (z, h) in float64; causal sets the keys after each query to -inf."""
    s = np.einsum("zhnd,zhmd->zhnm", Q.astype(np.float64), K.astype(np.float64)) * float(scale)
    if CAUSAL:
        n = s.shape[-1]
        s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    return s


def attention(Q, K, V, scale, CAUSAL=0, **_):
    """O = softmax(Q K^T * scale) V per (z, h), in float64, and L, the natural log-sum-exp of each
    row of the scaled scores; causal masks keys after the query."""
    s = _scores(Q, K, scale, CAUSAL)
    mx = s.max(axis=-1, keepdims=True)
    e = np.exp(s - mx)
    total = e.sum(axis=-1, keepdims=True)
    o = np.einsum("zhnm,zhmd->zhnd", e / total, V.astype(np.float64))
    return {"O": o, "L": (mx + np.log(total))[..., 0]}


def attention_bwd(Q, K, V, dO, scale, CAUSAL=0, **_):
    """The gradients of sum(dO * O) for O = attention(Q, K, V), in float64, by the chain rule:
    with S = Q K^T * scale and P = softmax(S) row by row, dV = P^T dO, dP = dO V^T,
    dS = P * (dP - rowsum(dP * P)) (the softmax's Jacobian), dQ = dS K * scale, dK = dS^T Q * scale.
    Computed from Q, K, V alone: nothing of the forward kernel (O, L) is trusted."""
    q, k, v, do = (x.astype(np.float64) for x in (Q, K, V, dO))
    s = _scores(Q, K, scale, CAUSAL)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    dv = np.einsum("zhnm,zhnd->zhmd", p, do)
    dp = np.einsum("zhnd,zhmd->zhnm", do, v)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("zhnm,zhmd->zhnd", ds, k) * float(scale)
    dk = np.einsum("zhnm,zhnd->zhmd", ds, q) * float(scale)
    return {"dQ": dq, "dK": dk, "dV": dv}


def attention_bwd_preprocess(O, dO, **_):
    """Delta = rowsum(O * dO) in float64: the first kernel of examples/attention_bwd.tdsl."""
    return (O.astype(np.float64) * dO.astype(np.float64)).sum(axis=-1)


def _bwd_terms(Q, K, V, dO, L, Delta, scale, CAUSAL):
    """P = exp(S - L) and dS = P * (dP - Delta) from the statistics the kernels are given (which
    need not come from a forward: tdslc run draws them at random)."""
    s = _scores(Q, K, scale, CAUSAL)
    p = np.exp(s - L.astype(np.float64)[..., None])
    dp = np.einsum("zhnd,zhmd->zhnm", dO.astype(np.float64), V.astype(np.float64))
    return p, p * (dp - Delta.astype(np.float64)[..., None])


def attention_bwd_dkdv(Q, K, V, dO, L, Delta, scale, CAUSAL=0, **_):
    """dK = dS^T Q * scale and dV = P^T dO for the given L and Delta, in float64."""
    p, ds = _bwd_terms(Q, K, V, dO, L, Delta, scale, CAUSAL)
    return {"dK": np.einsum("zhnm,zhnd->zhmd", ds, Q.astype(np.float64)) * float(scale),
            "dV": np.einsum("zhnm,zhnd->zhmd", p, dO.astype(np.float64))}


def attention_bwd_dq(Q, K, V, dO, L, Delta, scale, CAUSAL=0, **_):
    """dQ = dS K * scale for the given L and Delta, in float64."""
    _, ds = _bwd_terms(Q, K, V, dO, L, Delta, scale, CAUSAL)
    return np.einsum("zhnm,zhmd->zhnd", ds, K.astype(np.float64)) * float(scale)


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
