"""NumPy references (float64) of the test kernels in this folder, written plainly."""

from __future__ import annotations

import numpy as np


def _softmax_v(s: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("...nm,...md->...nd", p, v)


def decode_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, scale: float, **_: object) -> np.ndarray:
    """softmax(q k^T * scale) v for each (z, key/value head), q the G heads of the group."""
    q, k, v = (x.astype(np.float64) for x in (Q, K, V))
    return _softmax_v(np.einsum("zhgd,zhnd->zhgn", q, k) * float(scale), v)


def block_sparse_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, scale: float, dense: int,
                           BN: int = 32, **_: object) -> np.ndarray:
    """Attention over the kept keys: those of even key blocks, and of the blocks starting before
    ``dense``."""
    q, k, v = (x.astype(np.float64) for x in (Q, K, V))
    start = np.arange(k.shape[2]) // BN * BN
    keep = (start // BN % 2 == 0) | (start < dense)
    s = np.where(keep, np.einsum("zhnd,zhmd->zhnm", q, k) * float(scale), -np.inf)
    return _softmax_v(s, v)
