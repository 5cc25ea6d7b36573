"""Varlen attention on the GPU: examples/attention_varlen.tdsl vs PyTorch SDPA on the same packed
sequences, in one run.

    python bench/varlen_gpu.py [--quick] [--out DIR] [--target sm_90a|sm_90]

Sequences of drawn lengths packed into Q, K, V: [tokens, H, D] (f16, about 32k tokens, H = 16)
with cumulative lengths Cu. Peers (only PyTorch is on the device; flash-attn's
``flash_attn_varlen_func`` joins when it is installed):
- ``torch nested``: SDPA on nested tensors of the jagged layout built on the same packed
  buffers and offsets (``torch.nested.nested_tensor_from_jagged``), which PyTorch runs as its
  FlashAttention-2 varlen kernel — the like-for-like peer (where flash refuses a shape, PyTorch's
  own choice of backend, marked in the JSON);
- ``torch loop``: SDPA (flash backend) called once per sequence on views of the packed buffers.
No padded peer: padding to the longest sequence needs a key mask, which SDPA's flash backend
does not take. TFLOP/s with FLOPs = Σ 4·H·L²·D over the sequences (halved when causal).
Every kernel's output is checked against an f32 reference (SDPA per sequence) before it is timed;
tiledsl runs a few tile configurations and scores the best. Times: CUDA events around a batch
of launches (sized to ~50 ms), after warm-up, the median of five round-robin rounds over the
kernels of a shape. Prints a markdown table; writes varlen_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 5
TOKENS, HEADS = 32768, 16
# (BM, BN, WAVES, STAGES) tried for tiledsl: the attention tuner's picks on the H100, and one more.
CONFIGS = [(64, 64, 4, 2), (128, 64, 8, 2), (128, 128, 8, 2), (64, 32, 4, 3)]
# (mean length, D, causal)
SHAPES = [(m, d, c) for m in (512, 2048) for d in (64, 128) for c in (0, 1)]


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


def lengths(mean: int, rng) -> list[int]:
    """Lengths uniform in [mean/8, 15·mean/8] until about TOKENS tokens."""
    out: list[int] = []
    while sum(out) < TOKENS:
        out.append(int(rng.integers(mean // 8, 15 * mean // 8 + 1)))
    return out


def measure(mean: int, d: int, causal: int, target: str, configs) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import tiledsl

    lens = lengths(mean, np.random.default_rng(mean + d + causal))
    cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    tokens = int(cu[-1])
    q, k, v = (torch.randn(tokens, HEADS, d, device="cuda", dtype=torch.float16) for _ in range(3))
    cu_dev = torch.from_numpy(cu).to("cuda")
    spans = [(int(cu[b]), int(cu[b + 1])) for b in range(len(lens))]

    def per_sequence(qq, kk, vv, out) -> torch.Tensor:
        for lo, hi in spans:       # [L, H, D] -> [H, L, D] views
            out[lo:hi] = F.scaled_dot_product_attention(qq[lo:hi].transpose(0, 1), kk[lo:hi].transpose(0, 1),
                                                        vv[lo:hi].transpose(0, 1),
                                                        is_causal=bool(causal)).transpose(0, 1)
        return out
    ref = per_sequence(q.float(), k.float(), v.float(), torch.empty(tokens, HEADS, d, device="cuda"))
    flops = sum(4 * HEADS * n * n * d for n in lens) / (2 if causal else 1)
    row: dict = {"mean_len": mean, "D": d, "causal": causal, "seqs": len(lens), "tokens": tokens,
                 "max_len": max(lens), "H": HEADS, "target": target}
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
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:   # cannot run this shape
            row[name] = f"n/a ({type(e).__name__}: {str(e)[:80]})"

    o = torch.empty_like(q)
    for bm, bn, waves, stages in configs:
        name = f"tiledsl {bm}x{bn} w{waves} s{stages}"
        try:
            params = {"D": d, "CAUSAL": causal, "BM": bm, "BN": bn, "WAVES": waves, "STAGES": stages}
            prog = tiledsl.load(ROOT / "examples" / "attention_varlen.tdsl", params=params)
            kern = prog.compile(target=target).launcher()
        except (tiledsl.TdslError, tiledsl.InternalCompilerError, RuntimeError) as e:   # LDS, registers...
            row[name] = f"n/a ({type(e).__name__}: {str(e)[:80]})"
            continue

        def ours(kern=kern) -> torch.Tensor:
            kern(Q=q, K=k, V=v, Cu=cu_dev, O=o, scale=d ** -0.5, max_seqlen=max(lens))
            return o
        record(name, ours)

    offsets = cu_dev.long()
    qn, kn, vn = (torch.nested.nested_tensor_from_jagged(t, offsets).transpose(1, 2) for t in (q, k, v))

    def nested(flash: bool = True) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION) if flash else contextlib.nullcontext():
            return F.scaled_dot_product_attention(qn, kn, vn, is_causal=bool(causal)).transpose(1, 2).values()
    record("torch nested", nested)
    if "torch nested" in row:                   # flash refused it: whatever PyTorch picks, said so
        row["torch nested backend"] = f"PyTorch's choice ({row.pop('torch nested')})"
        record("torch nested", lambda: nested(flash=False))

    ol = torch.empty_like(q)

    def loop() -> torch.Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return per_sequence(q, k, v, ol)
    record("torch loop", loop)

    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        flash_attn_varlen_func = None
    if flash_attn_varlen_func is not None:
        def fa() -> torch.Tensor:
            return flash_attn_varlen_func(q, k, v, cu_dev, cu_dev, max(lens), max(lens), causal=bool(causal))
        record("flash_attn varlen", fa)

    times: dict[str, list[float]] = {name: [] for name, _ in timed}
    for fn in (f for _, f in timed):            # warm-up
        fn()
    for _ in range(ROUNDS):
        for name, fn in timed:
            times[name].append(cuda_ms(fn))
    for name, _ in timed:
        row[name] = round(flops / (sorted(times[name])[ROUNDS // 2] * 1e-3) / 1e12, 1)
    ours_best = [(v, k_) for k_, v in row.items() if k_.startswith("tiledsl ") and isinstance(v, float)]
    row["tiledsl"], row["tiledsl_config"] = max(ours_best) if ours_best else ("–", "–")
    return row


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape (mean length 1024, D=128, not causal)")
    ap.add_argument("--out", default=".")
    ap.add_argument("--target", default="sm_90a", choices=["sm_90", "sm_90a"],
                    help="what tiledsl compiles for: sm_90a (default; wgmma where the tiles allow) or sm_90")
    args = ap.parse_args()
    shapes, configs = ([(1024, 128, 0)], CONFIGS[:2]) if args.quick else (SHAPES, CONFIGS)
    rows = []
    for shape in shapes:
        rows.append(measure(*shape, args.target, configs))
        print(rows[-1], flush=True)
        torch.cuda.empty_cache()
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, tiledsl --target {args.target}; "
          "TFLOP/s (higher is better)\n")
    peers = ["torch nested", "torch loop", "flash_attn varlen"]
    print("| mean len | seqs | D | causal | tiledsl | config | " + " | ".join(peers) + " | tiledsl / best peer |")
    print("|---|---|---|---|---|---|" + "---|" * len(peers) + "---|")
    for r in rows:
        numbers = [r[p] for p in peers if isinstance(r.get(p), float)]
        ratio = f"{r['tiledsl'] / max(numbers):.2f}" if isinstance(r["tiledsl"], float) and numbers else "–"
        cells = " | ".join(str(r.get(p, "–")) for p in peers)
        print(f"| {r['mean_len']} | {r['seqs']} | {r['D']} | {r['causal']} | {r['tiledsl']} | {r['tiledsl_config']} | "
              f"{cells} | {ratio} |")
    Path(args.out, "varlen_gpu.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
