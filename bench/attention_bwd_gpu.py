"""Attention backward on the GPU: tiledsl's FA2 backward vs PyTorch SDPA's flash backward, in one run.

    python bench/attention_bwd_gpu.py [--quick] [--out DIR] [--target sm_90a|sm_90] [--d 64 128] [--causal 0 1]

(Compiling the tile configurations takes minutes; split a run by --d / --causal to keep each
command short.)

tiledsl's backward is examples/attention_bwd.tdsl's three launches (preprocess, dK/dV, dQ) after
tiledsl's forward has given O and L; PyTorch's is ``torch.autograd.grad`` through
``scaled_dot_product_attention`` under ``sdpa_kernel(SDPBackend.FLASH_ATTENTION)`` (FA2's
backward, its dq accumulation and conversion included). Shapes: Z·N = 16384, H = 16, N in 1024,
4096, 16384, D in 64 and 128, causal and not; f16. TFLOP/s with FLOPs = 10·Z·H·N²·D (the five
GEMMs of the backward; halved when causal); the ratio is PyTorch's time over tiledsl's (> 1:
tiledsl faster).

Before anything is timed, tiledsl's dQ, dK, dV are checked against PyTorch's flash gradients
(whole tensors) and against float32 autograd of the plain math on the first two heads. The dK/dV
and dQ kernels are independent launches, so each picks its fastest tile configuration out of a
few (listed per D below; every one is checked first), and the chosen pair is timed as one
backward against PyTorch in three round-robin rounds (median of CUDA-event times each). Prints a
markdown table; writes attention_bwd_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BWD = ROOT / "examples" / "attention_bwd.tdsl"
ROUNDS = 3
# Tile configurations tried per head dim. dK/dV: BN keys a block, BM queries a step, KREGS=0
# re-reads K and V from LDS (fewer registers: the kernel holds two BN x D f32 accumulators).
# dQ: BM queries a block, BN keys a step. On sm_90a, wgmma needs 16 rows a wave and WAVES a
# multiple of 4 (BN/WAVES = 16 for dK/dV, BM/WAVES = 16 for dQ).
DKDV_CONFIGS = {
    64: [{"BN": 64, "BM": 64, "WAVES": 4, "KREGS": 1}, {"BN": 128, "BM": 64, "WAVES": 8, "KREGS": 1},
         {"BN": 128, "BM": 32, "WAVES": 8, "KREGS": 1}, {"BN": 64, "BM": 32, "WAVES": 4, "KREGS": 1}],
    128: [{"BN": 128, "BM": 32, "WAVES": 8, "KREGS": 0}, {"BN": 64, "BM": 32, "WAVES": 4, "KREGS": 0},
          {"BN": 128, "BM": 64, "WAVES": 8, "KREGS": 0}, {"BN": 64, "BM": 64, "WAVES": 4, "KREGS": 0}],
}
DQ_CONFIGS = {
    64: [{"BM": 64, "BN": 64, "WAVES": 4}, {"BM": 128, "BN": 64, "WAVES": 8}, {"BM": 128, "BN": 32, "WAVES": 8}],
    128: [{"BM": 64, "BN": 64, "WAVES": 4}, {"BM": 128, "BN": 64, "WAVES": 8}, {"BM": 128, "BN": 32, "WAVES": 8}],
}


def bench(fn, warmup: int = 10, reps: int = 50) -> float:
    """Median milliseconds of ``fn`` by CUDA events around each call."""
    import torch
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return sorted(s.elapsed_time(e) for s, e in zip(starts, ends))[reps // 2]


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


class Kernels:
    """The compiled kernels, one per (kernel, params), shared by the shapes of one run."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.cache: dict = {}

    def get(self, name: str, params: dict):
        import tiledsl
        key = (name, tuple(sorted(params.items())))
        if key not in self.cache:
            path = ROOT / "examples" / "attention.tdsl" if name == "attention" else BWD
            prog = tiledsl.load(path, params=params, kernel=None if name == "attention" else name)
            self.cache[key] = prog.compile(target=self.target).launcher()
        return self.cache[key]


