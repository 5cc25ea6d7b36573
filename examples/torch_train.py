"""Train a small transformer block with tiledsl's attention and with PyTorch's SDPA; compare the loss.

    python examples/torch_train.py                      # on the GPU: 300 steps each, writes docs/
    python examples/torch_train.py --device cpu --steps 3 --seq 32 --batch 2   # a smoke run (interpreter)

The task: predict the next token of sequences drawn from a fixed random Markov chain (a causal
language model whose best loss is the chain's entropy). Both runs start from the same weights and
see the same batches; only the attention differs: ``tiledsl.torch.attention(q, k, v,
is_causal=True)`` or ``torch.nn.functional.scaled_dot_product_attention``. Mixed precision: weights
in f32, activations bf16 (``torch.autocast``). Writes the loss of every step to
``docs/torch_train.csv`` and a plot to ``docs/torch_train.png`` (pillow), and prints the final
losses and the largest gap between the two curves.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import tiledsl.torch as tt

ROOT = Path(__file__).resolve().parents[1]
Attention = Callable[..., torch.Tensor]


class Block(nn.Module):
    """A pre-norm transformer block (causal self-attention, GELU MLP) with an embedding and head."""

    def __init__(self, vocab: int, dim: int, heads: int, attention: Attention) -> None:
        super().__init__()
        self.heads, self.attention = heads, attention
        self.embed = nn.Embedding(vocab, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        b, n, dim = x.shape
        # [B, N, 3, H, D] → three [B, H, N, D] views: tiledsl reads them in place (strided)
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, dim // self.heads).unbind(2)
        a = self.attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, dim))
        x = x + self.mlp(self.norm2(x))
        return self.head(self.norm3(x))


def markov_batches(vocab: int, batch: int, seq: int, steps: int, device: str, seed: int
                   ) -> tuple[list[torch.Tensor], float]:
    """``steps`` batches of token sequences from one random Markov chain (sharp transitions), and
    the chain's entropy rate (the best loss a model can reach)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, vocab, generator=g) * 3
    probs = torch.softmax(logits, dim=1)
    out = []
    for _ in range(steps):
        tokens = torch.empty(batch, seq + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(vocab, (batch,), generator=g)
        for t in range(seq):
            tokens[:, t + 1] = torch.multinomial(probs[tokens[:, t]], 1, generator=g).squeeze(1)
        out.append(tokens.to(device))
    stationary = torch.full((vocab,), 1 / vocab)
    for _ in range(1000):
        stationary = stationary @ probs
    entropy = float(-(stationary[:, None] * probs * probs.clamp_min(1e-30).log()).sum())
    return out, entropy


def train(attention: Attention, batches: list[torch.Tensor], args: argparse.Namespace) -> list[float]:
    torch.manual_seed(args.seed)
    model = Block(args.vocab, args.dim, args.heads, attention).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    losses = []
    for tokens in batches:
        with torch.autocast(args.device, dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def plot(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """A line plot of the loss curves with pillow (no matplotlib needed)."""
    from PIL import Image, ImageDraw
    w, h, pad = 900, 520, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    values = [v for c in curves.values() for v in c]
    lo, hi = min(values), max(values)
    steps = max(len(c) for c in curves.values())

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * i / max(steps - 1, 1), h - pad - (h - 2 * pad) * (v - lo) / max(hi - lo, 1e-9)

    d.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = xy(0, v)[1]
        d.line([pad - 5, y, pad, y], fill="black")
        d.text((5, y - 6), f"{v:.2f}", fill="black")
    for k in range(5):
        i = round((steps - 1) * k / 4)
        x = xy(i, lo)[0]
        d.text((x - 10, h - pad + 8), str(i), fill="black")
    colours = ["#d62728", "#1f77b4", "#2ca02c"]
    for (name, curve), colour in zip(curves.items(), colours):
        d.line([xy(i, v) for i, v in enumerate(curve)], fill=colour, width=2)
    for k, (name, colour) in enumerate(zip(curves, colours)):
        d.line([w - pad - 200, pad + 20 + 18 * k, w - pad - 170, pad + 20 + 18 * k], fill=colour, width=3)
        d.text((w - pad - 160, pad + 14 + 18 * k), name, fill="black")
    d.text((pad, 20), title, fill="black")
    d.text((w // 2 - 20, h - 25), "step", fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "torch_train"), help="path prefix of the .csv and .png")
    args = ap.parse_args()
    batches, entropy = markov_batches(args.vocab, args.batch, args.seq, args.steps, args.device, args.seed)
    curves, seconds = {}, {}
    for name, attention in (("tiledsl", tt.attention), ("sdpa", F.scaled_dot_product_attention)):
        start = time.perf_counter()
        curves[name] = train(attention, batches, args)
        seconds[name] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *curves])
        for i, row in enumerate(zip(*curves.values())):
            writer.writerow([i, *(f"{v:.6f}" for v in row)])
    gap = max(abs(a - b) for a, b in zip(curves["tiledsl"], curves["sdpa"]))
    device = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    title = (f"transformer block, {args.steps} steps on {device}: tiledsl attention vs SDPA "
             f"(B={args.batch}, N={args.seq}, H={args.heads}, D={args.dim // args.heads}, bf16)")
    plot(curves, out.with_suffix(".png"), title)
    for name, c in curves.items():
        print(f"{name:8} first loss {c[0]:.4f}  final loss {c[-1]:.4f}  ({seconds[name]:.1f} s)")
    print(f"largest gap between the curves: {gap:.4f}; the chain's entropy (best loss) {entropy:.4f}, "
          f"uniform guess {math.log(args.vocab):.4f}")
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
