"""AccessTrace: first block, count, boxes and LDS intervals, from block-level runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tiledsl
from tiledsl.viz.trace import AccessTrace, record_block_level


def test_gemm_output_tiles_are_the_four_blocks(gemm_trace: AccessTrace) -> None:
    assert gemm_trace.grid == (2, 2) and gemm_trace.grid_names == ("bm", "bn")
    owner = gemm_trace.owner("C", "write")
    # block id = bm + 2 * bn (grid axis 0 fastest)
    expected = np.block([[np.full((64, 64), 0), np.full((64, 64), 2)],
                         [np.full((64, 64), 1), np.full((64, 64), 3)]])
    assert np.array_equal(owner, expected)
    assert (gemm_trace.count("C", "write") == 1).all()
    assert gemm_trace.tiles[("C", "write")] == (64, 64)
    lo, hi, n = gemm_trace.boxes("C", "write")
    assert lo[3].tolist() == [64, 64] and hi[3].tolist() == [127, 127] and n.tolist() == [4096] * 4


def test_gemm_reads_are_shared_between_blocks(gemm_trace: AccessTrace) -> None:
    # A's rows bm*64.. are read by blocks (bm, 0) and (bm, 1): first block bm, last bm + 2
    assert np.array_equal(gemm_trace.owner("A", "read")[:, 0], np.repeat([0, 1], 64))
    assert np.array_equal(gemm_trace.last("A", "read")[:, 0], np.repeat([2, 3], 64))
    assert (gemm_trace.count("A", "read") == 2).all()


def test_lds_events_follow_the_barriers(gemm_trace: AccessTrace) -> None:
    # for k { sync; a_s <- A; b_s <- B; sync; dot(a_s, b_s) } with K = 64, BK = 32: two iterations
    a_s = [(e.kind, e.interval) for e in gemm_trace.lds_events if e.buffer == "a_s"]
    assert a_s == [("lds_write", 1), ("lds_read", 2), ("lds_write", 3), ("lds_read", 4)]
    shapes = {"a_s": (64, 32), "b_s": (32, 64)}
    assert all(e.elements.shape == shapes[e.buffer] and e.elements.all() for e in gemm_trace.lds_events)
    labels = {e.op_label for e in gemm_trace.lds_events}
    assert any(label.startswith("copy A -> a_s") for label in labels)


def test_holes_and_double_writes(overlap_trace: AccessTrace) -> None:
    count = overlap_trace.count("Y", "write")[:, 0]
    assert count.tolist() == [1] * 8 + [2] * 8 + [1] * 8 + [0] * 8
    assert overlap_trace.owner("Y", "write")[:, 0].tolist() == [0] * 16 + [1] * 8 + [-1] * 8
    assert overlap_trace.last("Y", "write")[8, 0] == 1
    assert overlap_trace.report is not None
    kinds = {e.kind for e in overlap_trace.report.errors}
    assert kinds == {"output-hole", "output-double-write"}


def test_record_leaves_the_out_array_alone(examples: Path) -> None:
    prog = tiledsl.load(examples / "softmax.tdsl")
    y = np.full((20, 40), 7.0, dtype=np.float32)
    trace = record_block_level(prog, {"X": np.zeros((20, 40), np.float32), "Y": y})
    assert (y == 7.0).all()
    assert trace.grid == (2,)
    assert (trace.count("Y", "write") == 1).all()
    assert trace.block_text(1) == "bm=1"
