"""Decode attention on the GPU: tiledsl's flash-decoding and paged decode vs PyTorch SDPA, in one run.

    python bench/decode_gpu.py [--quick] [--out DIR] [--targets sm_90,sm_90a]

f16, D = 128, no mask (every query row sees every key), microseconds a call (both kernels of
flash-decoding, split and combine, are in tiledsl's time).

- Flash-decoding (examples/flash_decoding.tdsl): Z = 4 sequences, M = 1 or 4 query rows a head,
  N = 8k, 32k or 128k keys, heads MHA (H = HK = 16) or GQA (H = 32 over HK = 8), against
  ``scaled_dot_product_attention`` on the same tensors (``enable_gqa`` for GQA).
- Paged decode (examples/paged_decode.tdsl): batch 64, H = 32 over HK = 8, one query row, every
  sequence L = 1k, 4k or 16k keys in pages of 16 given out in a random order, against SDPA on
  the un-paged (contiguous) KV — which has no block table to follow — and against a gather of the
  pages into a contiguous KV followed by SDPA (what one does without a paged kernel).

Method: every candidate's output is checked first against an f32 reference (of the last
sequence, whose offsets are the largest; in PyTorch) and dropped if wrong. tiledsl is tuned per
shape: each candidate configuration (tile parameters, target, number of splits) is timed once
and the fastest kept; it is then timed again with the peers in ROUNDS round-robin rounds (each
scoring the median of its rounds, so that a drift of the GPU's clocks moves all alike). SDPA is
timed with each backend that runs the shape and scores its best. A time is the median over many
calls of CUDA events around one call, the L2 cache flushed before each (a 256 MiB write);
tiledsl's kernels are launched through ``CudaKernel.bound`` (arguments checked once), so that
the Python checks of a call are not timed — SDPA's C++ dispatch is. Prints markdown tables;
writes decode_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

D = 128
ROUNDS = 3
TOLERANCE = 5e-3            # relative Frobenius error of an f16 output vs the f32 reference
# (BN, STAGES, WAVES) of the split / paged kernel tried per shape.
CONFIGS = [(64, 2, 4), (32, 2, 2), (64, 3, 4), (32, 4, 2), (128, 2, 4), (32, 2, 4)]


def time_ms(fn, reps: int = 100, warmup: int = 10) -> float:
    """Median of ``reps`` CUDA-event timings of ``fn()``, the L2 cache flushed before each."""
    import torch
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        flush.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return times[len(times) // 2]


def rel_err(out, ref) -> float:
    return ((out.float() - ref).norm() / ref.norm()).item()


def sdpa_backends() -> list[tuple[str, Any]]:
    from torch.nn.attention import SDPBackend
    return [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]


def reference(q, k, v, scale: float):
    """f32 attention of one sequence: q [H, M, D], k and v [HK, N, D] -> [H, M, D]."""
    import torch
    h, hk = q.shape[0], k.shape[0]
    out = []
    for i in range(hk):                       # one KV head at a time: [N, D] in f32 at most
        kf, vf = k[i].float(), v[i].float()
        qs = q[i * (h // hk):(i + 1) * (h // hk)].float()
        p = torch.softmax(qs @ kf.T * scale, dim=-1)
        out.append(p @ vf)
    return torch.cat(out)


class Timed:
    """The candidates of one shape: name -> launch; checked, then timed in rounds."""

    def __init__(self, ref, first) -> None:
        self.ref, self.first = ref, first          # the reference and how to take it from an output
        self.fns: dict[str, Any] = {}
        self.notes: dict[str, str] = {}

    def add(self, name: str, fn, out) -> bool:
        try:
            result = fn()
            err = rel_err(self.first(out if out is not None else result), self.ref)
        except (RuntimeError, ValueError, TypeError) as e:    # a peer that cannot run this shape
            self.notes[name] = f"n/a ({type(e).__name__}: {str(e)[:60]})"
            return False
        if not err < TOLERANCE:
            self.notes[name] = f"wrong (rel err {err:.1e})"
            return False
        self.fns[name] = fn
        return True

    def rounds(self, names: list[str]) -> dict[str, float]:
        times: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(ROUNDS):
            for n in names:
                times[n].append(time_ms(self.fns[n]))
        return {n: sorted(t)[ROUNDS // 2] * 1e3 for n, t in times.items()}


def split_counts(blocks: int, n: int, bn: int, sms: int) -> list[int]:
    """Splits that give about 2, 4 and 8 blocks an SM, each split at least one step of keys."""
    most = max(1, -(-n // bn))
    return sorted({max(1, min(most, -(-sms * k // blocks))) for k in (2, 4, 8)})


def flash_decoding_row(z: int, h: int, hk: int, m: int, n: int, kernels: dict, sms: int) -> dict:
    import torch
    q = torch.randn(z, h, m, D, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(z, hk, n, D, device="cuda", dtype=torch.float16) for _ in range(2))
    scale = D ** -0.5
    g = h // hk * m                                   # query rows a KV head: GQA's heads packed as rows
    qv = q.view(z, hk, g, D)
    timed = Timed(reference(q[-1], k[-1], v[-1], scale), lambda o: o[-1])
    row: dict[str, Any] = {"Z": z, "H": h, "HK": hk, "M": m, "N": n}

    # tiledsl: one candidate per (config, target, splits); the fastest goes on to the rounds.
    o = torch.empty(z, hk, g, D, device="cuda", dtype=torch.float16)
    best: tuple[float, str] | None = None
    for (cfg, target), (split, combine) in kernels.items():
        bn = cfg[0]
        for s in split_counts(z * hk * -(-g // 16), n, bn, sms):
            op = torch.empty(z, hk, s, g, D, device="cuda", dtype=torch.float32)
            lse = torch.empty(z, hk, s, g, device="cuda", dtype=torch.float32)
            launch_split = split.bound(Q=qv, K=k, V=v, Op=op, Lse=lse, scale=scale)
            launch_combine = combine.bound(Op=op, Lse=lse, O=o)

            def ours(a=launch_split, b=launch_combine, keep=(op, lse)):    # keep: the launches hold
                a()                                                         # bare pointers to op, lse
                b()
            name = f"BN={bn} STAGES={cfg[1]} WAVES={cfg[2]} {target} S={s}"
            if timed.add(name, ours, o.view(z, h, m, D)):
                t = time_ms(ours, reps=30)
                best = min(best, (t, name)) if best else (t, name)
    for name, backend in sdpa_backends():
        def sdpa(backend=backend):
            from torch.nn.attention import sdpa_kernel
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale,
                                                                        enable_gqa=h != hk)
        timed.add(f"sdpa-{name}", sdpa, None)
    return finish(row, timed, best, lambda us: 2 * z * hk * n * D * 2 / us / 1e3)


def finish(row: dict, timed: Timed, best: tuple[float, str] | None, gbps) -> dict:
    """Time tiledsl's best candidate and the peers in rounds; fill the row."""
    peers = [n for n in timed.fns if n.startswith(("sdpa", "gather"))]
    names = ([best[1]] if best else []) + peers
    times = timed.rounds(names)
    row["tiledsl"] = round(times[best[1]], 1) if best else "none ran"
    row["config"] = best[1] if best else ""
    for n in peers:
        row[n] = round(times[n], 1)
    row.update({n: note for n, note in timed.notes.items() if n.startswith(("sdpa", "gather"))})
    sdpa = [times[n] for n in peers if n.startswith("sdpa")]
    if best and sdpa:
        row["sdpa_best"] = round(min(sdpa), 1)
        row["ratio"] = round(min(sdpa) / times[best[1]], 2)
        row["GB/s"] = round(gbps(times[best[1]]))
    return row


