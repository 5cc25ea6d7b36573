"""What the pictures show: owner arrays on hand-checked layouts and traces, and their text forms."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import tiledsl
from tiledsl.layout import Layout, bind, parse_layout_spec
from tiledsl.targets import get_target
from tiledsl.viz.palette import MAX_DISTINCT
from tiledsl.viz.pictures import (
    LdsAccesses,
    Picture,
    lds_accesses_picture,
    lds_picture,
    overview_picture,
    tensor_access_picture,
    text_summary,
    value_picture,
)
from tiledsl.viz.render import MAX_HEIGHT, MAX_WIDTH, layout
from tiledsl.viz.scene import Text
from tiledsl.viz.trace import AccessTrace


def _layout(spec: str, shape: tuple[int, ...], waves: int, target: str = "gfx942") -> Layout:
    return bind(parse_layout_spec(spec), shape, waves, get_target(target))


def _texts(picture: Picture) -> list[str]:
    return [i.text for i in layout(picture.figure).items if isinstance(i, Text)]


def test_blocked_16x16_owners() -> None:
    """blocked on f32: 4-element vectors along a row, 4 lanes per row, 8 rows per wave32."""
    pic = value_picture(_layout("blocked", (16, 16), 2, "gfx1100"), "x")
    i, j = np.indices((16, 16))
    assert np.array_equal(pic.figure.panels[0].owners, 4 * i + j // 4)  # thread = wave * 32 + lane
    assert np.array_equal(pic.figure.panels[0].outline, i // 8)        # wave borders after row 8
    # (9, 15): wave 9 // 8 = 1, lane (9 % 8) * 4 + 15 // 4 = 7, register 15 % 4 = 3
    assert pic.figure.panels[0].labels(9, 15) == "w1 l7\nr3"  # type: ignore[misc]
    texts = _texts(pic)
    assert "w0 l1" in texts and "r3" in texts  # cells are large enough for labels


def test_mfma_32x32x8_accumulator_owners() -> None:
    """docs/targets/matrix-layouts.md §2.1: C[i][j] sits in lane j + 32 * ((i / 4) % 2),
    register 4 * (i / 8) + i % 4."""
    lay = _layout("mma(waves=[1,1], instr=mfma_f32_32x32x8_f16)", (32, 32), 1)
    pic = value_picture(lay, "acc")
    i, j = np.indices((32, 32))
    assert np.array_equal(pic.figure.panels[0].owners, j + 32 * ((i // 4) % 2))
    assert pic.figure.panels[0].labels(13, 5) == f"w0 l{5 + 32}\nr{4 * 1 + 1}"  # type: ignore[misc]
    assert "16 registers per thread" in pic.figure.notes[0]
    assert "each element held by 1 thread" in pic.text


def test_layout_text_lists_each_wave() -> None:
    text = text_summary(value_picture(_layout("mma(waves=[4,1])", (128, 64), 4), "acc"))
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line[:4].strip().isdigit()}
    assert rows["0"][1:3] == ["0-31", "0-63"] and rows["3"][1] == "96-127"
    assert rows["2"][3:] == ["2048", "64", "32"]  # elements, lanes, registers per thread


def test_replicated_slice_says_how_many_threads_hold_each_element(tmp_path: Path) -> None:
    lay = _layout("slice(1, mma(waves=[4,1]))", (128,), 4)
    pic = value_picture(lay, "m", tmp_path / "m.png")
    assert "each element held by 32 threads" in pic.figure.notes[0]
    assert pic.figure.panels[0].owners.shape == (128, 1)  # a per-row value is drawn upright
    with Image.open(tmp_path / "m.png") as im:
        assert im.width <= MAX_WIDTH and im.height <= MAX_HEIGHT


def test_1d_values_wrap() -> None:
    pic = value_picture(_layout("blocked", (200,), 1), "v")
    panel = pic.figure.panels[0]
    assert panel.owners.shape == (4, 64)
    assert panel.row_index is not None and panel.row_index.tolist() == [0, 64, 128, 192]
    assert (panel.owners[3, 8:] == -2).all()  # padding past the end


def test_gemm_output_picture(gemm_trace: AccessTrace, tmp_path: Path) -> None:
    pic = tensor_access_picture(gemm_trace, "C", "write", tmp_path / "c.png")
    owners = pic.figure.panels[0].owners
    assert sorted(np.unique(owners).tolist()) == [0, 1, 2, 3]
    assert owners[0, 0] != owners[0, 64] != owners[64, 64] != owners[64, 0]
    assert pic.figure.panels[0].grid == (64, 64)
    texts = _texts(pic)
    assert "never written: 0 elements" in texts and "block 3 (bm=1, bn=1)" in texts
    assert "never written: 0 of 16384; written more than once: 0" in pic.text
    assert "[64:128, 64:128]" in pic.text
    with Image.open(tmp_path / "c.png") as im:
        assert im.width <= MAX_WIDTH and im.height <= MAX_HEIGHT


def test_double_writes_are_marked(overlap_trace: AccessTrace, tmp_path: Path) -> None:
    pic = tensor_access_picture(overlap_trace, "Y", "write", tmp_path / "y.svg")
    panel = pic.figure.panels[0]
    assert panel.marks is not None and panel.marks[:, 0].tolist() == [False] * 8 + [True] * 8 + [False] * 16
    assert panel.labels is not None and panel.labels(8, 0) == "b0\nb1"
    assert "never written: 64 of 256; written more than once: 64" in pic.text
    assert "[8:24, 0:8]" in pic.text
    texts = [t.text for t in ET.parse(tmp_path / "y.svg").getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "written 2+ times: 64 elements (red)" in texts


def test_rank_4_tensor_fixes_leading_indices() -> None:
    trace = AccessTrace({"O": (1, 2, 4, 4)}, (2,), ("h",))
    op = SimpleNamespace(attrs={"extents": [0, 0, 4, 4]}, loc=None)
    flat = np.arange(32).reshape(2, 4, 4)  # block b writes O[0, b]
    trace(op, "write", "O", flat, np.ones_like(flat, dtype=bool), [np.array([0, 1])])
    pic = tensor_access_picture(trace, "O", "write", fixed=(0, 1))
    assert (pic.figure.panels[0].owners == 1).all()
    assert pic.figure.panels[0].title == "O[0, 1, :, :] of 1x2x4x4"
    with pytest.raises(ValueError, match="outside 0..1"):
        tensor_access_picture(trace, "O", "write", fixed=(0, 2))


def test_many_blocks_get_a_compact_legend() -> None:
    trace = AccessTrace({"Y": (200, 4)}, (200,), ("bm",))
    op = SimpleNamespace(attrs={"extents": [1, 4]}, loc=None)
    flat = np.arange(800).reshape(200, 1, 4)
    trace(op, "write", "Y", flat, np.ones_like(flat, dtype=bool), [np.arange(200)])
    texts = _texts(tensor_access_picture(trace, "Y", "write"))
    assert "blocks 0-63" in texts and "blocks 192-199" in texts
    assert f"colours repeat every {MAX_DISTINCT} blocks" in texts


def test_lds_picture_from_block_trace(gemm_trace: AccessTrace, tmp_path: Path) -> None:
    pic = lds_picture(gemm_trace, "b_s", tmp_path / "b.png", interval=2)
    assert [p.title for p in pic.figure.panels] == ["interval 2: read by"]
    assert "lds_read b_s" in pic.text and "2048" in pic.text
    with pytest.raises(ValueError, match="intervals with accesses: 1-4"):
        lds_picture(gemm_trace, "b_s", interval=7)


def test_lds_picture_from_thread_owners(tmp_path: Path) -> None:
    """The thread interpreter's API: per-element owner threads, with a conflict marked."""
    lay = _layout("blocked", (16, 16), 2, "gfx1100")
    wave, lane, _ = lay.owner_of()
    writer = np.asarray(wave) * 32 + np.asarray(lane)
    reader = writer.T.copy()
    conflicts = np.zeros((16, 16), dtype=bool)
    conflicts[3, 5] = True
    acc = LdsAccesses("ts", (16, 16), writer, reader, interval=1, threads=(2, 32), conflicts=conflicts)
    pic = lds_accesses_picture([acc], tmp_path / "lds.png")
    assert [p.title for p in pic.figure.panels] == ["interval 1: written by", "interval 1: read by"]
    assert pic.figure.panels[0].marks is not None and pic.figure.panels[0].marks.sum() == 1
    assert "wave 1 lane 31" in pic.text
    assert "written twice, no barrier between (red)" in _texts(pic)


def test_overview(gemm_trace: AccessTrace, tmp_path: Path) -> None:
    layouts = {"acc": _layout("mma(waves=[2,2])", (64, 64), 4), "acc_1": _layout("mma(waves=[2,2])", (64, 64), 4)}
    pic = overview_picture(None, gemm_trace, tmp_path / "ov.svg", layouts=layouts)
    assert [p.title for p in pic.figure.panels] == ["C: block tiles", "acc: thread tile"]  # one copy of acc
    assert "never written: 0 of 16384" in pic.text and "acc: f32[64x64]" in pic.text
    root = ET.parse(tmp_path / "ov.svg").getroot()
    assert int(root.get("width", "0")) <= MAX_WIDTH


def test_overview_from_a_kernel_op(gemm_trace: AccessTrace, examples: Path) -> None:
    kernel = tiledsl.load(examples / "gemm.tdsl").lowered()
    pic = overview_picture(kernel, gemm_trace)
    assert pic.figure.title.startswith("gemm: output tiles by block (grid 2 x 2)")
    assert [p.title for p in pic.figure.panels] == ["C: block tiles"]
