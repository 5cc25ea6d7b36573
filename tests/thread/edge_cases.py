"""Legal programs at the edges of the tiling, with NumPy references: shared by the thread-level
tests (``test_edge_tiles.py``) and the LLVM lowering run on the CPU (``tests/llvm/test_lower_edge_tiles.py``).

Rows whose width is not a power of two (padding lanes and registers in the reduction), tiles of
extent 1, loads of one element (a uniform scalar used as a loop bound, a slice start, an ``if``
condition), full reductions to a scalar, broadcasts of one-row and one-column tiles, and
reductions whose result is pinned to an unrelated layout; 1 to 8 waves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tiledsl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Per segment g: Y[g, :] = S[g] * the sum of rows Off[g] .. Off[g+1] of X; -1 for an empty
# segment. The bounds are one-element loads: loop bounds, an if condition, a factor of a tile.
SEGMENTS = """
kernel segments(X: f32[R, C], Off: i32[G1], S: f32[G], out Y: f32[G, C])
  param BC = 40, WAVES = 2
  grid (G, cdiv(C, BC)) as (g, c)
  block WAVES waves
{
  lo = Off[g]
  hi = Off[g + 1]
  acc = fill(0, f32[BC])
  for r in lo .. hi {
    acc = acc + X[r, c*BC : +BC]
  }
  if hi > lo {
    Y[g, c*BC : +BC] <- acc * S[g]
  } else {
    Y[g, c*BC : +BC] <- fill(-1.0, f32[BC])
  }
}
"""

# Statistics of each block's BN elements as scalars: stored, compared in an if, used as the
# bound of a loop (K counts its iterations) and in arithmetic with the tile.
TOTALS = """
kernel totals(X: f32[N], out T: f32[B], out M: f32[B], out Z: f32[N], out K: i32[B])
  param BN = 300, WAVES = 4
  grid (cdiv(N, BN)) as (b)
  block WAVES waves
{
  x = X[b*BN : +BN]
  t = sum(x, axis=0)
  m = max(X[b*BN : +BN] pad -inf, axis=0)
  n = sum(where(b*BN + iota(BN) < N, 1.0, 0.0), axis=0)
  T[b : +1] <- fill(t, f32[1])
  M[b : +1] <- fill(m, f32[1])
  if t > 0.0 {
    Z[b*BN : +BN] <- x - t / n
  } else {
    Z[b*BN : +BN] <- x * m
  }
  k = fill(0, i32[1])
  for i in 0 .. i32(n) step 7 {
    k = k + 1
  }
  K[b : +1] <- k
}
"""

# One-row and one-column tiles broadcast against the block's tile, a filled [1, BN], and the
# row sum of a one-row tile (an f32[1]) broadcast against a column.
ONE_ROW = """
kernel one_row(X: f32[M, N], out Z: f32[M, N], out W: f32[M])
  param BM = 16, BN = 40, BR = 64, WAVES = 4
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block WAVES waves
{
  r = X[0 : +1, j*BN : +BN]
  c = X[i*BM : +BM, 0 : +1]
  x = X[i*BM : +BM, j*BN : +BN]
  Z[i*BM : +BM, j*BN : +BN] <- x + r * c + fill(0.5, f32[1, BN])
  s = rowsum(X[i*BM : +1, 0 : +BR])
  if j == 0 {
    W[i*BM : +BM] <- colsum(c^T) * s
  }
}
"""

# x[:, _] of an f32[1] (a one-row tile's row sum) broadcast along both dims, and a one-column
# tile added before a row reduction.
ROW_STAT = """
kernel row_stat(X: f32[M, N], out Y: f32[M, N], out R: f32[M])
  param BM = 16, BN = 5, WAVES = 2
  grid (cdiv(M, BM)) as (i)
  block WAVES waves
{
  x = X[i*BM : +BM, 0 : +BN]
  r = X[i*BM : +1, 0 : +BN]
  q = X[i*BM : +BM, 0 : +1]
  s = rowsum(r)
  Y[i*BM : +BM, 0 : +BN] <- x * r + q - s[:, _]
  R[i*BM : +BM] <- rowmax(x + q) + s
}
"""

# Reductions whose results are pinned to layouts unrelated to their operand's.
PINNED = """
kernel pinned(X: f32[M, N], out Y: f32[M], out Z: f32[N])
  param BM = 32, BN = 48
  grid (cdiv(M, BM)) as (i)
  block 4 waves
{
  layout rows = blocked(spt=[1], order=[0], waves=[4])
  x = X[i*BM : +BM, 0 : +BN] @ blocked(spt=[2, 2], order=[0, 1], waves=[2, 2])
  s = rowsum(x) @ rows
  Y[i*BM : +BM] <- s
  if i == 0 {
    z = colsum(x) @ blocked(spt=[4], order=[0], waves=[4])
    Z[0 : +BN] <- z
  }
}
"""

# A full i32 reduction as a loop bound.
INT_TOTAL = """
kernel int_total(X: i32[N], out S: i32[B], out K: i32[B])
  param BN = 100, WAVES = 2
  grid (cdiv(N, BN)) as (b)
  block WAVES waves
{
  s = sum(X[b*BN : +BN], axis=0)
  S[b : +1] <- fill(s, i32[1])
  k = fill(0, i32[1])
  for i in 0 .. s {
    k = k + 2
  }
  K[b : +1] <- k
}
"""

# Reductions of a dot's result along each axis and to a scalar; small or odd tiles take the FMA
# fallback (operands staged in LDS, which must stay live until the dot has read them).
DOT_STATS = """
kernel dot_stats(A: f16[M, K], B: f16[K, N], out R: f32[M], out C: f32[N], out T: f32[G])
  param BM = 64, BN = 64, BK = 32, WAVES = 4
  grid (cdiv(M, BM)) as (i)
  block WAVES waves
{
  s = dot(A[i*BM : +BM, 0 : +BK], B[0 : +BK, 0 : +BN])
  R[i*BM : +BM] <- rowmax(s)
  if i == 0 {
    C[0 : +BN] <- colsum(s)
  }
  T[i : +1] <- fill(sum(rowsum(s), axis=0), f32[1])
}
"""

# Reductions of an mma accumulator split over waves both ways: along rows, columns, to a scalar.
MMA_STATS = """
kernel mma_stats(A: f16[M, K], B: f16[K, N], out R: f32[M], out C: f32[N], out T: f32[1])
  param BM = 64, BN = 64, BK = 16, WM = 2, WN = 2
  grid (1) as (i)
  block WM * WN waves
{
  layout acc = mma(waves=[WM, WN])
  s = dot(A[0 : +BM, 0 : +BK], B[0 : +BK, 0 : +BN]) @ acc
  R[0 : +BM] <- rowmax(s)
  C[0 : +BN] <- colsum(s)
  T[0 : +1] <- fill(sum(colmax(s), axis=0), f32[1])
}
"""

# Reductions of a 3-D tile along each axis: 2-D results, lines split over waves (BC=512) and
# padding between a thread's rows (5 rows on 2 lanes).
CUBE = """
kernel cube(X: f32[A, B, C], out Y: f32[A, B], out Z: f32[B, C], out W: f32[A, C])
  param BA = 3, BB = 5, BC = 6, WAVES = 4
  grid (1) as (g)
  block WAVES waves
{
  x = X[0 : +BA, 0 : +BB, 0 : +BC] @ blocked(spt=[1, 1, 2], order=[2, 1, 0], waves=[1, 1, 4])
  Y[0 : +BA, 0 : +BB] <- sum(x, axis=2)
  Z[0 : +BB, 0 : +BC] <- max(x, axis=0)
  W[0 : +BA, 0 : +BC] <- sum(x, axis=1)
}
"""


@dataclass
class Case:
    """A program, its inputs (out tensors NaN/sentinel-filled) and a NumPy reference of its outs."""

    source: str | Path
    params: dict[str, int]
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[[dict[str, Any]], dict[str, np.ndarray]]
    outs: list[str] = field(default_factory=list)

    def program(self) -> tiledsl.Program:
        return tiledsl.load(self.source, params=self.params)


def _rows(m: int, n: int) -> Callable[[np.random.Generator], dict[str, Any]]:
    return lambda rng: {"X": rng.standard_normal((m, n)).astype(np.float32),
                        "Y": np.full((m, n), np.nan, np.float32)}


def _softmax_ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
    x = a["X"].astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return {"Y": e / e.sum(axis=1, keepdims=True)}


def softmax(bn: int, m: int = 21, n: int = 301) -> Case:
    return Case(EXAMPLES / "softmax.tdsl", {"BN": bn}, _rows(m, n), _softmax_ref, ["Y"])


def layernorm(bm: int, bn: int, m: int = 5, n: int = 301) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {**_rows(m, n)(rng), "W": rng.standard_normal(n).astype(np.float32),
                "B": rng.standard_normal(n).astype(np.float32), "eps": 1e-5}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"].astype(np.float64)
        mu = x.mean(axis=1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
        return {"Y": (x - mu) / np.sqrt(var + 1e-5) * a["W"] + a["B"]}
    return Case(EXAMPLES / "layernorm.tdsl", {"BM": bm, "BN": bn}, inputs, ref, ["Y"])


def segments(waves: int, bc: int = 40) -> Case:
    off = np.array([0, 5, 5, 30, 49, 50], np.int32)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((50, 93)).astype(np.float32), "Off": off.copy(),
                "S": rng.standard_normal(5).astype(np.float32), "Y": np.full((5, 93), np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        rows = [a["X"][lo:hi].astype(np.float64).sum(axis=0) * a["S"][g] if hi > lo else np.full(93, -1.0)
                for g, (lo, hi) in enumerate(itertools.pairwise(off))]
        return {"Y": np.stack(rows)}
    return Case(SEGMENTS, {"WAVES": waves, "BC": bc}, inputs, ref, ["Y"])


def totals(waves: int, bn: int, n: int = 707) -> Case:
    blocks = -(-n // bn)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        x = rng.standard_normal(n).astype(np.float32)
        x[:bn] = -np.abs(x[:bn])            # one block negative, one positive: both if branches
        x[bn:2 * bn] = np.abs(x[bn:2 * bn])
        return {"X": x, "T": np.full(blocks, np.nan, np.float32), "M": np.full(blocks, np.nan, np.float32),
                "Z": np.full(n, np.nan, np.float32), "K": np.full(blocks, -7, np.int32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        parts = [a["X"][b * bn:(b + 1) * bn].astype(np.float64) for b in range(blocks)]
        z = [x - x.sum() / len(x) if x.sum() > 0 else x * x.max() for x in parts]
        return {"T": np.array([x.sum() for x in parts]), "M": np.array([x.max() for x in parts]),
                "Z": np.concatenate(z), "K": np.array([-(-len(x) // 7) for x in parts])}
    return Case(TOTALS, {"WAVES": waves, "BN": bn}, inputs, ref, ["T", "M", "Z", "K"])


def one_row(waves: int, bm: int, bn: int, br: int, m: int = 37, n: int = 50) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((m, n)).astype(np.float32), "Z": np.full((m, n), np.nan, np.float32),
                "W": np.full(m, np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"].astype(np.float64)
        z = np.empty_like(x)
        for j in range(0, n, bn):
            cols = slice(j, j + bn)
            for i in range(0, m, bm):
                rows = slice(i, i + bm)
                z[rows, cols] = x[rows, cols] + x[0:1, cols] * x[rows, 0:1] + 0.5
        w = np.concatenate([x[i:i + bm, 0] * x[i, :br].sum() for i in range(0, m, bm)])
        return {"Z": z, "W": w}
    return Case(ONE_ROW, {"WAVES": waves, "BM": bm, "BN": bn, "BR": br}, inputs, ref, ["Z", "W"])


def row_stat(bm: int, bn: int, waves: int, m: int = 37) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((m, bn)).astype(np.float32), "Y": np.full((m, bn), np.nan, np.float32),
                "R": np.full(m, np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"].astype(np.float64)
        y, r = np.empty_like(x), np.empty(m)
        for i in range(0, m, bm):
            t = x[i:i + bm]
            s = x[i].sum()
            y[i:i + bm] = t * x[i] + t[:, :1] - s
            r[i:i + bm] = (t + t[:, :1]).max(axis=1) + s
        return {"Y": y, "R": r}
    return Case(ROW_STAT, {"BM": bm, "BN": bn, "WAVES": waves}, inputs, ref, ["Y", "R"])


def pinned() -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((70, 45)).astype(np.float32), "Y": np.full(70, np.nan, np.float32),
                "Z": np.full(45, np.nan, np.float32)}
    return Case(PINNED, {}, inputs, lambda a: {"Y": a["X"].sum(axis=1), "Z": a["X"][:32].sum(axis=0)}, ["Y", "Z"])


def int_total(waves: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.integers(0, 3, 250).astype(np.int32), "S": np.full(3, -1, np.int32),
                "K": np.full(3, -1, np.int32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        s = np.array([a["X"][b * 100:(b + 1) * 100].sum() for b in range(3)])
        return {"S": s, "K": 2 * s}
    return Case(INT_TOTAL, {"WAVES": waves}, inputs, ref, ["S", "K"])


def dot_stats(bm: int, bn: int, bk: int, waves: int) -> Case:
    m, blocks = bm + 5, 2

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"A": rng.standard_normal((m, bk)).astype(np.float16), "B": rng.standard_normal((bk, bn)).astype(np.float16),
                "R": np.full(m, np.nan, np.float32), "C": np.full(bn, np.nan, np.float32),
                "T": np.full(blocks, np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        s = a["A"].astype(np.float64) @ a["B"].astype(np.float64)
        return {"R": s.max(axis=1), "C": s[:bm].sum(axis=0), "T": np.array([s[:bm].sum(), s[bm:].sum()])}
    return Case(DOT_STATS, {"BM": bm, "BN": bn, "BK": bk, "WAVES": waves}, inputs, ref, ["R", "C", "T"])


def mma_stats(bm: int, bn: int, wm: int, wn: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"A": rng.standard_normal((bm, 16)).astype(np.float16), "B": rng.standard_normal((16, bn)).astype(np.float16),
                "R": np.full(bm, np.nan, np.float32), "C": np.full(bn, np.nan, np.float32),
                "T": np.full(1, np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        s = a["A"].astype(np.float64) @ a["B"].astype(np.float64)
        return {"R": s.max(axis=1), "C": s.sum(axis=0), "T": np.array([s.max(axis=0).sum()])}
    return Case(MMA_STATS, {"BM": bm, "BN": bn, "WM": wm, "WN": wn}, inputs, ref, ["R", "C", "T"])


def cube(bc: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((3, 5, bc)).astype(np.float32), "Y": np.full((3, 5), np.nan, np.float32),
                "Z": np.full((5, bc), np.nan, np.float32), "W": np.full((3, bc), np.nan, np.float32)}

    def ref(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"].astype(np.float64)
        return {"Y": x.sum(axis=2), "Z": x.max(axis=0), "W": x.sum(axis=1)}
    return Case(CUBE, {"BC": bc}, inputs, ref, ["Y", "Z", "W"])


CASES: dict[str, Case] = {
    **{f"softmax-BN{bn}": softmax(bn) for bn in (1, 3, 5, 12, 40, 96, 160, 320, 1000)},
    **{f"layernorm-BM{bm}-BN{bn}": layernorm(bm, bn) for bm, bn in ((1, 2048), (3, 96), (16, 1), (1, 5))},
    **{f"segments-W{w}": segments(w) for w in (1, 2, 4, 8)},
    "segments-BC3": segments(2, bc=3),
    **{f"totals-W{w}-BN{bn}": totals(w, bn, n) for w, bn, n in ((1, 300, 707), (2, 96, 707), (4, 1, 13),
                                                                (8, 1000, 707), (4, 3, 40))},
    **{f"one_row-W{w}-{bm}x{bn}": one_row(w, bm, bn, br, m, n) for w, bm, bn, br, m, n in
       ((4, 16, 40, 64, 37, 50), (1, 1, 1, 3, 5, 7), (2, 5, 96, 1000, 37, 50), (8, 3, 7, 50, 37, 50))},
    **{f"row_stat-{bm}x{bn}-W{w}": row_stat(bm, bn, w) for bm, bn, w in ((16, 5, 2), (3, 24, 1), (64, 48, 8))},
    "pinned": pinned(),
    **{f"int_total-W{w}": int_total(w) for w in (1, 8)},
    **{f"dot_stats-{bm}x{bn}x{bk}-W{w}": dot_stats(bm, bn, bk, w) for bm, bn, bk, w in
       ((64, 64, 32, 4), (16, 48, 16, 2), (5, 7, 3, 2), (128, 32, 16, 8))},
    **{f"cube-BC{bc}": cube(bc) for bc in (6, 64, 512)},
    **{f"mma_stats-{bm}x{bn}-{wm}x{wn}": mma_stats(bm, bn, wm, wn) for bm, bn, wm, wn in ((64, 64, 2, 2), (64, 128, 1, 4))},
}



def run_level(case: Case, level: str, target: str | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The case's outs after one interpretation (asserting that no check failed)."""
    args = case.inputs(np.random.default_rng(seed))
    report = case.program().interpret(level=level, target=target, **args)
    assert report.ok, str(report)
    return {k: args[k] for k in case.outs}


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30))
