"""The layouts pass: where it puts the conversion of a dot operand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.ir import ops
from tiledsl.thread import layout_ir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_dot_operand_converted_through_lds_goes_before_the_other_operands_lds_read() -> None:
    """gfx942 attention with swap=false: P goes through an LDS scratch tile to become the P·V A operand. That trip
    comes before the read of vs, which stays right before the dot (no sync in between: the LLVM
    lowering loads V k-step by k-step only then); the conversion keeps the dot's location."""
    src = (EXAMPLES / "attention.tdsl").read_text().replace("mma(waves=[WAVES, 1])", "mma(waves=[WAVES, 1], swap=false)")
    prog = tiledsl.load(src, params={"D": 128})
    kernel, _ = layout_ir(prog, "gfx942")
    loop = next(op for op in kernel.walk() if isinstance(op, ops.ForOp))
    body = loop.regions[0].ops
    pv = [op for op in body if isinstance(op, ops.DotOp)][1]
    i = body.index(pv)
    names = [op.name for op in body[i - 6:i + 1]]
    assert names == ["sync", "lds_write", "sync", "lds_read", "sync", "lds_read", "dot"]
    read_v, read_p = body[i - 1], body[i - 3]
    assert read_v.operands[0].hint == "vs" and pv.operands[:2] == [read_p.result, read_v.result]
    assert pv.operands[2].owner.name == "mul"          # acc * alpha, its accumulator (dot-acc)
    assert all(op.loc == pv.loc for op in body[i - 6:i - 1])


TRANSPOSE = """\
kernel k(X: f32[N, M], out Y: f32[M, N])
  param BM = 64, BN = 16
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 4 waves
{
  x = X[j*BN : +BN, i*BM : +BM]
  Y[i*BM : +BM, j*BN : +BN] <- x^T
}
"""


TRANSPOSED_STORE = """
kernel dot_t(A: f16[M, K], B: f16[K, N], out C: f32[N, M])
  param BM = 32, BN = 32, BK = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 4 waves
{
  a = A[bm*BM : +BM, 0 : +BK]
  b = B[0 : +BK, bn*BN : +BN]
  c = dot(a, b)
  C[bn*BN : +BN, bm*BM : +BM] <- c^T
}
"""


def test_a_transpose_through_lds_at_the_top_level_goes_after_its_operand() -> None:
    """Found by the program generator: the trip through LDS of a transposed register tile was
    put one op too early (its scratch tile goes into the same block first), before the load
    that defines what it writes, on every target."""
    prog = tiledsl.load(TRANSPOSE)
    kernel, _ = layout_ir(prog, "sm_90")
    body = kernel.body.ops
    load = next(op for op in body if isinstance(op, ops.LoadOp))
    write = next(op for op in body if isinstance(op, ops.LdsWriteOp))
    assert body.index(load) < body.index(write) and write.operands[1] is load.result
    x = np.random.default_rng(0).standard_normal((37, 70)).astype(np.float32)
    for target in ("gfx942", "gfx1100", "sm_90", "sm_90a", "generic"):
        y = np.full((70, 37), np.nan, np.float32)
        assert prog.interpret(level="thread", target=target, X=x, Y=y).ok
        np.testing.assert_array_equal(y, x.T)


SMALL_DOT = """\
kernel k(A: bf16[N, M], B: bf16[N, M], out C: f32[M, N], s: bf16)
  param BM = 16, BN = 16
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 8 waves
{
  C[i*BM : +BM, j*BN : +BN] <- dot(s - A[j*BN : +BN, 0 : +32], abs(B[1 : +32, i*BM : +BM]))
}
"""


