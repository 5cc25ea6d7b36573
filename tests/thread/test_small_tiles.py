"""Tiles smaller than the block's waves of matrix-instruction tiles: attention with BM=16 or 32
over 4 waves, and a grouped-query decode kernel whose 16x32 scores take mma(waves=[1,4]). The
waves replicate data (``tiledsl.layout.mma``); every level gives the NumPy reference's answer at
lengths that are not multiples of the tiles, and every target compiles them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import tiledsl

ROOT = Path(__file__).resolve().parents[2]
ATTENTION = ROOT / "examples" / "attention.tdsl"
DECODE = ROOT / "tests" / "kernels" / "decode_attention.tdsl"
THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES_REF = _load(ROOT / "examples" / "reference.py", "tdsl_examples_reference_small")
KERNELS_REF = _load(ROOT / "tests" / "kernels" / "reference.py", "tdsl_test_kernels_reference_small")


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


def _both_levels(prog: tiledsl.Program, target: str, args: dict) -> tuple[np.ndarray, np.ndarray]:
    """(block level O, thread level O) for the same inputs; both runs report no error."""
    outs = []
    for level in ("block", "thread"):
        o = np.full_like(args["O"], np.nan)
        kwargs = {**args, "O": o}
        report = prog.interpret(level=level, target=target if level == "thread" else None, **kwargs)
        assert report.ok, str(report)
        outs.append(o)
    return outs[0], outs[1]


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize(("bm", "causal"), [(16, 1), (32, 0)])
def test_attention_with_fewer_rows_than_the_waves_tiles(target: str, bm: int, causal: int) -> None:
    rng = np.random.default_rng(bm + causal)
    q, k, v = (rng.standard_normal((1, 2, 77, 64)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(ATTENTION, params={"D": 64, "BM": bm, "BN": 32, "CAUSAL": causal})
    args = {"Q": q, "K": k, "V": v, "O": np.zeros_like(q), "L": np.zeros(q.shape[:3], np.float32), "scale": 0.125}
    block, thread = _both_levels(prog, target, args)
    ref = EXAMPLES_REF.attention(q, k, v, 0.125, CAUSAL=causal)["O"]
    assert _rel(block, ref) < 2e-3
    assert _rel(thread, ref) < 2e-3
    assert _rel(thread, block.astype(np.float64)) < 2e-3


@pytest.mark.parametrize("target", THREAD_TARGETS)
def test_decode_attention(target: str) -> None:
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 3, 16, 64)).astype(np.float16)
    k, v = (rng.standard_normal((2, 3, 77, 64)).astype(np.float16) for _ in range(2))
    prog = tiledsl.load(DECODE, params={"D": 64})
    args = {"Q": q, "K": k, "V": v, "O": np.zeros_like(q), "scale": 0.125}
    block, thread = _both_levels(prog, target, args)
    ref = KERNELS_REF.decode_attention(q, k, v, 0.125)
    assert _rel(block, ref) < 2e-3
    assert _rel(thread, ref) < 2e-3


def test_decode_scores_on_16x16_instruction_tiles_with_replicated_waves() -> None:
    """The 16x32 score tile on gfx942: two 16x16 MFMA tiles for four waves, so two waves hold
    each part. mma(waves=[1,4]), which layout assignment once picked for it and then refused,
    binds too: waves 2 and 3 hold what waves 0 and 1 hold."""
    from tiledsl.ir import ops
    from tiledsl.layout import MmaSpec, bind
    from tiledsl.targets import get_target
    from tiledsl.thread import layout_ir
    kernel, ctx = layout_ir(tiledsl.load(DECODE, params={"D": 64}), "gfx942")
    qk = next(op for op in kernel.walk() if isinstance(op, ops.DotOp))
    layout = ctx.bind(qk.result.type.layout, (16, 32), "f32")
    assert layout.instr is not None and layout.instr.name == "mfma_f32_16x16x16_f16"
    assert (layout.replication() == 2).all()
    wide = bind(MmaSpec((1, 4), instr="mfma_f32_16x16x16_f16", swap=True), (16, 32), 4, get_target("gfx942"))
    assert list(wide.first_wave_alike()) == [0, 1, 0, 1]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("kernel", ["attention BM=16", "attention BM=32", "decode"])
def test_small_tiles_compile(target: str, kernel: str) -> None:
    if kernel == "decode":
        prog = tiledsl.load(DECODE, params={"D": 64})
    else:
        prog = tiledsl.load(ATTENTION, params={"D": 64, "BM": int(kernel.split("=")[1])})
    art = prog.compile(target=target)
    assert art.binary


@pytest.mark.parametrize(("bm", "waves", "wgmma"), [
    (64, 4, True),      # one warpgroup on four 16-row slabs: wgmma, as before
    (64, 8, True),      # two warpgroups, each on the whole 64 rows (waves 4-7 replicate 0-3)
    (32, 4, False),     # the warps of one warpgroup hold rows 0, 16, 0, 16: not an m64 tile
    (16, 4, False),
    (32, 8, False),
])
def test_wgmma_only_where_each_warpgroup_holds_four_row_slabs(bm: int, waves: int, wgmma: bool) -> None:
    """sm_90a: wgmma.m64 needs warp q of a warpgroup on rows 16q..16q+15 of a 64-row tile; a
    layout whose warps replicate rows inside a warpgroup stays mma.sync."""
    art = tiledsl.load(ATTENTION, params={"D": 64, "BM": bm, "WAVES": waves}).compile(target="sm_90a")
    assert ("wgmma.mma_async" in art.asm) == wgmma
    assert ("mma.sync" in art.asm) != wgmma


def test_a_row_max_whose_result_layout_comes_from_a_wider_tile() -> None:
    """gfx942 without MFMA, one wave, 16x16 scores beside a 16x32 accumulator: the row max
    takes its layout from m, which the accumulator's swapped FMA layout gives, and that layout
    cannot lay out 16 columns; the reduction then converts its result (it failed in layout
    assignment once the accumulator could take an mma layout)."""
    prog = tiledsl.load(DECODE, params={"D": 32, "BN": 16, "WAVES": 1})
    rng = np.random.default_rng(8)
    q = rng.standard_normal((1, 2, 16, 32)).astype(np.float16)
    k, v = (rng.standard_normal((1, 2, 45, 32)).astype(np.float16) for _ in range(2))
    o = np.full_like(q, np.nan)
    report = prog.interpret(level="thread", target="gfx942-fma", Q=q, K=k, V=v, O=o,
                            scale=0.125)
    assert report.ok, str(report)
    assert _rel(o, KERNELS_REF.decode_attention(q, k, v, 0.125)) < 2e-3
    assert prog.compile(target="gfx942", matrix=False).binary
