"""ldmatrix planning: the instructions found for an LDS read give every lane exactly the elements
the read's offsets name, by a model of ldmatrix written from the PTX ISA (lane 8q+i supplies row i
of tile q; per tile a lane gets row lane/4, columns 2(lane%4)+{0,1}, or with .trans column
lane/4, rows 2(lane%4)+{0,1}); and the sm_90 attention reads all become ldmatrix."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lower_testing import lower

from tiledsl.llvm.ldmatrix import plan


def model(groups, threads: int, lds: np.ndarray, n: int) -> np.ndarray:
    """What each thread's n registers hold after the planned ldmatrix instructions, reading the
    16-bit words of ``lds`` (indexed by byte offset // 2)."""
    out = np.full((threads, n), -1, dtype=np.int64)
    for g in groups:
        for w in range(threads // 32):
            addr = g.addresses[32 * w:32 * w + 32]
            for q, pair in enumerate(g.pairs):
                rows = addr[8 * q:8 * q + 8]                       # lane 8q+i gives row i of tile q
                tile = np.stack([lds[(r + 2 * np.arange(8)) // 2] for r in rows])     # [8 rows, 8 cols]
                for lane in range(32):
                    if g.trans:
                        got = tile[2 * (lane % 4):2 * (lane % 4) + 2, lane // 4]
                    else:
                        got = tile[lane // 4, 2 * (lane % 4):2 * (lane % 4) + 2]
                    out[32 * w + lane, 2 * pair:2 * pair + 2] = got
    return out


def fragment_offsets(trans: bool, tiles: int, row_bytes: int, base: int, warps: int) -> np.ndarray:
    """Byte offsets [threads, 2·tiles] of a read shaped like ldmatrix's result: tile q at
    ``base + 16q`` bytes into rows ``row_bytes`` apart (transposed when ``trans``)."""
    lanes = np.arange(32)
    cols = []
    for q in range(tiles):
        for e in range(2):
            if trans:
                r, c = 2 * (lanes % 4) + e, lanes // 4
            else:
                r, c = lanes // 4, 2 * (lanes % 4) + e
            cols.append(base + 16 * q + r * row_bytes + 2 * c)
    one = np.stack(cols, axis=1)
    return np.concatenate([one + 4096 * w for w in range(warps)])


@settings(max_examples=40, deadline=None)
@given(trans=st.booleans(), tiles=st.integers(1, 6), pad=st.sampled_from([0, 16, 32]),
       base=st.sampled_from([0, 64, 1024]), warps=st.integers(1, 2), data=st.data())
def test_planned_ldmatrix_reads_what_the_offsets_name(trans, tiles, pad, base, warps, data) -> None:
    row_bytes = 16 * tiles + pad
    off = fragment_offsets(trans, tiles, row_bytes, base, warps)
    order = data.draw(st.permutations(range(tiles)))          # the order the pairs are first used
    groups = plan(off, 32, order)
    assert groups is not None and sum(g.count for g in groups) == tiles
    assert all(g.trans == trans for g in groups)
    # Groups follow the use order: a group's pairs are consecutive in it, groups in its order.
    assert [p for g in groups for p in g.pairs] == list(order)
    lds = np.arange(8192 * 2, dtype=np.int64)                  # word k holds k
    np.testing.assert_array_equal(model(groups, off.shape[0], lds, off.shape[1]), off // 2)


def test_reads_that_are_not_tiles_get_no_plan() -> None:
    off = fragment_offsets(False, 2, 64, 0, 1)
    assert plan(off + 2, 32) is None                           # rows not 16-byte aligned
    swapped = off.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]                    # elements of a pair out of order
    assert plan(swapped, 32) is None
    assert plan(off, 64) is None                               # wave64 has no ldmatrix
    with pytest.raises(ValueError, match="permutation"):
        plan(off, 32, [0, 0])


@pytest.mark.parametrize("d", [64, 128])
def test_sm90_attention_reads_lds_with_ldmatrix_only(d: int) -> None:
    """Q and K^T (row-major, k contiguous) without .trans; V (B operand across rows) with .trans."""
    lk = lower("attention", "sm_90", D=d, BM=64, BN=32)
    ptx = lk.compile().asm
    assert not re.search(r"\bld\.shared", ptx)
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in ptx
    assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in ptx
    assert lk.stats["ldmatrix"] > 0


def test_sm90_attention_ldmatrix_groups_follow_the_mma_order() -> None:
    """The registers one ldmatrix loads are first read by mma instructions next to each other
    (the planner groups register pairs in the order the matrix plan uses them): grouped by
    register index, one x4.trans of P·V's V held two k-steps of one n-tile, half of it live
    across a whole k-step (16 n-tiles x 2 m-tiles of mma)."""
    ptx = lower("attention", "sm_90", D=128, BM=128, WAVES=4, QREGS=0, BN=64, STAGES=1).compile().asm
    loaded_by: dict[str, int] = {}
    first_use: dict[int, list[int]] = {}
    mmas = 0
    for m in re.finditer(r"(ldmatrix|mma)\.sync[^{]*((?:\{[^}]*\}[,;\s]*)+)", ptx):
        regs = [re.findall(r"%r\d+", group) for group in re.findall(r"\{([^}]*)\}", m.group(2))]
        if m.group(1) == "ldmatrix":
            for r in regs[0]:
                loaded_by[r] = len(first_use)
            first_use[len(first_use)] = []
        else:
            for r in regs[1] + regs[2]:                         # the A and B operands
                if r in loaded_by:
                    first_use[loaded_by.pop(r)].append(mmas)
            mmas += 1
    spreads = [max(u) - min(u) for u in first_use.values() if u]
    assert len(spreads) > 50 and max(spreads) <= 1, sorted(spreads)[-5:]