def test_a_dot_operand_staged_for_the_fma_fallback_goes_after_its_definition() -> None:
    """Found by the program generator: a 16x16 tile over 8 waves fits no matrix instruction, so
    the dot reads its operands from LDS; staging them at the top level went one op too early,
    before the op that computes the operand (VerifyError 'used before it is defined')."""
    prog = tiledsl.load(SMALL_DOT)
    for target in ("gfx942", "sm_90", "generic"):
        kernel, _ = layout_ir(prog, target)        # verified: no use before its definition
        body = kernel.body.ops
        dot = next(op for op in body if isinstance(op, ops.DotOp))
        for operand in dot.operands[:2]:
            if not isinstance(operand.owner, ops.LdsReadOp):
                continue            # since main's replicated small tiles, a matrix instruction may take it
            write = next(op for op in body if isinstance(op, ops.LdsWriteOp)
                         and op.operands[0] is operand.owner.operands[0])
            assert body.index(write.operands[1].owner) < body.index(write) < body.index(dot)


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"])
def test_a_trip_through_lds_in_the_kernel_body_goes_right_before_its_user(target: str) -> None:
    """The scratch tile of a conversion is allocated at the top of the kernel body; when the
    conversion is in that body too, it still lands right before its user, after the value it
    converts (it used to land one op early: before the dot that makes ``c``)."""
    prog = tiledsl.load(TRANSPOSED_STORE)
    kernel, _ = layout_ir(prog, target)
    body = kernel.body.ops
    names = [op.name for op in body[[op.name for op in body].index("dot"):]]
    assert names == ["dot", "sync", "lds_write", "sync", "lds_read", "transpose", "sync", "store"]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 20)).astype(np.float16), rng.standard_normal((20, 50)).astype(np.float16)
    c = np.full((50, 40), np.nan, np.float32)
    report = prog.interpret(level="thread", target=target, A=a, B=b, C=c)
    assert report.ok, str(report)
    ref = (a.astype(np.float64) @ b.astype(np.float64)).T
    assert np.linalg.norm(c - ref) / np.linalg.norm(ref) < 1e-6


def _annotated(tile: str, layout: str) -> str:
    return f"""
kernel t(A: f16[M, K], B: f16[K, N], out C: f32[M, N])
  grid (1) as (g)
  block 4 waves
{{
  acc = fill(0, f32[{tile}]) @ {layout}
  C[0 : +{tile.split(',')[0]}, 0 : +32] <- acc
}}"""


@pytest.mark.parametrize(("tile", "layout", "target", "fragments"), [
    # 24 rows: neither MFMA tiles them; the error names the multiples each instruction needs
    ("24, 32", "mma(waves=[4,1])", "gfx942",
     ["24 rows is not a multiple of m of mfma_f32_32x32x8_f16 = 32", "a multiple of (32, 32)",
      "or with instr=mfma_f32_16x16x16_f16 a multiple of (16, 16)"]),
    ("20, 32", "mma(waves=[2,2])", "sm_90", ["20 rows is not a multiple of m of mma_m16n8k16_f16 = 16",
                                             "a multiple of (16, 8)"]),
    # the instruction named: no other is offered
    ("16, 32", "mma(waves=[4,1], instr=mfma_f32_32x32x8_f16)", "gfx942",
     ["16 rows is not a multiple of m of mfma_f32_32x32x8_f16 = 32"]),
])
def test_an_annotation_that_cannot_cover_the_tile_is_a_located_error(tile: str, layout: str, target: str,
                                                                      fragments: list[str]) -> None:
    """Waves may replicate data, but a tile must be a whole number of instruction tiles."""
    with pytest.raises(tiledsl.TdslError) as info:
        layout_ir(tiledsl.load(_annotated(tile, layout)), target)
    err = info.value
    assert err.loc is not None and (err.loc.line, err.loc.col) == (6, 9)
    assert err.message.startswith(f"layout {layout[:-1]}")
    for fragment in fragments:
        assert fragment in err.message


def test_an_annotation_smaller_than_its_waves_replicates() -> None:
    """16 rows over mma(waves=[4,1]): every wave holds the whole 16x32 tile (MFMA 16x16x16)."""
    kernel, ctx = layout_ir(tiledsl.load(_annotated("16, 32", "mma(waves=[4,1])")), "gfx942")
    fill = next(op for op in kernel.walk() if isinstance(op, ops.FillOp))
    layout = ctx.bind(fill.result.type.layout, (16, 32), "f32")
    assert "mfma_f32_16x16x16" in str(layout.spec)
    assert (layout.replication() == 4).all()
