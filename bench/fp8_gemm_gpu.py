"""fp8 and int4 GEMMs on the GPU: tiledsl's examples vs PyTorch, in one run.

    python bench/fp8_gemm_gpu.py [--quick] [--out DIR] [--target sm_90|sm_90a]

fp8 (examples/fp8_gemm.tdsl, e4m3 A[M, K] and B[N, K], f32 accumulation, bf16 output) against
``torch._scaled_mm`` with per-tensor scales and, where this torch supports it, row-wise scales
(one per row of A and one per column of C); int4 (examples/int4_gemm.tdsl, packed nibbles with
f16 scales per group of 128) against ``torch.mm`` of f16 activations with the dequantised f16
weights. TFLOP/s = 2·M·N·K / time. Times are medians over rounds of CUDA-event timings (warm-up
first; each round times every kernel of a shape once, so clock drift moves all alike). Every
kernel's output is checked against an f64-accumulated reference before it is timed; a wrong or
failing kernel is reported, not timed. tiledsl's tile parameters: the fastest of a few
configurations, each checked. Prints a markdown table; writes fp8_gemm_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 5
CONFIGS = [{"BM": 64, "BN": 64, "BK": 64, "WAVES": 4}, {"BM": 128, "BN": 64, "BK": 64, "WAVES": 4},
           {"BM": 128, "BN": 128, "BK": 64, "WAVES": 8}, {"BM": 128, "BN": 128, "BK": 128, "WAVES": 8}]
INT4_CONFIGS = [{"BM": 64, "BN": 64, "WAVES": 4}, {"BM": 128, "BN": 64, "WAVES": 4}, {"BM": 128, "BN": 128, "WAVES": 8}]


def time_ms(fn, reps: int = 20) -> float:
    """Median of ``reps`` CUDA-event timings of ``fn`` after a warm-up."""
    import torch
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[reps // 2]


class Shape:
    """The kernels of one shape: each checked once, then timed round-robin."""

    def __init__(self, ref, tol: float) -> None:
        self.ref, self.tol = ref, tol
        self.timed: dict[str, object] = {}
        self.result: dict[str, object] = {}

    def add(self, name: str, fn) -> None:
        try:
            out = fn()
            err = ((out.double() - self.ref).norm() / self.ref.norm()).item()
            if not err < self.tol:
                self.result[name] = f"wrong (rel err {err:.1e})"
                return
            self.timed[name] = fn
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
            self.result[name] = f"n/a ({type(e).__name__}: {str(e)[:60]})"

    def run(self, flops: float) -> dict[str, object]:
        times: dict[str, list[float]] = {name: [] for name in self.timed}
        for _ in range(ROUNDS):
            for name, fn in self.timed.items():
                times[name].append(time_ms(fn))
        for name in self.timed:
            self.result[name] = round(flops / sorted(times[name])[ROUNDS // 2] / 1e9, 1)
        return self.result


def best_of(shape: Shape, prefix: str, configs: list[dict], make) -> dict:
    """Add tiledsl under each configuration, time them all; keep the fastest as ``prefix``."""
    names = []
    for cfg in configs:
        name = f"{prefix}{cfg}"
        shape.add(name, make(cfg))
        names.append(name)
    return {"names": names}


def fp8_row(m: int, n: int, k: int, target: str) -> dict:
    import torch

    import tiledsl
    a = (torch.randn(m, k, device="cuda") * 4).to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
    sa, sb = torch.rand(m, device="cuda") + 0.5, torch.rand(n, device="cuda") + 0.5
    scale_a, scale_b = 0.5, 0.25
    ones_m, ones_n = torch.ones(m, device="cuda"), torch.ones(n, device="cuda")
    exact = a.double() @ b.double().t()
    ref_tensor = exact * scale_a * scale_b
    ref_rows = ref_tensor * sa.double()[:, None] * sb.double()[None, :]
    row: dict = {"M": m, "N": n, "K": k}
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)

    for label, ref, (va, vb) in (("tensor", ref_tensor, (ones_m, ones_n)), ("rowwise", ref_rows, (sa, sb))):
        shape = Shape(ref, 1e-2)
        configs = best_of(shape, "tiledsl", CONFIGS, lambda cfg, va=va, vb=vb: _fp8_ours(
            tiledsl, cfg, target, a, b, va, vb, out, scale_a, scale_b))
        if label == "tensor":
            ta = torch.tensor(scale_a, device="cuda")
            tb = torch.tensor(scale_b, device="cuda")
        else:
            ta = (sa * scale_a)[:, None].contiguous()
            tb = (sb * scale_b)[None, :].contiguous()
        shape.add("torch", lambda ta=ta, tb=tb: torch._scaled_mm(a, b.t(), scale_a=ta, scale_b=tb,
                                                                 out_dtype=torch.bfloat16))
        res = shape.run(2 * m * n * k)
        ours = {nm: res[nm] for nm in configs["names"] if isinstance(res.get(nm), float)}
        best = max(ours, key=ours.get) if ours else None
        row[f"{label}-tiledsl"] = ours[best] if best else next(iter(res.values()))
        row[f"{label}-params"] = best[len("tiledsl"):] if best else None
        row[f"{label}-torch"] = res["torch"]
    return row


def _fp8_ours(tiledsl, cfg, target, a, b, sa, sb, out, scale_a, scale_b):
    kern = tiledsl.load(ROOT / "examples" / "fp8_gemm.tdsl", params={"T": "bf16", **cfg}).compile(
        target=target).launcher()

    def run():
        kern(A=a, B=b, SA=sa, SB=sb, C=out, scale_a=scale_a, scale_b=scale_b)
        return out
    return run


def int4_row(m: int, n: int, k: int, target: str) -> dict:
    import torch

    import tiledsl
    groups = k // 128
    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    wq = torch.randint(0, 256, (64 * groups, n), device="cuda", dtype=torch.uint8)
    s = (torch.rand(groups, n, device="cuda") * 0.05 + 0.005).to(torch.float16)
    # The packing of examples/int4_gemm.tdsl: byte 64g + r holds rows 128g + r (low nibble) and
    # 128g + 64 + r (high), each q + 8.
    w8 = wq.view(groups, 64, n).to(torch.int16)
    q = torch.stack([(w8 & 15) - 8, (w8 >> 4) - 8], dim=1).reshape(k, n)
    w = (q.to(torch.float32) * s.to(torch.float32).repeat_interleave(128, dim=0)).to(torch.float16)
    ref = x.double() @ w.double()
    out = torch.empty(m, n, device="cuda", dtype=torch.float32)
    shape = Shape(ref, 1e-3)

    def ours(cfg):
        kern = tiledsl.load(ROOT / "examples" / "int4_gemm.tdsl", params=cfg).compile(target=target).launcher()

        def run():
            kern(X=x, Wq=wq, S=s, C=out)
            return out
        return run
    configs = best_of(shape, "tiledsl", INT4_CONFIGS, ours)
    shape.add("torch-f16", lambda: torch.mm(x, w))
    res = shape.run(2 * m * n * k)
    mine = {nm: res[nm] for nm in configs["names"] if isinstance(res.get(nm), float)}
    best = max(mine, key=mine.get) if mine else None
    return {"M": m, "N": n, "K": k, "tiledsl": mine[best] if best else next(iter(res.values())),
            "params": best[len("tiledsl"):] if best else None, "torch-f16": res["torch-f16"]}


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) else "–"


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape of each")
    ap.add_argument("--out", default=".")
    ap.add_argument("--target", default="sm_90", choices=["sm_90", "sm_90a"],
                    help="what tiledsl compiles for (fp8 dots are mma.sync m16n8k32 on both)")
    args = ap.parse_args()
    fp8_shapes = [(4096, 4096, 4096), (8192, 8192, 8192), (16, 8192, 8192), (4096, 14336, 4096)]
    int4_shapes = [(16, 8192, 8192), (128, 8192, 8192), (4096, 4096, 4096)]
    if args.quick:
        fp8_shapes, int4_shapes = fp8_shapes[:1], int4_shapes[:1]
    fp8 = []
    for m, n, k in fp8_shapes:
        fp8.append(fp8_row(m, n, k, args.target))
        print(fp8[-1], flush=True)
    int4 = []
    for m, n, k in int4_shapes:
        int4.append(int4_row(m, n, k, args.target))
        print(int4[-1], flush=True)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, tiledsl --target {args.target}; "
          f"TFLOP/s (higher is better)\n")
    print("| M | N | K | tiledsl fp8 (tensor) | torch._scaled_mm (tensor) | ratio | tiledsl fp8 (rowwise) | "
          "torch._scaled_mm (rowwise) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in fp8:
        print(f"| {r['M']} | {r['N']} | {r['K']} | {r['tensor-tiledsl']} | {r['tensor-torch']} | "
              f"{_ratio(r['tensor-tiledsl'], r['tensor-torch'])} | {r['rowwise-tiledsl']} | {r['rowwise-torch']} | "
              f"{_ratio(r['rowwise-tiledsl'], r['rowwise-torch'])} |")
    print("\n| M | N | K | tiledsl int4 | torch f16 mm (dequantised) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in int4:
        print(f"| {r['M']} | {r['N']} | {r['K']} | {r['tiledsl']} | {r['torch-f16']} | "
              f"{_ratio(r['tiledsl'], r['torch-f16'])} |")
    Path(args.out, "fp8_gemm_gpu.json").write_text(json.dumps({"fp8": fp8, "int4": int4}, indent=1))


if __name__ == "__main__":
    main()
