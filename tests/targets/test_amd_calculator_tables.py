"""tiledsl's MFMA and WMMA lane formulas against AMD's Matrix Instruction Calculator, exhaustively.

``data/amd_matrix_calculator.json`` holds, for every lane and register slot of each instruction,
the matrix entry AMD's own tool says it holds (``data/make_amd_calculator_tables.py`` regenerates
it). Nothing here comes from tiledsl or from the hand-written formulas of ``test_lane_layouts``: a
wrong formula in ``tiledsl.targets.matrix`` fails here slot by slot. See
docs/targets/matrix-layouts.md §1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tiledsl.targets import TARGETS, MatrixInstr

TABLES = json.loads((Path(__file__).parent / "data" / "amd_matrix_calculator.json").read_text())["layouts"]
AMD_INSTRS: dict[str, MatrixInstr] = {
    i.name: i for t in TARGETS.values() if t.vendor == "amd" for i in t.matrix_instrs
}


def _table(instr_name: str) -> dict:
    (table,) = [t for t in TABLES if instr_name in t["tiledsl"]]
    return table


def test_every_amd_matrix_instruction_has_a_calculator_table() -> None:
    assert sorted(AMD_INSTRS) == sorted(n for t in TABLES for n in t["tiledsl"])


@pytest.mark.parametrize("name", sorted(AMD_INSTRS))
@pytest.mark.parametrize("operand", ["A", "B", "C"])
def test_lane_map_equals_the_calculator(name: str, operand: str) -> None:
    instr = AMD_INSTRS[name]
    ours = {"A": instr.a_map, "B": instr.b_map, "C": instr.c_map}[operand]()
    theirs = np.asarray(_table(name)[operand], dtype=np.int64).reshape(ours.shape)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(("name", "printed_for"), [
    # One layout for CDNA2 and CDNA3, f16 and bf16 (the .1k forms on CDNA2) and CDNA2's i8 forms
    # (4 bytes a lane, as 4 halves): tiledsl keeps one formula per shape, and its gfx90a and gfx942
    # targets share the instructions. CDNA3's i8 forms (8 bytes a lane) have layouts of their own.
    ("mfma_f32_32x32x8_f16", {"CDNA2 v_mfma_f32_32x32x8f16", "CDNA2 v_mfma_f32_32x32x8bf16_1k",
                              "CDNA3 v_mfma_f32_32x32x8_f16", "CDNA3 v_mfma_f32_32x32x8_bf16",
                              "CDNA2 v_mfma_i32_32x32x8i8"}),
    ("mfma_f32_16x16x16_bf16", {"CDNA2 v_mfma_f32_16x16x16f16", "CDNA2 v_mfma_f32_16x16x16bf16_1k",
                                "CDNA3 v_mfma_f32_16x16x16_f16", "CDNA3 v_mfma_f32_16x16x16_bf16",
                                "CDNA2 v_mfma_i32_16x16x16i8"}),
    ("wmma_f32_16x16x16_f16", {"RDNA3 v_wmma_f32_16x16x16_f16", "RDNA3 v_wmma_f32_16x16x16_bf16",
                               "RDNA3 v_wmma_i32_16x16x16_iu8"}),
])
def test_layouts_shared_across_architectures_and_dtypes(name: str, printed_for: set[str]) -> None:
    assert set(_table(name)["printed_for"]) == printed_for
