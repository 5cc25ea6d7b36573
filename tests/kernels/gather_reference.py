"""NumPy references (float64) of the test kernels with gathers, scatters and ragged slices
(``segments_ragged.tdsl``, ``permute.tdsl``, ...), written plainly: loops over groups and rows."""

from __future__ import annotations

import numpy as np


def segments_ragged(X: np.ndarray, Off: np.ndarray, S: np.ndarray, **_: object) -> dict[str, np.ndarray]:
    x = X.astype(np.float64)
    y = np.empty((len(Off) - 1, x.shape[1]))
    z = np.full(x.shape, np.nan)
    for g in range(len(Off) - 1):
        lo, hi = int(Off[g]), int(Off[g + 1])
        y[g] = (x[lo:hi] - 1.0).sum(axis=0) if hi > lo else -1.0
        z[lo:hi] = x[lo:hi] * float(S[g])
    return {"Y": y, "Z": z}


def groups_nested(X: np.ndarray, Off: np.ndarray, Gs: np.ndarray, **_: object) -> dict[str, np.ndarray]:
    x = X.astype(np.float64)
    t = np.zeros(len(Gs) - 1)
    for b in range(len(Gs) - 1):
        for e in range(int(Gs[b]), int(Gs[b + 1])):
            lo, hi = int(Off[e]), int(Off[e + 1])
            s = x[lo:hi].sum()
            t[b] += s * (hi - lo) if hi - lo > 2 else -s
    return {"T": t}


def _take(a: np.ndarray, idx: np.ndarray, axis: int, pad: float = 0.0) -> np.ndarray:
    """``a`` indexed along ``axis`` by ``idx``; entries outside the dim give ``pad``."""
    ok = (idx >= 0) & (idx < a.shape[axis])
    out = np.take(a.astype(np.float64), np.clip(idx, 0, a.shape[axis] - 1), axis=axis)
    shape = [1] * a.ndim
    shape[axis] = len(idx)
    return np.where(ok.reshape(shape), out, pad)


def permute(X: np.ndarray, Perm: np.ndarray, **_: object) -> dict[str, np.ndarray]:
    x = X.astype(np.float64)
    w = np.empty_like(x)
    w[Perm] = x + 1.0
    return {"Y": 2.0 * x[Perm], "W": w}


def gather_shapes(X: np.ndarray, Z3: np.ndarray, V: np.ndarray, Idx: np.ndarray,
                  **_: object) -> dict[str, np.ndarray]:
    return {"A": _take(X, Idx, 0), "B": _take(X, Idx, 1, pad=2.0), "D3": _take(Z3, Idx, 0),
            "E": 3.0 * _take(V, Idx, 0)}


def paged_sum(K: np.ndarray, BT: np.ndarray, Lens: np.ndarray, **_: object) -> dict[str, np.ndarray]:
    page = K.shape[1]
    out = np.zeros((len(Lens), K.shape[2], K.shape[3]))
    for b, n in enumerate(Lens):
        for j in range(int(n)):
            out[b] += K[BT[b, j // page], j % page].astype(np.float64)
    return {"O": out, "O2": out}


def moe_gemm(X: np.ndarray, W: np.ndarray, Off: np.ndarray, Perm: np.ndarray, **_: object) -> dict[str, np.ndarray]:
    y = np.full((X.shape[0], W.shape[2]), np.nan)
    for e in range(len(Off) - 1):
        tokens = Perm[Off[e]:Off[e + 1]]
        y[tokens] = X[tokens].astype(np.float64) @ W[e].astype(np.float64)
    return {"Y": y}


def varlen_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, Cu: np.ndarray, scale: float,
                     CAUSAL: int = 0, **_: object) -> dict[str, np.ndarray]:
    out = np.full(Q.shape, np.nan)
    for b in range(len(Cu) - 1):
        lo, hi = int(Cu[b]), int(Cu[b + 1])
        if hi == lo:
            continue
        q, k, v = (a[lo:hi].astype(np.float64) for a in (Q, K, V))
        s = np.einsum("nhd,mhd->hnm", q, k) * float(scale)
        if CAUSAL:
            s = np.where(np.tri(hi - lo, dtype=bool), s, -np.inf)
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        out[lo:hi] = np.einsum("hnm,mhd->nhd", p / p.sum(axis=-1, keepdims=True), v)
    return {"O": out}
