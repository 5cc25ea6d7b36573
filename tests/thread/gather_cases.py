"""Kernels steered by values loaded from tensors, with NumPy references: sums over ragged groups
(stores cut at each group's end), loops nested per block with loaded bounds, a row permutation
both ways (gather and scatter), gathers along each kind of dim, a paged KV cache through a block
table, a grouped MoE GEMM and a varlen attention whose grids come from scalar parameters.

Shared by the thread-level tests (``test_gather.py``), the lowered code run on the CPU
(``tests/llvm/test_lower_gather.py``) and the GPU tests (``tests/runtime/test_cuda_gather.py``);
self-contained (no imports of the other test modules) so that each can load it by path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tiledsl

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def _references() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_gather_reference", KERNELS / "gather_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _references()


@dataclass
class Case:
    """A kernel of ``tests/kernels``, its compile-time values, its inputs (out tensors NaN-filled) and
    its NumPy reference; ``outs`` are compared."""

    kernel: str
    params: dict[str, int]
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    outs: list[str] = field(default_factory=list)
    tolerance: float = 1e-5

    def program(self) -> tiledsl.Program:
        return tiledsl.load(KERNELS / f"{self.kernel}.tdsl", params=self.params)

    def reference(self, args: dict[str, Any]) -> dict[str, np.ndarray]:
        return getattr(REF, self.kernel)(**args, **self.params)


def offsets(sizes: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)


def segments(sizes: list[int], waves: int, br: int, cols: int = 93) -> Case:
    off = offsets(sizes)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        g, r = len(sizes), int(off[-1])
        return {"X": rng.standard_normal((r, cols)).astype(np.float32), "Off": off.copy(),
                "S": rng.standard_normal(g).astype(np.float32), "Y": np.full((g, cols), np.nan, np.float32),
                "Z": np.full((r, cols), np.nan, np.float32)}
    return Case("segments_ragged", {"WAVES": waves, "BR": br}, inputs, ["Y", "Z"])


def nested(sizes: list[int], groups_per_block: list[int], br: int) -> Case:
    off, gs = offsets(sizes), offsets(groups_per_block)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal(int(off[-1])).astype(np.float32), "Off": off.copy(), "Gs": gs.copy(),
                "T": np.full(len(groups_per_block), np.nan, np.float32)}
    return Case("groups_nested", {"BR": br}, inputs, ["T"])


def permute(t: int, d: int, bm: int, waves: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((t, d)).astype(np.float32), "Perm": rng.permutation(t).astype(np.int32),
                "Y": np.full((t, d), np.nan, np.float32), "W": np.full((t, d), np.nan, np.float32)}
    return Case("permute", {"D": d, "BM": bm, "WAVES": waves}, inputs, ["Y", "W"])


def gather_shapes(m: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((9, 7)).astype(np.float32),
                "Z3": rng.standard_normal((10, 5, 6)).astype(np.float32),
                "V": rng.standard_normal(11).astype(np.float32), "Idx": rng.integers(-2, 12, m).astype(np.int32),
                "A": np.full((m, 7), np.nan, np.float32), "B": np.full((9, m), np.nan, np.float32),
                "D3": np.full((m, 5, 6), np.nan, np.float32), "E": np.full(m, np.nan, np.float32)}
    return Case("gather_shapes", {"R": 9, "C": 7, "Q": 5, "S": 6}, inputs, ["A", "B", "D3", "E"])


def paged(lens: list[int], page: int, bn: int, stages: int, d: int = 32, heads: int = 3, pages: int = 11) -> Case:
    maxp = -(-max(lens) // page) + 1

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        table = np.stack([rng.permutation(pages)[:maxp] for _ in lens]).astype(np.int32)
        b = len(lens)
        return {"K": rng.standard_normal((pages, page, heads, d)).astype(np.float16), "BT": table,
                "Lens": np.array(lens, np.int32), "O": np.full((b, heads, d), np.nan, np.float32),
                "O2": np.full((b, heads, d), np.nan, np.float32)}
    return Case("paged_sum", {"PAGE": page, "D": d, "BN": bn, "STAGES": stages}, inputs, ["O", "O2"])


def moe(tokens: int, experts: int, k: int, n: int, bm: int, waves: int) -> Case:
    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        expert = rng.integers(0, experts, tokens)
        expert[expert == 1] = 0                    # an expert without tokens
        counts = np.bincount(expert, minlength=experts)
        return {"X": rng.standard_normal((tokens, k)).astype(np.float16),
                "W": rng.standard_normal((experts, k, n)).astype(np.float16),
                "Off": offsets(list(counts)), "Perm": np.argsort(expert, kind="stable").astype(np.int32),
                "Y": np.full((tokens, n), np.nan, np.float32), "max_rows": int(counts.max())}
    return Case("moe_gemm", {"K": k, "N": n, "BM": bm, "WAVES": waves}, inputs, ["Y"])


def varlen(lens: list[int], d: int, causal: int, bm: int = 64, bn: int = 32, waves: int = 4, heads: int = 2) -> Case:
    cu = offsets(lens)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        t = int(cu[-1])
        q, k, v = (rng.standard_normal((t, heads, d)).astype(np.float16) for _ in range(3))
        return {"Q": q, "K": k, "V": v, "Cu": cu.copy(), "O": np.full((t, heads, d), np.nan, np.float16),
                "scale": d ** -0.5, "max_seqlen": max(lens)}
    return Case("varlen_attention", {"D": d, "CAUSAL": causal, "BM": bm, "BN": bn, "WAVES": waves}, inputs, ["O"],
                tolerance=2e-3)


CASES: dict[str, Case] = {
    **{f"segments-W{w}-BR{br}": segments([5, 0, 25, 19, 1], w, br) for w, br in ((1, 16), (2, 5), (4, 32))},
    "segments-long": segments([3, 70, 0, 0, 8], 2, 16, cols=40),
    **{f"nested-BR{br}": nested([5, 0, 25, 19, 1, 2, 7], [3, 0, 1, 3], br) for br in (8, 3)},
    **{f"permute-{t}x{d}-BM{bm}-W{w}": permute(t, d, bm, w) for t, d, bm, w in ((37, 24, 16, 2), (5, 8, 8, 1),
                                                                                 (100, 40, 32, 4))},
    **{f"gather_shapes-M{m}": gather_shapes(m) for m in (21, 3)},
    **{f"paged-P{p}-BN{bn}-S{s}": paged([0, 17, 64, 33], p, bn, s) for p, bn, s in ((16, 32, 2), (8, 16, 1))},
    **{f"moe-BM{bm}-W{w}": moe(77, 5, 32, 48, bm, w) for bm, w in ((32, 4), (16, 1))},
    **{f"varlen-causal{c}": varlen([37, 0, 100, 5], 32, c) for c in (0, 1)},
    "varlen-BM16-W1": varlen([3, 20, 1], 16, 1, bm=16, bn=16, waves=1),
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
