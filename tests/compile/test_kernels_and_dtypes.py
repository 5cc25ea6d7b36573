"""Native code for a file of several kernels (each its own artifact and symbol) and for the
attention example at T=bf16 (its dtype parameter) on every native target; T=f16 given is the
default, byte for byte."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import tiledsl

ROOT = Path(__file__).resolve().parents[2]
ATTENTION = ROOT / "examples" / "attention.tdsl"
SPLIT = ROOT / "tests" / "frontend" / "programs" / "split_rowsum.tdsl"
NATIVE = ["gfx90a", "gfx942", "gfx1100", "sm_80", "sm_90", "sm_90a"]
HAVE_LLD = any(shutil.which(n) for n in ("ld.lld", "ld.lld-19", "ld.lld-20", "ld.lld-18"))


def _symbols(art: tiledsl.compile.Artifact) -> list[str]:
    """The kernel symbols the assembly defines (AMDGPU ``name:``, PTX ``.entry name``)."""
    pattern = r"^\s*\.visible \.entry (\w+)\(" if not art.is_amd else r"^(\w+):"
    return re.findall(pattern, art.asm, re.MULTILINE)


@pytest.mark.parametrize("target", NATIVE)
def test_each_kernel_of_a_file_compiles_to_its_own_symbol(target: str) -> None:
    mod = tiledsl.load(SPLIT, params={"T": "bf16"})
    arts = {name: prog.compile(target=target) for name, prog in mod.kernels.items()}
    for name, art in arts.items():
        assert art.name == name and art.meta["kernel"] == name
        assert _symbols(art) == [name]
    assert [a["name"] for a in arts["partial"].meta["args"]] == ["X", "P", "M", "N", "S"]
    assert [a["dtype"] for a in arts["combine"].meta["args"] if a["kind"] == "tensor"] == ["f32", "bf16"]
    if arts["partial"].is_amd and HAVE_LLD:
        for name, art in arts.items():
            assert art.compiled.metadata()["amdhsa.kernels"][0][".name"] == name


# The matrix instruction each target's bf16 attention must use (the f16 one's bf16 twin).
BF16_MATRIX = {"gfx90a": r"v_mfma_f32_(32x32x8|16x16x16)bf16_1k",
               "gfx942": r"v_mfma_f32_(32x32x8|16x16x16)_bf16",
               "gfx1100": r"v_wmma_f32_16x16x16_bf16",
               "sm_80": r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16",
               "sm_90": r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16",
               "sm_90a": r"wgmma\.mma_async\.sync\.aligned\.m64n64k16\.f32\.bf16\.bf16"}


@pytest.mark.parametrize("target", NATIVE)
def test_attention_bf16_compiles_to_bf16_matrix_instructions(target: str) -> None:
    # BM=64 with 4 waves: the tile configuration that is wgmma on sm_90a.
    params = {"D": 64, "T": "bf16", "BM": 64, "BN": 64, "WAVES": 4}
    art = tiledsl.load(ATTENTION, params=params).compile(target=target)
    assert re.search(BF16_MATRIX[target], art.asm)
    assert not re.search(r"f16\.f16|_f16\b|x8f16|\.f16x2", art.asm.replace("bf16", ""))
    assert [a["dtype"] for a in art.meta["args"] if a["kind"] == "tensor"] == ["bf16"] * 4 + ["f32"]   # O, then L
    if not art.is_amd or HAVE_LLD:
        assert len(art.binary) > 0


@pytest.mark.parametrize("target", ["gfx942", "sm_90"])
def test_t_f16_given_is_the_default_byte_for_byte(target: str) -> None:
    default = tiledsl.load(ATTENTION, params={"D": 64}).compile(target=target)
    given = tiledsl.load(ATTENTION, params={"D": 64, "T": "f16"}).compile(target=target)
    assert given.asm == default.asm
    if not default.is_amd or HAVE_LLD:
        assert given.binary == default.binary
