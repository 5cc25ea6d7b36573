"""Thread interpreter vs block interpreter on attention (Z=1, H=2, N=256, D=64, gfx942), in one run.

    python bench/thread_interp.py [--target gfx942] [--repeat 3]

Prints the median time of each level and their ratio. The thread level runs every
thread of a block at once and checks LDS races, bounds and coverage as it goes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import tiledsl

ROOT = Path(__file__).resolve().parent.parent


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="gfx942")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    z, h, n, d = 1, 2, 256, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((z, h, n, d)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(ROOT / "examples" / "attention.tdsl", params={"D": d})
    o_block, o_thread = np.zeros_like(q), np.zeros_like(q)
    lse = np.zeros((z, h, n), np.float32)
    # Warm-up: builds the tile IR and the thread IR once (cached on the program).
    assert prog.interpret(Q=q, K=k, V=v, O=o_block, L=lse, scale=d ** -0.5).ok
    assert prog.interpret(level="thread", target=args.target, Q=q, K=k, V=v, O=o_thread, L=lse, scale=d ** -0.5).ok
    t_block = median_time(lambda: prog.interpret(Q=q, K=k, V=v, O=o_block, L=lse, scale=d ** -0.5), args.repeat)
    t_thread = median_time(lambda: prog.interpret(level="thread", target=args.target, Q=q, K=k, V=v,
                                                  O=o_thread, L=lse, scale=d ** -0.5), args.repeat)
    diff = float(np.abs(o_thread.astype(np.float64) - o_block).max())
    print(f"attention Z={z} H={h} N={n} D={d} on {args.target} (median of {args.repeat})")
    print(f"  block interpreter  : {t_block * 1e3:8.1f} ms")
    print(f"  thread interpreter : {t_thread * 1e3:8.1f} ms")
    print(f"  ratio thread/block : {t_thread / t_block:8.1f}x")
    print(f"  max |thread - block| = {diff:.2e}")


if __name__ == "__main__":
    main()
