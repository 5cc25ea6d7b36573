"""A/B: attention variants against PyTorch flash (FA2) in one run, round-robin.

    python bench/ab_attention.py --shape 4096,128,0 --shape 1024,128,1 \\
        --config BM=128,WAVES=4,BN=64,STAGES=2,QREGS=0 --config BM=128,WAVES=4,BN=32,STAGES=2,QREGS=0 \\
        [--file examples/attention.tdsl --file my_variant.tdsl] [--target sm_90 --target sm_90a]

For each shape (N, D, causal; Z·N = 32768, H = 16 as in bench/attention_gpu.py) every file ×
config × target (sm_90 by default) is compiled, checked against an f32 PyTorch reference and timed with
``triton.testing.do_bench``, in three rounds over all of them and flash (each scores the median of
its rounds). Prints TFLOP/s and the ratio to flash. This is how bench/NOTES.md's A/B rows are
measured: only ratios taken in the same run compare, the GPU's clocks drift between runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 3


def _config(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (part.split("=") for part in text.split(","))}


def measure(n: int, d: int, causal: int, files: list[str], configs: list[dict[str, int]], targets: list[str]) -> None:
    """Print every variant's TFLOP/s at one shape and its ratio to flash, timed round-robin."""
    import torch
    import triton
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import tiledsl

    z, h = 32768 // n, 16
    q, k, v = (torch.randn(z, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=bool(causal))
    flops = 4 * z * h * n * n * d / (2 if causal else 1)

    def flash():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
    runs = {"torch flash": flash}
    for path, cfg, target in [(p, c, t) for p in files for c in configs for t in targets]:
        kern = tiledsl.load(path, params={"D": d, "CAUSAL": causal, **cfg}).compile(target=target).launcher()
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:3], device=q.device, dtype=torch.float32)

        def ours(kern=kern, o=out, lse=lse):
            kern(Q=q, K=k, V=v, O=o, L=lse, scale=d ** -0.5)
            return o
        err = ((ours().float() - ref).norm() / ref.norm()).item()
        name = f"{Path(path).name} {target} {cfg}"
        if not err < 1e-2:
            print(f"  {name}: WRONG RESULT (rel err {err:.1e}), not timed", flush=True)
            continue
        runs[name] = ours
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            times[name].append(triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median"))
    tflops = {name: flops / sorted(t)[ROUNDS // 2] / 1e9 for name, t in times.items()}
    print(f"== N={n} D={d} causal={causal}")
    for name, tf in tflops.items():
        print(f"  {name}: {tf:.1f} TFLOP/s ({tf / tflops['torch flash']:.3f} of flash)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", action="append", required=True, metavar="N,D,CAUSAL")
    ap.add_argument("--config", action="append", type=_config, required=True, metavar="P=V,...")
    ap.add_argument("--file", action="append", default=None, help="variants of the kernel (default: the example)")
    ap.add_argument("--target", action="append", default=None, help="NVPTX targets to compile for (default: sm_90)")
    args = ap.parse_args()
    files = args.file or [str(ROOT / "examples" / "attention.tdsl")]
    for shape in args.shape:
        n, d, causal = (int(x) for x in shape.split(","))
        measure(n, d, causal, files, args.config, args.target or ["sm_90"])


if __name__ == "__main__":
    main()
