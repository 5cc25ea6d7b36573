"""Block interpreter vs plain NumPy on attention (Z=1, H=4, N=1024, D=64), in one run.

    python bench/interp.py [--repeat 5]

Prints the median time of each and their ratio (goal: interpreter <= 3x NumPy).
The NumPy peer is the straightforward f32 computation a user would write: S = QK^T,
a row softmax, then P V, batched over (z, h).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import tiledsl

ROOT = Path(__file__).resolve().parent.parent


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
    s = np.matmul(q32, np.swapaxes(k32, -1, -2)) * np.float32(scale)
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.matmul(p, v32).astype(np.float16)


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=1024)
    args = ap.parse_args()
    z, h, n, d = 1, 4, args.n, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((z, h, n, d)).astype(np.float16) for _ in range(3))
    scale = 1 / np.sqrt(d)
    prog = tiledsl.load(ROOT / "examples" / "attention.tdsl", params={"D": d})
    o = np.zeros_like(q)
    lse = np.zeros((z, h, n), np.float32)
    report = prog.interpret(Q=q, K=k, V=v, O=o, L=lse, scale=scale)   # warm-up (builds and lowers the IR)
    assert report.ok, report
    ref = numpy_attention(q, k, v, scale)
    err = np.linalg.norm(o.astype(np.float64) - ref) / np.linalg.norm(ref.astype(np.float64))
    t_interp = median_time(lambda: prog.interpret(Q=q, K=k, V=v, O=o, L=lse, scale=scale), args.repeat)
    t_numpy = median_time(lambda: numpy_attention(q, k, v, scale), args.repeat)
    print(f"attention Z={z} H={h} N={n} D={d} (median of {args.repeat})")
    print(f"  block interpreter : {t_interp * 1e3:8.1f} ms")
    print(f"  plain NumPy       : {t_numpy * 1e3:8.1f} ms")
    print(f"  ratio             : {t_interp / t_numpy:8.2f}x   (goal <= 3x)")
    print(f"  |interp - numpy| / |numpy| = {err:.2e}")


if __name__ == "__main__":
    main()
