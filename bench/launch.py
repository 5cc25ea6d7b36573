"""Host time of one launch: tiledsl against Triton (and PyTorch) on the same tiny work, in one process.

    python bench/launch.py [--n 4096] [--launches 200] [--json out.json]

The work is ``Y = X * alpha`` on a few thousand floats: the GPU finishes it faster than the
host can queue the next launch, so the time per call is the launch path's own (argument checks,
packing, the driver call). Measured per call over bursts of ``--launches`` back-to-back calls (fewer
than the driver's queue holds, so the host never waits for the GPU), median of 30 bursts; then the
same with a synchronisation after each burst (host + GPU). Variants: tiledsl's ``program.launcher()``
(binds from the arrays, then the cached plan) and ``compile().launcher()`` (one specialisation),
a Triton ``@triton.jit`` kernel, and PyTorch's own ``torch.mul``. The issue's goal: tiledsl ≤ 10 µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

import tiledsl

SCALE = """
kernel scale(X: f32[N], out Y: f32[N], alpha: f32)
  param BLOCK = 1024
  grid (cdiv(N, BLOCK)) as (b)
  block 4 waves
{
  Y[b*BLOCK : +BLOCK] <- X[b*BLOCK : +BLOCK] * alpha
}
"""


def triton_scale() -> Callable[[torch.Tensor, torch.Tensor, float], None] | None:
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def kernel(x_ptr, y_ptr, alpha, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask) * alpha, mask=mask)

    def launch(x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        n = x.numel()
        kernel[(triton.cdiv(n, 1024),)](x, y, alpha, n, BLOCK=1024)
    return launch


def per_call_us(fn: Callable[[], None], launches: int, bursts: int = 30, sync: bool = False) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(bursts):
        start = time.perf_counter()
        for _ in range(launches):
            fn()
        if sync:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / launches * 1e6)
        torch.cuda.synchronize()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--launches", type=int, default=200)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    x = torch.randn(args.n, device="cuda")
    y = torch.empty_like(x)
    prog = tiledsl.load(SCALE)
    target = "sm_90" if torch.cuda.get_device_capability()[0] >= 9 else "sm_80"
    launcher = prog.launcher(target=target, interpret=False)
    compiled = prog.compile(target=target).launcher()
    variants: dict[str, Callable[[], None]] = {
        "tiledsl program.launcher()": lambda: launcher(X=x, Y=y, alpha=2.0),
        "tiledsl compile().launcher()": lambda: compiled(X=x, Y=y, alpha=2.0),
        "torch.mul(out=)": lambda: torch.mul(x, 2.0, out=y),
    }
    tri = triton_scale()
    if tri is not None:
        variants["triton @jit"] = lambda: tri(x, y, 2.0)
    launcher(X=x, Y=y, alpha=2.0)
    torch.cuda.synchronize()
    assert torch.equal(y, x * 2.0), "tiledsl's result is wrong"
    rows = {}
    for name, fn in variants.items():
        rows[name] = {"host_us": per_call_us(fn, args.launches),
                      "host_and_gpu_us": per_call_us(fn, args.launches, sync=True)}
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}, N={args.n}, {args.launches} launches per burst, median of 30 bursts")
    print(f"{'variant':32} {'host µs/launch':>15} {'with sync':>12}")
    for name, r in rows.items():
        print(f"{name:32} {r['host_us']:15.2f} {r['host_and_gpu_us']:12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": gpu, "n": args.n, "launches": args.launches, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
