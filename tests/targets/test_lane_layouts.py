"""Matrix instructions' lane layouts, pinned against docs/targets/matrix-layouts.md and proved consistent.

The reference tables here are written independently of the implementation: the implementation
uses the inverse formulas ((lane, elem) -> coordinates), these tests walk every matrix element and
apply the forward formulas of the doc's tables (element -> lane, elem); for mma.sync, whose
source text is in inverse form, the forward form is derived by hand from the PTX ISA fragment
pictures (a0,a1: row g; a2,a3: row g+8; a4..a7: the same at column +8).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tiledsl.targets import TARGETS, MatrixInstr, fma_fallback

ALL_INSTRS: dict[str, MatrixInstr] = {i.name: i for t in TARGETS.values() for i in t.matrix_instrs}
FMA32, FMA64 = fma_fallback(32), fma_fallback(64)

# element (row, col) -> list of (lane, elem) holding it, per docs/targets/matrix-layouts.md §2-§4.
Forward = Callable[[int, int], list[tuple[int, int]]]

FORWARD: dict[str, tuple[Forward, Forward, Forward]] = {
    # §2.1 32x32x8: A[i][k]: lane i + 32*(k/4), e = k%4; B[k][j]: lane j + 32*(k/4), e = k%4;
    # C[i][j]: lane j + 32*((i/4)%2), r = 4*(i/8) + i%4.
    "mfma_32x32x8": (lambda i, k: [(i + 32 * (k // 4), k % 4)],
                     lambda k, j: [(j + 32 * (k // 4), k % 4)],
                     lambda i, j: [(j + 32 * ((i // 4) % 2), 4 * (i // 8) + i % 4)]),
    # §2.2 16x16x16: A: lane i + 16*(k/4), e = k%4; B: lane j + 16*(k/4); C: lane j + 16*(i/4), r = i%4.
    "mfma_16x16x16": (lambda i, k: [(i + 16 * (k // 4), k % 4)],
                      lambda k, j: [(j + 16 * (k // 4), k % 4)],
                      lambda i, j: [(j + 16 * (i // 4), i % 4)]),
    # §2.3 the 8-bit CDNA3 forms hold 8 consecutive k a lane: 32x32x16: lane i + 32*(k/8), e = k%8;
    # 16x16x32: lane i + 16*(k/8), e = k%8.  C as the 16-bit shape of the same m x n.
    "mfma_32x32x16": (lambda i, k: [(i + 32 * (k // 8), k % 8)],
                      lambda k, j: [(j + 32 * (k // 8), k % 8)],
                      lambda i, j: [(j + 32 * ((i // 4) % 2), 4 * (i // 8) + i % 4)]),
    "mfma_16x16x32": (lambda i, k: [(i + 16 * (k // 8), k % 8)],
                      lambda k, j: [(j + 16 * (k // 8), k % 8)],
                      lambda i, j: [(j + 16 * (i // 4), i % 4)]),
    # §3 WMMA wave32: A[i][k] in lanes i and i+16, e = k; B[k][j] in lanes j and j+16, e = k;
    # C[i][j]: lane j + 16*(i%2), r = i/2.
    "wmma": (lambda i, k: [(i, k), (i + 16, k)],
             lambda k, j: [(j, k), (j + 16, k)],
             lambda i, j: [(j + 16 * (i % 2), i // 2)]),
    # §4 m16n8k16, lane = 4g + t.  A: g = row%8, t = (col%8)/2, e = col%2 + 2*(row/8) + 4*(col/8).
    # B: g = col, t = (row%8)/2, e = row%2 + 2*(row/8).  C: g = row%8, t = col/2, r = col%2 + 2*(row/8).
    "mma_sync": (lambda i, k: [(4 * (i % 8) + (k % 8) // 2, k % 2 + 2 * (i // 8) + 4 * (k // 8))],
                 lambda k, j: [(4 * j + (k % 8) // 2, k % 2 + 2 * (k // 8))],
                 lambda i, j: [(4 * (i % 8) + j // 2, j % 2 + 2 * (i // 8))]),
    # §4.1 m16n8k32 (8-bit operands, PTX ISA "mma.m16n8k32" fragments: a0..a3 row g, a4..a7 row
    # g+8, a8..a15 the same at column +16; each register holds four consecutive columns).
    # A: g = row%8, t = (col%16)/4, e = col%4 + 4*(row/8) + 8*(col/16).
    # B: g = col, t = (row%16)/4, e = row%4 + 4*(row/16).  C as m16n8k16.
    "mma_sync_k32": (lambda i, k: [(4 * (i % 8) + (k % 16) // 4, k % 4 + 4 * (i // 8) + 8 * (k // 16))],
                     lambda k, j: [(4 * j + (k % 16) // 4, k % 4 + 4 * (k // 16))],
                     lambda i, j: [(4 * (i % 8) + j // 2, j % 2 + 2 * (i // 8))]),
}


def _kind(instr: MatrixInstr) -> str:
    if instr.family == "mfma":
        # An 8-bit MFMA with twice the k has the layout of the 16-bit shape with 8 k a lane: its
        # formulas are the calculator's (test_amd_calculator_tables); here those of its shape.
        return f"mfma_{instr.m}x{instr.n}x{instr.k}"
    if instr.family == "mma_sync" and instr.k == 32:
        return "mma_sync_k32"
    return instr.family


def _reference_table(rows: int, cols: int, forward: Forward, lanes: int, elems: int) -> np.ndarray:
    """[lanes, elems, 2] table filled from the forward formula; -1 where nothing was placed."""
    table = np.full((lanes, elems, 2), -1, dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            for lane, e in forward(r, c):
                assert (table[lane, e] == -1).all(), "reference formula puts two elements in one slot"
                table[lane, e] = (r, c)
    return table


@pytest.mark.parametrize("name", sorted(ALL_INSTRS))
def test_lane_maps_match_reference(name: str) -> None:
    instr = ALL_INSTRS[name]
    fa, fb, fc = FORWARD[_kind(instr)]
    m, n, k = instr.m, instr.n, instr.k
    np.testing.assert_array_equal(instr.a_map(), _reference_table(m, k, fa, instr.lanes, instr.a_elems))
    np.testing.assert_array_equal(instr.b_map(), _reference_table(k, n, fb, instr.lanes, instr.b_elems))
    np.testing.assert_array_equal(instr.c_map(), _reference_table(m, n, fc, instr.lanes, instr.c_elems))


@pytest.mark.parametrize(("name", "shape", "frag"), [
    ("mfma_f32_32x32x8_f16", (32, 32, 8), (4, 4, 16)),
    ("mfma_f32_16x16x16_bf16", (16, 16, 16), (4, 4, 4)),
    ("wmma_f32_16x16x16_f16", (16, 16, 16), (16, 16, 8)),
    ("mma_m16n8k16_bf16", (16, 8, 16), (8, 4, 4)),
    ("mma_m16n8k32_e4m3", (16, 8, 32), (16, 8, 4)),
    ("mma_m16n8k32_s8", (16, 8, 32), (16, 8, 4)),
    ("mfma_i32_16x16x32_i8", (16, 16, 32), (8, 8, 4)),
    ("mfma_i32_32x32x8_i8", (32, 32, 8), (4, 4, 16)),
    ("wmma_i32_16x16x16_u8", (16, 16, 16), (16, 16, 8)),
])
def test_shapes(name: str, shape: tuple[int, int, int], frag: tuple[int, int, int]) -> None:
    instr = ALL_INSTRS[name]
    assert (instr.m, instr.n, instr.k) == shape
    assert (instr.a_elems, instr.b_elems, instr.c_elems) == frag
    dtype = {"e4m3": "f8e4m3", "e5m2": "f8e5m2", "s8": "i8"}.get(name.rsplit("_", 1)[1], name.rsplit("_", 1)[1])
    assert instr.in_dtype == dtype
    assert instr.acc_dtype == ("i32" if dtype in ("i8", "u8") else "f32")


def test_spot_values() -> None:
    """A few slots worked out by hand from the doc's inverse formulas."""
    mf32 = ALL_INSTRS["mfma_f32_32x32x8_f16"]
    assert tuple(mf32.c_map()[33, 5]) == (8 * 1 + 4 * 1 + 1, 1)   # i = 8(r/4) + 4(l/32) + r%4
    assert tuple(mf32.a_map()[40, 3]) == (8, 7)                    # i = l%32, k = 4(l/32) + e
    mf16 = ALL_INSTRS["mfma_f32_16x16x16_f16"]
    assert tuple(mf16.c_map()[50, 2]) == (4 * 3 + 2, 2)            # i = 4(l/16) + r, j = l%16
    wm = ALL_INSTRS["wmma_f32_16x16x16_f16"]
    assert tuple(wm.c_map()[20, 7]) == (15, 4)                     # i = 2r + l/16, j = l%16
    nv = ALL_INSTRS["mma_m16n8k16_f16"]
    assert tuple(nv.a_map()[5, 6]) == (9, 10)                      # g=1, t=1: row g+8, col 2t+8
    assert tuple(nv.b_map()[5, 3]) == (11, 1)                      # row 2t+1+8, col g
    assert tuple(nv.c_map()[31, 3]) == (15, 7)                     # g=7, t=3: row g+8, col 2t+1


