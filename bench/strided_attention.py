"""Attention on strided views against contiguous tensors: the cost of reading ``[B, N, H, D]``
storage as ``[B, H, N, D]`` in place (run-time strides) instead of copying it.

    python bench/strided_attention.py [--shapes 4x4096x16x64,2x8192x16x128] [--causal 0,1] [--json out.json]

For each shape it times (CUDA events, median of batched launches, ``tiledsl.tune.time_launch``'s
method with PyTorch events): tiledsl on contiguous ``[B, H, N, D]`` tensors, tiledsl on
``x.transpose(1, 2)`` views of ``[B, N, H, D]`` tensors, and the copy a caller makes otherwise
(``.contiguous()`` of q, k, v) + the contiguous kernel. The issue asks for the strided run at full
speed: the ratio strided/contiguous is printed (1.00 = no cost).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

import tiledsl

ROOT = Path(__file__).resolve().parents[1]


def ms(fn: Callable[[], object], reps: int = 20, batch: int = 10) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(batch):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / batch)
    return statistics.median(times)


def measure(b: int, n: int, h: int, d: int, causal: int, dtype: torch.dtype, target: str) -> dict:
    """One row: contiguous, strided and copy-then-contiguous times of one shape."""
    launcher = tiledsl.load(ROOT / "examples" / "attention.tdsl", params={"CAUSAL": causal}) \
        .launcher(target=target, interpret=False)
    bnhd = [torch.randn(b, n, h, d, device="cuda", dtype=dtype) for _ in range(3)]
    views = [x.transpose(1, 2) for x in bnhd]
    dense = [x.contiguous() for x in views]
    o = torch.empty(b, h, n, d, device="cuda", dtype=dtype)
    scale = 1 / math.sqrt(d)

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        launcher(Q=q, K=k, V=v, O=o, scale=scale)

    run(*views)
    ref = torch.nn.functional.scaled_dot_product_attention(*dense, is_causal=bool(causal))
    err = float((o.float() - ref.float()).norm() / ref.float().norm())
    assert err < 1e-2, f"strided result off by {err:.2e}"
    row = {"shape": [b, n, h, d], "causal": causal, "rel_err": err,
           "contiguous_ms": ms(lambda: run(*dense)), "strided_ms": ms(lambda: run(*views)),
           "copy_then_contiguous_ms": ms(lambda: run(*(x.contiguous() for x in views)))}
    row["ratio"] = row["strided_ms"] / row["contiguous_ms"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="4x4096x16x64,2x8192x16x128,8x1024x32x64")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    ap.add_argument("--json")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    target = "sm_90" if torch.cuda.get_device_capability()[0] >= 9 else "sm_80"
    rows = []
    print(f"{torch.cuda.get_device_name()}, {args.dtype}, target {target}")
    print(f"{'B,N,H,D':>16} {'causal':>6} {'contig ms':>10} {'strided ms':>11} {'copy+contig':>12} {'ratio':>6}")
    for shape in args.shapes.split(","):
        b, n, h, d = (int(s) for s in shape.split("x"))
        for causal in (int(c) for c in args.causal.split(",")):
            row = measure(b, n, h, d, causal, dtype, target)
            rows.append(row)
            print(f"{shape:>16} {causal:>6} {row['contiguous_ms']:10.3f} {row['strided_ms']:11.3f} "
                  f"{row['copy_then_contiguous_ms']:12.3f} {row['ratio']:6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
