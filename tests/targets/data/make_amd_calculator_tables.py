"""Regenerate ``amd_matrix_calculator.json``: the AMD matrix instructions' lane layouts as AMD's
own Matrix Instruction Calculator prints them, one table per distinct layout.

    git clone https://github.com/ROCm/amd_matrix_instruction_calculator   # needs `pip install tabulate`
    python tests/targets/data/make_amd_calculator_tables.py path/to/matrix_calculator.py

For every (architecture, instruction) below it runs the calculator's ``--matrix-layout --csv`` for
the A, B, C and D matrices (every lane and register slot -> the matrix entry it holds), checks that
C and D agree, and groups the instructions whose layouts are identical. The JSON keeps each
distinct layout once, with the list of instructions it was printed for; the test
``tests/targets/test_amd_calculator_tables.py`` compares tiledsl's lane formulas with it.
Element numbering: a 16-bit operand's slot ``v<g>.[15:0]`` is element ``2g``, ``v<g>.[31:16]`` is
``2g + 1`` (an 8-bit one's ``v<g>.[8j+7:8j]`` element ``4g + j``); an f32 or i32 accumulator's ``v<r>``
is register ``r``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).with_name("amd_matrix_calculator.json")

#: (calculator architecture, calculator instruction, wave size, tiledsl instruction it backs)
INSTRUCTIONS = [
    ("CDNA2", "v_mfma_f32_32x32x8f16", 64, "mfma_f32_32x32x8_f16"),
    ("CDNA2", "v_mfma_f32_16x16x16f16", 64, "mfma_f32_16x16x16_f16"),
    ("CDNA2", "v_mfma_f32_32x32x8bf16_1k", 64, "mfma_f32_32x32x8_bf16"),
    ("CDNA2", "v_mfma_f32_16x16x16bf16_1k", 64, "mfma_f32_16x16x16_bf16"),
    ("CDNA3", "v_mfma_f32_32x32x8_f16", 64, "mfma_f32_32x32x8_f16"),
    ("CDNA3", "v_mfma_f32_16x16x16_f16", 64, "mfma_f32_16x16x16_f16"),
    ("CDNA3", "v_mfma_f32_32x32x8_bf16", 64, "mfma_f32_32x32x8_bf16"),
    ("CDNA3", "v_mfma_f32_16x16x16_bf16", 64, "mfma_f32_16x16x16_bf16"),
    ("RDNA3", "v_wmma_f32_16x16x16_f16", 32, "wmma_f32_16x16x16_f16"),
    ("RDNA3", "v_wmma_f32_16x16x16_bf16", 32, "wmma_f32_16x16x16_bf16"),
    ("CDNA2", "v_mfma_i32_32x32x8i8", 64, "mfma_i32_32x32x8_i8"),
    ("CDNA2", "v_mfma_i32_16x16x16i8", 64, "mfma_i32_16x16x16_i8"),
    ("CDNA3", "v_mfma_i32_32x32x16_i8", 64, "mfma_i32_32x32x16_i8"),
    ("CDNA3", "v_mfma_i32_16x16x32_i8", 64, "mfma_i32_16x16x32_i8"),
    ("RDNA3", "v_wmma_i32_16x16x16_iu8", 32, "wmma_i32_16x16x16_i8"),
    ("RDNA3", "v_wmma_i32_16x16x16_iu8", 32, "wmma_i32_16x16x16_u8"),
]

_ENTRY = re.compile(r"^[ABCD]\[(\d+)\]\[(\d+)\]$")


def layout(calculator: str, arch: str, instr: str, wave: int, matrix: str) -> list[list[int]]:
    """Per lane, the flattened (row, col) of every register slot, in element order."""
    cmd = [sys.executable, calculator, "-a", arch, "-i", instr, f"-{matrix}", "--matrix-layout", "--csv",
           "--wavefront", str(wave)]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in text.splitlines() if re.match(r"^\d+,", ln)]
    table = []
    for lane, line in enumerate(lines):
        cells = line.split(",")
        assert int(cells[0]) == lane, f"{arch} {instr} {matrix}: lanes out of order"
        row: list[int] = []
        for cell in cells[1:]:
            m = _ENTRY.match(cell)
            assert m, f"{arch} {instr} {matrix}: unexpected cell {cell!r}"
            row += [int(m.group(1)), int(m.group(2))]
        table.append(row)
    assert len(table) == wave, f"{arch} {instr} {matrix}: {len(table)} lanes"
    return table


def main(calculator: str) -> None:
    groups: dict[str, dict] = {}
    for arch, instr, wave, ours in INSTRUCTIONS:
        a, b, c, d = (layout(calculator, arch, instr, wave, x) for x in "ABCD")
        assert c == d, f"{arch} {instr}: C and D layouts differ"
        key = json.dumps([a, b, c])
        group = groups.setdefault(key, {"printed_for": [], "tiledsl": [], "A": a, "B": b, "C": c})
        group["printed_for"].append(f"{arch} {instr}")
        if ours not in group["tiledsl"]:
            group["tiledsl"].append(ours)
    rev = subprocess.run(["git", "-C", str(Path(calculator).parent), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip() or "unknown"
    doc = {
        "source": f"ROCm/amd_matrix_instruction_calculator {rev}, matrix_calculator.py --matrix-layout --csv",
        "layouts": list(groups.values()),
    }
    # One lane per line: small diffs when a layout changes, readable by eye.
    text = json.dumps(doc, indent=1)
    text = re.sub(r"\[\s+((?:-?\d+,\s*)*-?\d+)\s+\]", lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]", text)
    OUT.write_text(text + "\n")
    print(f"wrote {OUT}: {len(groups)} distinct layouts for {len(INSTRUCTIONS)} instructions")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
