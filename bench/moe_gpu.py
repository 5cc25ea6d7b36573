"""MoE grouped GEMM on the GPU: examples/moe_gemm.tdsl vs a loop of ``torch.mm`` per expert, in one run.

    python bench/moe_gpu.py [--quick] [--out DIR] [--target sm_90a|sm_90]

Tokens sorted by expert (X: [tokens, K], expert e's rows Off[e] .. Off[e+1]), W: [E, K, N], f16,
f32 accumulation, Y: [tokens, N] f16. Token counts per expert are drawn (multinomial over
experts, uniform or skewed routing; some experts may get none). The peer is what a framework
without a grouped GEMM does: ``torch.mm(X[lo:hi], W[e], out=Y[lo:hi])`` for each expert with
tokens, the offsets on the host (no synchronisation in the loop). TFLOP/s with FLOPs =
2·tokens·K·N. Every kernel's output is checked against an f32 PyTorch reference before it is
timed; tiledsl runs a few tile configurations and scores the best. Times: CUDA events around
a batch of launches (sized to ~50 ms), after warm-up, the median of five round-robin rounds
over the kernels of a shape. Prints a markdown table; writes moe_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 5
# (BM, BN, BK, WAVES, STAGES) tried for tiledsl.
CONFIGS = [(64, 64, 32, 4, 2), (128, 128, 32, 8, 3), (128, 128, 64, 8, 3), (128, 256, 32, 8, 3),
           (64, 128, 64, 4, 3)]
# (experts, tokens, K, N, routing): Mixtral-like (8 large experts), DeepSeek-like (64 small
# experts), a decode-sized batch, and a skewed router.
SHAPES = [(8, 16384, 4096, 14336, "uniform"), (64, 16384, 2048, 1408, "uniform"),
          (8, 512, 4096, 14336, "uniform"), (64, 16384, 2048, 1408, "skewed")]


def cuda_ms(fn) -> float:
    """Milliseconds per call of ``fn``: CUDA events around a batch of calls sized to ~50 ms."""
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    reps = max(3, min(1000, int(50 / max(start.elapsed_time(end), 1e-3))))
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def counts_of(experts: int, tokens: int, routing: str, rng) -> list[int]:
    import numpy as np
    p = np.ones(experts) if routing == "uniform" else 1.0 / np.arange(1, experts + 1) ** 1.2
    return rng.multinomial(tokens, p / p.sum()).tolist()


def measure(experts: int, tokens: int, k: int, n: int, routing: str, target: str, configs) -> dict:
    import numpy as np
    import torch

    import tiledsl

    counts = counts_of(experts, tokens, routing, np.random.default_rng(experts + tokens))
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    x = torch.randn(tokens, k, device="cuda", dtype=torch.float16)
    w = torch.randn(experts, k, n, device="cuda", dtype=torch.float16) * k ** -0.5
    off_dev = torch.from_numpy(off).to("cuda")
    ref = torch.empty(tokens, n, device="cuda", dtype=torch.float32)
    for e in range(experts):
        ref[off[e]:off[e + 1]] = x[off[e]:off[e + 1]].float() @ w[e].float()
    flops = 2 * tokens * k * n
    row: dict = {"E": experts, "tokens": tokens, "K": k, "N": n, "routing": routing, "max_rows": max(counts),
                 "empty_experts": counts.count(0), "target": target}
    timed: list[tuple[str, object]] = []

    def record(name: str, fn) -> None:
        """Check ``fn``'s output; time it later, in the same rounds as the others."""
        try:
            out = fn()
            torch.cuda.synchronize()
            err = ((out.float() - ref).norm() / ref.norm()).item()
            if not err < 1e-2:
                row[name] = f"wrong (rel err {err:.1e})"
                return
            timed.append((name, fn))
        except (RuntimeError, ValueError, TypeError) as e:   # cannot run this shape: reported, not fatal
            row[name] = f"n/a ({type(e).__name__}: {str(e)[:80]})"

    y = torch.empty(tokens, n, device="cuda", dtype=torch.float16)
    for bm, bn, bk, waves, stages in configs:
        name = f"tiledsl {bm}x{bn}x{bk} w{waves} s{stages}"
        try:
            params = {"BM": bm, "BN": bn, "BK": bk, "WAVES": waves, "STAGES": stages}
            kern = tiledsl.load(ROOT / "examples" / "moe_gemm.tdsl", params=params).compile(target=target).launcher()
        except (tiledsl.TdslError, tiledsl.InternalCompilerError, RuntimeError) as e:   # LDS, registers...
            row[name] = f"n/a ({type(e).__name__}: {str(e)[:80]})"
            continue

        def ours(kern=kern) -> torch.Tensor:
            kern(X=x, W=w, Off=off_dev, Y=y, max_rows=max(counts))
            return y
        record(name, ours)

    yt = torch.empty(tokens, n, device="cuda", dtype=torch.float16)
    groups = [(e, int(off[e]), int(off[e + 1])) for e in range(experts) if off[e + 1] > off[e]]

    def loop() -> torch.Tensor:
        for e, lo, hi in groups:
            torch.mm(x[lo:hi], w[e], out=yt[lo:hi])
        return yt
    record("torch.mm loop", loop)

    times: dict[str, list[float]] = {name: [] for name, _ in timed}
    for fn in (f for _, f in timed):            # warm-up
        fn()
    for _ in range(ROUNDS):
        for name, fn in timed:
            times[name].append(cuda_ms(fn))
    for name, _ in timed:
        row[name] = round(flops / (sorted(times[name])[ROUNDS // 2] * 1e-3) / 1e12, 1)
    ours_best = [(v, k_) for k_, v in row.items() if k_.startswith("tiledsl") and isinstance(v, float)]
    row["tiledsl"], row["tiledsl_config"] = max(ours_best) if ours_best else ("–", "–")
    return row


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape (64 experts, uniform), two configurations")
    ap.add_argument("--out", default=".")
    ap.add_argument("--target", default="sm_90a", choices=["sm_90", "sm_90a"],
                    help="what tiledsl compiles for: sm_90a (default; wgmma where the tiles allow) or sm_90")
    args = ap.parse_args()
    shapes, configs = (SHAPES[1:2], CONFIGS[:2]) if args.quick else (SHAPES, CONFIGS)
    rows = []
    for shape in shapes:
        rows.append(measure(*shape, args.target, configs))
        print(rows[-1], flush=True)
        torch.cuda.empty_cache()
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, tiledsl --target {args.target}; "
          "TFLOP/s (higher is better)\n")
    print("| E | tokens | K | N | routing | max rows | tiledsl | config | torch.mm loop | tiledsl / loop |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours, peer = r["tiledsl"], r.get("torch.mm loop")
        ratio = f"{ours / peer:.2f}" if isinstance(ours, float) and isinstance(peer, float) else "–"
        print(f"| {r['E']} | {r['tokens']} | {r['K']} | {r['N']} | {r['routing']} | {r['max_rows']} | {ours} | "
              f"{r['tiledsl_config']} | {peer} | {ratio} |")
    Path(args.out, "moe_gpu.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