def forward_params(n: int, d: int, causal: int, target: str) -> dict:
    from tiledsl.tune import best_params
    return best_params("attention", {"N": n, "D": d, "CAUSAL": causal}, target) or \
        ({"BM": 128, "WAVES": 8, "BN": 64, "QREGS": 0} if target == "sm_90a" else {"BM": 128, "BN": 64})


def measure(n: int, d: int, causal: int, kernels: Kernels, quick: bool) -> dict:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    z, h = 16384 // n, 16
    scale = d ** -0.5
    gen = torch.Generator(device="cuda").manual_seed(n + d + causal)
    q, k, v, do = (torch.randn(z, h, n, d, device="cuda", dtype=torch.float16, generator=gen) for _ in range(4))
    flops = 10 * z * h * n * n * d / (2 if causal else 1)
    row: dict = {"N": n, "D": d, "causal": causal, "Z": z, "H": h, "target": kernels.target}

    # PyTorch: flash forward once, then its backward alone is what is timed.
    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out_t = torch.nn.functional.scaled_dot_product_attention(qg, kg, vg, is_causal=bool(causal), scale=scale)

    def torch_bwd():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.autograd.grad(out_t, (qg, kg, vg), do, retain_graph=True)
    want = dict(zip(("dQ", "dK", "dV"), torch_bwd()))

    # The float32 math on two heads: the check that does not trust either flash kernel.
    qs, ks, vs = (x[:1, :2].float().requires_grad_() for x in (q, k, v))
    s = qs @ ks.transpose(-1, -2) * scale
    if causal:
        s = s.masked_fill(torch.ones(n, n, device="cuda", dtype=torch.bool).triu(1), float("-inf"))
    exact = dict(zip(("dQ", "dK", "dV"), torch.autograd.grad(torch.softmax(s, -1) @ vs, (qs, ks, vs),
                                                              do[:1, :2].float())))
    del s

    # tiledsl: forward for O and L, then the backward's three launches.
    o = torch.empty_like(q)
    lse = torch.empty(z, h, n, device="cuda", dtype=torch.float32)
    kernels.get("attention", {"D": d, "CAUSAL": causal, **forward_params(n, d, causal, kernels.target)})(
        Q=q, K=k, V=v, O=o, L=lse, scale=scale)
    delta = torch.empty(z, h, n, device="cuda", dtype=torch.float32)
    grads = {g: torch.empty_like(q) for g in ("dQ", "dK", "dV")}
    pre = kernels.get("attention_bwd_preprocess", {"D": d})
    common = {"Q": q, "K": k, "V": v, "dO": do, "L": lse, "Delta": delta, "scale": scale}
    pre(O=o, dO=do, Delta=delta)

    def check(names: tuple[str, ...]) -> str | None:
        for g in names:
            err, err_exact = rel(grads[g], want[g]), rel(grads[g][:1, :2], exact[g])
            if not (err < 2e-2 and err_exact < 2e-2):
                return f"{g} wrong (rel err {err:.1e} vs flash, {err_exact:.1e} vs f32 math)"
        return None

    def pick(name: str, configs: list[dict], outs: tuple[str, ...]) -> tuple[dict | None, object, dict]:
        """The fastest of ``configs`` whose outputs are right, its launch, and every config's result."""
        tried: dict = {}
        best = (None, None, float("inf"))
        for cfg in configs[:1] if quick else configs:
            label = ",".join(f"{a}={b}" for a, b in cfg.items())
            try:
                kern = kernels.get(name, {"D": d, "CAUSAL": causal, **cfg})

                def launch(kern=kern):
                    kern(**common, **{g: grads[g] for g in outs})
                for g in outs:
                    grads[g].fill_(float("nan"))
                launch()
                torch.cuda.synchronize()
                wrong = check(outs)
                if wrong:
                    tried[label] = wrong
                    continue
                ms = bench(launch)
                tried[label] = round(ms, 4)
                if ms < best[2]:
                    best = (cfg, launch, ms)
            except Exception as e:  # noqa: BLE001  (a config that cannot compile or run is reported, not fatal)
                tried[label] = f"n/a ({type(e).__name__}: {str(e)[:80]})"
        return best[0], best[1], tried

    dkdv_cfg, dkdv, row["dkdv_tried"] = pick("attention_bwd_dkdv", DKDV_CONFIGS[d], ("dK", "dV"))
    dq_cfg, dq, row["dq_tried"] = pick("attention_bwd_dq", DQ_CONFIGS[d], ("dQ",))
    row["dkdv_params"], row["dq_params"] = dkdv_cfg, dq_cfg
    timed = {"torch-flash": torch_bwd}
    if dkdv is not None and dq is not None:
        def ours():
            pre(O=o, dO=do, Delta=delta)
            dkdv()
            dq()
        ours()
        wrong = check(("dQ", "dK", "dV"))
        if wrong:
            row["tiledsl"] = wrong
        else:
            timed["tiledsl"] = ours
            row["rel_err_vs_flash"] = {g: rel(grads[g], want[g]) for g in ("dQ", "dK", "dV")}
            row["rel_err_vs_f32"] = {g: rel(grads[g][:1, :2], exact[g]) for g in ("dQ", "dK", "dV")}
    else:
        row["tiledsl"] = "no tile configuration ran correctly"
    # Round-robin: each is timed once a round and scores the median of its rounds, so that a drift
    # of the GPU's clocks during the run moves both alike.
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(ROUNDS):
        for name, fn in timed.items():
            times[name].append(bench(fn))
    for name in timed:
        ms = sorted(times[name])[ROUNDS // 2]
        row[name + "_ms"] = round(ms, 4)
        row[name] = round(flops / ms / 1e9, 1)
    if "tiledsl_ms" in row:
        row["ratio"] = round(row["torch-flash_ms"] / row["tiledsl_ms"], 3)
    return row


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="N=4096 only, D 64 and 128, not causal, the first tile configuration of each kernel")
    ap.add_argument("--out", default=".")
    ap.add_argument("--target", default="sm_90a", choices=["sm_90a", "sm_90"],
                    help="what tiledsl compiles for: sm_90a (default; wgmma) or sm_90 (mma.sync)")
    ap.add_argument("--d", type=int, nargs="+", default=[64, 128], help="head dims (default: 64 128)")
    ap.add_argument("--causal", type=int, nargs="+", default=[0, 1], help="0, 1 or both (default)")
    ap.add_argument("--n", type=int, nargs="+", default=[1024, 4096, 16384], help="sequence lengths")
    args = ap.parse_args()
    shapes = [(n, d, c) for d in args.d for c in args.causal for n in args.n]
    if args.quick:
        shapes = [(4096, d, 0) for d in args.d]
    kernels = Kernels(args.target)
    rows = []
    for n, d, causal in shapes:
        rows.append(measure(n, d, causal, kernels, args.quick))
        print(json.dumps(rows[-1]), flush=True)
        torch.cuda.empty_cache()
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, f16, tiledsl for {args.target}; "
          f"TFLOP/s of the backward (higher is better), ratio = torch time / tiledsl time\n")
    print("| N | D | causal | tiledsl | torch flash (FA2) | tiledsl / flash | dK/dV tiles | dQ tiles |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        tiles = [",".join(f"{a}={b}" for a, b in (r.get(p) or {}).items()) or "–" for p in ("dkdv_params", "dq_params")]
        print(f"| {r['N']} | {r['D']} | {r['causal']} | {r.get('tiledsl', '–')} | {r.get('torch-flash', '–')} | "
              f"{r.get('ratio', '–')} | {tiles[0]} | {tiles[1]} |")
    Path(args.out, "attention_bwd_gpu.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