def _count(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    counts = np.zeros(shape, dtype=np.int64)
    np.add.at(counts, (coords[..., 0].ravel(), coords[..., 1].ravel()), 1)
    return counts


@pytest.mark.parametrize("instr", [*ALL_INSTRS.values(), FMA32, FMA64], ids=str)
def test_each_element_held_the_expected_number_of_times(instr: MatrixInstr) -> None:
    # A/B are held once, except WMMA (twice: lanes i and i+16) and the FMA fallback (a lane row shares
    # its A values, a lane column its B values).
    a_dup = {"wmma": 2, "fma": 8}.get(instr.family, 1)
    b_dup = {"wmma": 2, "fma": instr.lanes // 8}.get(instr.family, 1)
    assert (_count(instr.a_map(), (instr.m, instr.k)) == a_dup).all()
    assert (_count(instr.b_map(), (instr.k, instr.n)) == b_dup).all()
    assert (_count(instr.c_map(), (instr.m, instr.n)) == 1).all()
    assert instr.lanes * instr.c_elems == instr.m * instr.n


def _emulate(instr: MatrixInstr, a_frag: np.ndarray, b_frag: np.ndarray, c_frag: np.ndarray) -> np.ndarray:
    """One instruction, from its semantics and the maps only: gather the fragments into A, B, C,
    compute D = A @ B + C, and hand each lane its D registers."""
    a = np.full((instr.m, instr.k), np.nan)
    b = np.full((instr.k, instr.n), np.nan)
    c = np.full((instr.m, instr.n), np.nan)
    for frag, full, fmap in ((a_frag, a, instr.a_map()), (b_frag, b, instr.b_map()), (c_frag, c, instr.c_map())):
        rows, cols = fmap[..., 0], fmap[..., 1]
        # Replicated operands (WMMA, FMA) must carry the same value in every copy.
        full[rows, cols] = frag
        np.testing.assert_array_equal(full[rows, cols], frag)
        assert not np.isnan(full).any(), "fragment map leaves part of the matrix undefined"
    d = a @ b + c
    cmap = instr.c_map()
    return d[cmap[..., 0], cmap[..., 1]]


def _pack(matrix: np.ndarray, fmap: np.ndarray) -> np.ndarray:
    return matrix[fmap[..., 0], fmap[..., 1]]


@pytest.mark.parametrize("instr", [*ALL_INSTRS.values(), FMA32, FMA64], ids=str)
def test_emulated_instruction_computes_a_times_b(instr: MatrixInstr) -> None:
    rng = np.random.default_rng(7)
    steps = 3  # chain k-steps through the accumulator, as a loop over K does
    a = rng.standard_normal((instr.m, instr.k * steps))
    b = rng.standard_normal((instr.k * steps, instr.n))
    c0 = rng.standard_normal((instr.m, instr.n))
    acc = _pack(c0, instr.c_map())
    for s in range(steps):
        ks = slice(s * instr.k, (s + 1) * instr.k)
        acc = _emulate(instr, _pack(a[:, ks], instr.a_map()), _pack(b[ks, :], instr.b_map()), acc)
    out = np.full((instr.m, instr.n), np.nan)
    cmap = instr.c_map()
    out[cmap[..., 0], cmap[..., 1]] = acc
    np.testing.assert_allclose(out, a @ b + c0, rtol=1e-12, atol=1e-12)


def test_maps_are_read_only_int64() -> None:
    instr = ALL_INSTRS["mma_m16n8k16_f16"]
    for fmap in (instr.a_map(), instr.b_map(), instr.c_map()):
        assert fmap.dtype == np.int64
        assert not fmap.flags.writeable
    with pytest.raises(ValueError, match="operands 0"):
        instr.operand_map(2)


def test_fma_fallback_shape() -> None:
    assert (FMA32.m, FMA32.n, FMA32.k, FMA32.c_elems) == (16, 16, 1, 8)
    assert (FMA64.m, FMA64.n, FMA64.lanes) == (32, 16, 64)
    # Each lane owns a contiguous 4x2 sub-tile.
    cmap = FMA32.c_map()
    for lane in (0, 9, 31):
        rows, cols = cmap[lane, :, 0], cmap[lane, :, 1]
        assert set(rows) == set(range(rows.min(), rows.min() + 4))
        assert set(cols) == set(range(cols.min(), cols.min() + 2))


def test_f16_and_bf16_variants_share_their_lane_layout() -> None:
    """Layout binding relies on this: an accumulator's layout does not depend on the operand type."""
    pairs = [(i, ALL_INSTRS[i.name.replace("_f16", "_bf16")]) for i in ALL_INSTRS.values() if i.in_dtype == "f16"]
    assert len(pairs) == 4
    for f16, bf16 in pairs:
        assert (f16.m, f16.n, f16.k, f16.lanes) == (bf16.m, bf16.n, bf16.k, bf16.lanes)
        for which in ("a_map", "b_map", "c_map"):
            np.testing.assert_array_equal(getattr(f16, which)(), getattr(bf16, which)())
