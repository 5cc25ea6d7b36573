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


# --- decode: flash_decoding.tdsl (split + combine) and paged_decode.tdsl ---------------------------

def _decode_softmax(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; a row with no key left (all -inf) gives zeros."""
    m = s.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    total = p.sum(axis=-1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def flash_decoding(Q, K, V, scale, **_):
    """Decode attention of the G query rows of Q[z, hk] over the N keys of KV head hk, in float64:
    softmax(q k^T * scale) v. Q: [Z, HK, G, D], K and V: [Z, HK, N, D]."""
    q, k, v = (x.astype(np.float64) for x in (Q, K, V))
    p = _decode_softmax(np.einsum("zhgd,zhnd->zhgn", q, k) * float(scale))
    return np.einsum("zhgn,zhnd->zhgd", p, v)


def decode_split_bounds(n: int, splits: int, BN: int = 64) -> list[tuple[int, int]]:
    """The keys [lo, hi) of each split: cdiv(cdiv(n, splits), BN) * BN keys each, the last short;
    splits past the keys are empty (lo >= hi)."""
    per_split = -(-n // splits)
    chunk = -(-per_split // BN) * BN
    return [(s * chunk, min(n, (s + 1) * chunk)) for s in range(splits)]


def flash_decoding_partials(Q, K, V, splits, scale, BN=64, **_):
    """Each split's normalised partial output and natural-log log-sum-exp of its scaled scores,
    in float64: {"Op": [Z, HK, S, G, D], "Lse": [Z, HK, S, G]} (an empty split: 0 and -inf), S =
    ``splits``. (Not named like the kernel: ``tdslc run`` passes a reference the inputs only, and
    S is the size of an output.)"""
    q, k, v = (x.astype(np.float64) for x in (Q, K, V))
    z, hk, g, d = q.shape
    op = np.zeros((z, hk, splits, g, d))
    lse = np.full((z, hk, splits, g), -np.inf)
    for i, (lo, hi) in enumerate(decode_split_bounds(k.shape[2], splits, BN)):
        if lo >= hi:
            continue
        s = np.einsum("zhgd,zhnd->zhgn", q, k[:, :, lo:hi]) * float(scale)
        m = s.max(axis=-1, keepdims=True)
        e = np.exp(s - m)
        op[:, :, i] = np.einsum("zhgn,zhnd->zhgd", e / e.sum(axis=-1, keepdims=True), v[:, :, lo:hi])
        lse[:, :, i] = (m + np.log(e.sum(axis=-1, keepdims=True)))[..., 0]
    return {"Op": op, "Lse": lse}


def flash_decoding_combine(Op, Lse, **_):
    """O[z, h, g] = sum_s exp(Lse_s - lse) Op_s with lse = log(sum_s exp(Lse_s)), in float64."""
    lse = Lse.astype(np.float64)
    w = _decode_softmax(np.moveaxis(lse, 2, -1))                  # [Z, HK, G, S]
    return np.einsum("zhgs,zhsgd->zhgd", w, Op.astype(np.float64))


def paged_decode(Q, Kc, Vc, BT, Lens, scale, **_):
    """Decode attention over a paged KV cache, in float64: key j of sequence b is row j % PAGE of
    page BT[b, j // PAGE] of Kc/Vc ([P, PAGE, HK, D]); sequence b has Lens[b] keys; the G rows of
    Q[b, hk] attend to KV head hk. A sequence without keys gives zeros. As in the kernel, a key
    whose page is not in the cache (a block-table entry outside [0, P), or past its MAXP columns)
    reads as zeros (so that ``tdslc run``'s random tables compare too)."""
    q = Q.astype(np.float64)
    kc, vc = Kc.astype(np.float64), Vc.astype(np.float64)
    n_pages, page = kc.shape[:2]
    out = np.zeros(q.shape)
    for b, n in enumerate(int(x) for x in Lens):
        j = np.arange(max(n, 0))
        col = j // page
        pages = np.where(col < BT.shape[1], BT[b, np.minimum(col, BT.shape[1] - 1)], -1)
        inside = ((pages >= 0) & (pages < n_pages))[:, None, None]
        k = np.where(inside, kc[np.clip(pages, 0, n_pages - 1), j % page], 0.0)     # [n, HK, D]
        v = np.where(inside, vc[np.clip(pages, 0, n_pages - 1), j % page], 0.0)
        p = _decode_softmax(np.einsum("hgd,nhd->hgn", q[b], k) * float(scale))
        out[b] = np.einsum("hgn,nhd->hgd", p, v)
    return out


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