def paged_row(b: int, h: int, hk: int, length: int, page: int, kernels: dict) -> dict:
    import torch
    scale = D ** -0.5
    per_seq = -(-length // page)
    pages = b * per_seq
    q = torch.randn(b, h, 1, D, device="cuda", dtype=torch.float16)
    kc, vc = (torch.randn(pages, page, hk, D, device="cuda", dtype=torch.float16) for _ in range(2))
    bt = torch.randperm(pages, device="cuda", dtype=torch.int32).view(b, per_seq).contiguous()
    lens = torch.full((b,), length, device="cuda", dtype=torch.int32)
    # The same keys, un-paged: [B, HK, L, D].
    kd, vd = (x[bt.long()].reshape(b, per_seq * page, hk, D)[:, :length].transpose(1, 2).contiguous()
              for x in (kc, vc))
    g = h // hk
    qv = q.view(b, hk, g, D)
    timed = Timed(reference(q[-1], kd[-1], vd[-1], scale), lambda o: o[-1])
    row: dict[str, Any] = {"B": b, "H": h, "HK": hk, "L": length, "PAGE": page}
    o = torch.empty(b, hk, g, D, device="cuda", dtype=torch.float16)
    best: tuple[float, str] | None = None
    for (cfg, target), kern in kernels.items():
        launch = kern.bound(Q=qv, Kc=kc, Vc=vc, BT=bt, Lens=lens, O=o, scale=scale)
        name = f"BN={cfg[0]} STAGES={cfg[1]} WAVES={cfg[2]} {target}"
        if timed.add(name, launch, o.view(b, h, 1, D)):
            t = time_ms(launch, reps=30)
            best = min(best, (t, name)) if best else (t, name)
    for name, backend in sdpa_backends():
        def sdpa(backend=backend):
            from torch.nn.attention import sdpa_kernel
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, kd, vd, scale=scale, enable_gqa=True)
        timed.add(f"sdpa-{name}", sdpa, None)

    def gather_sdpa():
        idx = bt.long()
        k = kc[idx].reshape(b, per_seq * page, hk, D)[:, :length].transpose(1, 2)
        v = vc[idx].reshape(b, per_seq * page, hk, D)[:, :length].transpose(1, 2)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
    timed.add("gather+sdpa", gather_sdpa, None)
    return finish(row, timed, best, lambda us: 2 * b * hk * length * D * 2 / us / 1e3)


