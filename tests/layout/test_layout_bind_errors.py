"""User mistakes in binding a layout: each raises LayoutError with a message that says what to fix."""

from __future__ import annotations

import pytest

from tiledsl.layout import (
    BlockedSpec,
    DotOperandSpec,
    LayoutError,
    LayoutSpec,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
    bind,
)
from tiledsl.targets import get_target


@pytest.mark.parametrize(("spec", "shape", "waves", "target", "fragments"), [
    (MmaSpec((4, 1)), (48, 64), 4, "gfx942",
     ["mma(waves=[4,1]) on a 48x64 tile", "48 rows is not a multiple of m of mfma_f32_32x32x8_f16 = 32",
      "multiple of (32, 32)", "pad"]),
    (MmaSpec((2, 2)), (32, 20), 4, "sm_90",
     ["20 columns is not a multiple of n of mma_m16n8k16_f16 = 8", "multiple of (16, 8)"]),
    (MmaSpec((4, 1), swap=True), (128, 16), 4, "gfx942",
     ["16 columns is not a multiple of m of mfma_f32_32x32x8_f16 = 32"]),
    (MmaSpec((4, 1)), (128, 64), 2, "gfx942", ["needs 4x1 = 4 waves but the block has 2"]),
    (MmaSpec((1, 1)), (16, 16, 16), 1, "sm_90", ["2-D tiles, not a rank-3 tile 16x16x16"]),
    (MmaSpec((1, 1), instr="wmma_f32_16x16x16_f16"), (32, 32), 1, "gfx942",
     ["no instruction 'wmma_f32_16x16x16_f16'", "mfma_f32_32x32x8_f16, mfma_f32_16x16x16_f16"]),
    (MmaSpec((1, 1), instr="mma_m16n8k16_f16"), (32, 32), 1, "generic",
     ["target generic has no matrix instructions", "FMA fallback"]),
    (MmaSpec((4, 1)), (24, 32), 4, "generic", ["24 rows is not a multiple of m of fma_f32_16x16x1 = 16"]),
    (DotOperandSpec(MmaSpec((4, 1)), 0), (128, 20), 4, "gfx90a",
     ["20 columns is not a multiple of the k of mfma_f32_32x32x8_f16 = 8"]),
    (DotOperandSpec(MmaSpec((2, 2)), 1), (16, 12), 4, "sm_80",
     ["12 columns is not a multiple of n of mma_m16n8k16_f16 = 8"]),
    (BlockedSpec((1, 8)), (64,), 4, "gfx942", ["rank-2 tiles", "rank 1"]),
    (BlockedSpec(waves=(2, 1)), (64, 64), 4, "gfx942", ["asks for 2 waves but the block has 4"]),
    (BlockedSpec(), (), 1, "gfx942", ["cannot lay out a scalar; use replicated"]),
    (SliceSpec(BlockedSpec(), 1), (64,), 4, "gfx942", ["needs the parent's extent", "size=N"]),
    (SliceSpec(MmaSpec((4, 1)), 2), (128,), 4, "gfx942", ["dim 2 is out of range for a rank-2 parent"]),
    (SliceSpec(MmaSpec((4, 1)), 1), (48,), 4, "gfx942", ["48 rows is not a multiple of"]),
    (ReplicatedSpec(), (0, 4), 1, "gfx942", ["positive integers"]),
    (ReplicatedSpec(), (4,), 32, "gfx942", ["32 waves of 64 lanes does not fit on gfx942", "1024 threads"]),
])
def test_bind_error_messages(spec: LayoutSpec, shape: tuple[int, ...], waves: int, target: str,
                             fragments: list[str]) -> None:
    with pytest.raises(LayoutError) as info:
        bind(spec, shape, waves, get_target(target))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_dtype() -> None:
    with pytest.raises(LayoutError, match="unknown element type 'f64'"):
        bind(BlockedSpec(), (8, 8), 1, get_target("sm_90"), "f64")


def test_unknown_spec_kind() -> None:
    class Striped(LayoutSpec):
        kind = "striped"

    with pytest.raises(LayoutError, match="bind is not implemented for Striped"):
        bind(Striped(), (8,), 1, get_target("sm_90"))


def test_error_suggests_an_instruction_that_fits() -> None:
    with pytest.raises(LayoutError) as info:
        bind(MmaSpec((4, 1)), (48, 64), 4, get_target("gfx942"))
    assert str(info.value).endswith("or choose the instruction: mma(waves=[4,1], instr=mfma_f32_16x16x16_f16)")
    # no hint where no instruction fits (16x16x16 needs K to be a multiple of 16)
    with pytest.raises(LayoutError) as info:
        bind(DotOperandSpec(MmaSpec((4, 1)), 0), (48, 8), 4, get_target("gfx942"), "f16")
    assert "choose the instruction" not in str(info.value)
    # no hint when the spec names its instruction
    with pytest.raises(LayoutError) as info:
        bind(MmaSpec((4, 1), instr="mfma_f32_32x32x8_f16"), (48, 64), 4, get_target("gfx942"))
    assert "choose the instruction" not in str(info.value)
