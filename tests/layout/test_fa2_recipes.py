"""The FA2 register-reuse facts of docs/targets/matrix-layouts.md §7, as equalities of index maps.

If the accumulator layout of S (after exp2 and the cast) equals the A-operand layout of the P·V
dot, P can be fed to the second dot straight from registers, with no shuffle and no LDS trip.
"""

from __future__ import annotations

import numpy as np
import pytest

from tiledsl.layout import DotOperandSpec, MmaSpec, SliceSpec, bind
from tiledsl.targets import TARGETS, get_target

# --- instruction level ----------------------------------------------------------------------------


def test_nvidia_c_fragments_of_two_n_tiles_are_one_a_fragment() -> None:
    """m16n8k16: c0..c3 of n-tiles 2kb and 2kb+1 are a0..a3 and a4..a7 of k-block kb."""
    instr = get_target("sm_90").default_matrix_instr("f16")
    assert instr is not None
    c = instr.c_map()
    two_tiles = np.concatenate([c, c + np.array([0, instr.n])], axis=1)  # n-tile 2kb, then 2kb+1
    np.testing.assert_array_equal(two_tiles, instr.a_map())


@pytest.mark.parametrize("name", ["mfma_f32_32x32x8_f16", "mfma_f32_16x16x16_f16"])
def test_amd_swapped_accumulator_registers_are_a_operands(name: str) -> None:
    """MFMA computing Sᵀ: accumulator registers 4kb..4kb+3 are the A operand of the kb-th P·V MFMA."""
    instr = get_target("gfx942").matrix_instr(name)
    assert instr is not None
    s_of_lane = instr.c_map()[..., ::-1]  # swapped: register r of lane l holds S[(j, i) of the C map]
    for kb in range(instr.c_elems // instr.a_elems):
        a_kb = instr.a_map() + np.array([0, kb * instr.k])  # A of the kb-th MFMA: columns kb*k ...
        np.testing.assert_array_equal(s_of_lane[:, 4 * kb:4 * kb + 4], a_kb)


def test_amd_v_as_b_operand_is_strided() -> None:
    """V as B of 32x32x8 needs V[n = 4(l/32) + e][d = l%32] (docs/targets/matrix-layouts.md §7.5)."""
    instr = get_target("gfx942").matrix_instr("mfma_f32_32x32x8_f16")
    assert instr is not None
    lane, e = np.indices((64, 4))
    np.testing.assert_array_equal(instr.b_map(), np.stack([4 * (lane // 32) + e, lane % 32], axis=-1))


# --- layout level: the accumulator of S is the dot_operand(0) layout of P ---------------------------

@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
@pytest.mark.parametrize(("bm", "bn", "waves"), [(128, 64, 4), (64, 32, 4), (64, 16, 2), (16, 64, 1)])
def test_nvidia_s_accumulator_is_p_operand(target: str, bm: int, bn: int, waves: int) -> None:
    t = get_target(target)
    acc = bind(MmaSpec((waves, 1)), (bm, bn), waves, t)
    p_operand = bind(DotOperandSpec(MmaSpec((waves, 1)), 0), (bm, bn), waves, t, "f16")
    np.testing.assert_array_equal(acc.index_map(), p_operand.index_map())
    assert acc.equivalent(p_operand)


@pytest.mark.parametrize("target", ["gfx90a", "gfx942"])
@pytest.mark.parametrize("instr", [None, "mfma_f32_32x32x8_f16", "mfma_f32_16x16x16_f16"])
@pytest.mark.parametrize(("bm", "bn", "waves"), [(128, 64, 4), (128, 32, 4), (64, 128, 2)])
def test_amd_swapped_s_accumulator_is_p_operand(target: str, instr: str | None, bm: int, bn: int,
                                                waves: int) -> None:
    t = get_target(target)
    s_acc = bind(MmaSpec((waves, 1), instr, swap=True), (bm, bn), waves, t)
    p_operand = bind(DotOperandSpec(MmaSpec((waves, 1), instr), 0), (bm, bn), waves, t, "f16")
    np.testing.assert_array_equal(s_acc.index_map(), p_operand.index_map())


def test_amd_unswapped_s_accumulator_is_not_p_operand() -> None:
    """Without the swap a lane holds a column of S, not a row: the recipe needs swap=true."""
    t = get_target("gfx942")
    s_acc = bind(MmaSpec((4, 1)), (128, 64), 4, t)
    p_operand = bind(DotOperandSpec(MmaSpec((4, 1)), 0), (128, 64), 4, t, "f16")
    assert not s_acc.equivalent(p_operand)


def test_wmma_swapped_accumulator_needs_a_lane_16_exchange() -> None:
    """gfx11: lane l holds S[l%16][2r + l/16], half a row; the A operand needs the whole row, which
    register e//2 of lane l (e%2 == l/16) or of lane l^16 (otherwise) supplies."""
    t = get_target("gfx1100")
    s_acc = bind(MmaSpec((1, 1), swap=True), (16, 16), 1, t).index_map()[0]
    p_operand = bind(DotOperandSpec(MmaSpec((1, 1)), 0), (16, 16), 1, t, "f16").index_map()[0]
    lane = np.arange(32)
    np.testing.assert_array_equal(s_acc[:, :, 0], (lane % 16)[:, None] + 0 * s_acc[:, :, 0])
    np.testing.assert_array_equal(s_acc[:, :, 1], 2 * np.arange(8)[None, :] + (lane // 16)[:, None])
    assert s_acc.shape != p_operand.shape or not np.array_equal(s_acc, p_operand)
    exchanged = np.empty_like(p_operand)
    for lane_id in range(32):
        for e in range(16):
            source = lane_id if e % 2 == lane_id // 16 else lane_id ^ 16
            exchanged[lane_id, e] = s_acc[source, e // 2]
    np.testing.assert_array_equal(exchanged, p_operand)


# --- row reductions stay inside a wave and cross few lanes ------------------------------------------

@pytest.mark.parametrize(("target", "instr", "swap", "partners"), [
    # matrix-layouts.md §7.4: a row of S sits in lanes {l, l^32} (32x32x8), {l, l^16, l^32, l^48} (16x16x16)
    ("gfx942", "mfma_f32_32x32x8_f16", True, [0, 32]),
    ("gfx942", "mfma_f32_16x16x16_f16", True, [0, 16, 32, 48]),
    # ... and on the 4 lanes of a quad for mma.sync (shfl.sync.bfly xor 1, xor 2)
    ("sm_90", "mma_m16n8k16_f16", False, [0, 1, 2, 3]),
    # ... and on lanes {l, l^16} for swapped WMMA
    ("gfx1100", "wmma_f32_16x16x16_f16", True, [0, 16]),
])
def test_row_of_s_lives_in_few_lanes_of_one_wave(target: str, instr: str, swap: bool, partners: list[int]) -> None:
    t = TARGETS[target]
    rows = bind(SliceSpec(MmaSpec((4, 1), instr, swap), 1), (128,), 4, t)
    assert (rows.replication() == len(partners)).all()
    imap = rows.index_map()
    for row in (0, 5, 77):
        holders = np.argwhere((imap[..., 0] == row).any(axis=-1))  # (wave, lane) pairs
        assert len(set(holders[:, 0])) == 1  # one wave
        lanes = sorted(holders[:, 1])
        assert sorted(lane ^ lanes[0] for lane in lanes) == partners