def compiled(example: str, kernel: str, params: dict, target: str):
    """The launcher of one kernel of an example at D and ``params``; None (and a line saying why)
    where it does not compile, so that one failing configuration does not stop the bench."""
    import tiledsl
    try:
        mod = tiledsl.load(ROOT / "examples" / f"{example}.tdsl", params={"D": D, **params})
        return mod.kernels[kernel].compile(target=target).launcher()
    except Exception as e:                # noqa: BLE001 -- reported, and the bench goes on without it
        print(f"{kernel} {params} {target}: does not compile: {type(e).__name__}: {str(e)[:200]}", flush=True)
        return None


def table(rows: list[dict], keys: list[str]) -> str:
    peers = sorted({k for r in rows for k in r if k.startswith(("sdpa-", "gather"))})
    cols = keys + ["tiledsl"] + peers + ["sdpa_best", "ratio", "GB/s", "config"]
    lines = ["| " + " | ".join(c if c in keys or c in ("ratio", "GB/s", "config") else f"{c} µs"
                               for c in cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape of each kernel, two configurations")
    ap.add_argument("--out", default=".")
    ap.add_argument("--targets", default="sm_90,sm_90a",
                    help="what tiledsl compiles for (comma-separated; each is a candidate)")
    args = ap.parse_args()
    targets = args.targets.split(",")
    configs = CONFIGS[:2] if args.quick else CONFIGS
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    split, paged = {}, {}
    for t in targets:
        combine = compiled("flash_decoding", "flash_decoding_combine", {}, t)
        for c in configs:
            params = {"BN": c[0], "STAGES": c[1], "WAVES": c[2]}
            kern = compiled("flash_decoding", "flash_decoding_split", params, t)
            if kern is not None and combine is not None:
                split[(c, t)] = (kern, combine)
            kern = compiled("paged_decode", "paged_decode", params, t)
            if kern is not None:
                paged[(c, t)] = kern

    shapes = [(4, h, hk, m, n) for h, hk in ((16, 16), (32, 8)) for m in (1, 4) for n in (8192, 32768, 131072)]
    paged_shapes = [(64, 32, 8, length, 16) for length in (1024, 4096, 16384)]
    if args.quick:
        shapes, paged_shapes = [(4, 32, 8, 1, 32768)], [(64, 32, 8, 4096, 16)]
    rows, prows = [], []
    for s in shapes:
        rows.append(flash_decoding_row(*s, split, sms))
        print(rows[-1], flush=True)
        torch.cuda.empty_cache()
    for s in paged_shapes:
        prows.append(paged_row(*s, paged))
        print(prows[-1], flush=True)
        torch.cuda.empty_cache()
    device = torch.cuda.get_device_name(0)
    print(f"\n## Flash-decoding vs SDPA ({device}, torch {torch.__version__}, f16, D={D})\n")
    print(table(rows, ["Z", "H", "HK", "M", "N"]))
    print(f"\n## Paged decode vs SDPA on the contiguous KV ({device}, batch 64, pages of 16)\n")
    print(table(prows, ["B", "H", "HK", "L", "PAGE"]))
    out = Path(args.out) / "decode_gpu.json"
    out.write_text(json.dumps({"device": device, "torch": torch.__version__, "flash_decoding": rows,
                               "paged_decode": prows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
