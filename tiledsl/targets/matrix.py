"""Matrix instructions as data: shapes and the lane layouts of their fragments.

A matrix instruction computes ``D = A @ B + C`` for one ``m x k`` A tile, one ``k x n`` B tile and
one ``m x n`` C/D tile, spread over the lanes of one wave.  Which lane holds which element is the
whole contract between the tile level and the hardware, so each instruction carries three
lane-layout functions (``a_map``, ``b_map``, ``c_map``) that return, for every (lane, element), the
matrix coordinates it holds.  The formulas are those of docs/targets/matrix-layouts.md (AMD Matrix Instruction
Calculator for MFMA/WMMA, the PTX ISA checked on an H100 for ``mma.sync``).

The lane layouts are given in "inverse" form (lane, element) -> coordinates, because that is what
both the thread interpreter (which element does this register hold?) and the lowering (which
address does this lane load?) ask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Family = Literal["mfma", "wmma", "mma_sync", "fma"]

# (instr, lane[L, 1], elem[1, E]) -> (row[L, E], col[L, E])
LaneFormula = Callable[["MatrixInstr", np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class MatrixInstr:
    """One matrix-multiply-accumulate instruction of a target, with its fragment lane layouts.

    ``a_elems``/``b_elems``/``c_elems`` count the A, B and C/D elements each lane holds.  ``family``
    selects the lane formulas; instructions of one family differ only in their shape constants.
    ``intrinsic`` is the LLVM intrinsic the backend emits for it (empty for the FMA fallback);
    how the lane's elements are packed into its operands is the family's rule, in the backend
    of the family's vendor.
    """

    name: str
    family: Family
    m: int
    n: int
    k: int
    in_dtype: str
    acc_dtype: str
    lanes: int
    a_elems: int
    b_elems: int
    c_elems: int
    intrinsic: str = ""

    def __str__(self) -> str:
        return self.name

    def a_map(self) -> np.ndarray:
        """(i, k) of A held by lane ``l`` in element ``e``: int64 array ``[lanes, a_elems, 2]``."""
        return self._map("a", self.a_elems)

    def b_map(self) -> np.ndarray:
        """(k, j) of B held by lane ``l`` in element ``e``: int64 array ``[lanes, b_elems, 2]``."""
        return self._map("b", self.b_elems)

    def c_map(self) -> np.ndarray:
        """(i, j) of C/D held by lane ``l`` in register ``r``: int64 array ``[lanes, c_elems, 2]``."""
        return self._map("c", self.c_elems)

    def operand_map(self, operand: int) -> np.ndarray:
        """``a_map()`` for operand 0, ``b_map()`` for operand 1."""
        if operand == 0:
            return self.a_map()
        if operand == 1:
            return self.b_map()
        raise ValueError(f"a matrix instruction has operands 0 (A) and 1 (B), not {operand}")

    def _map(self, which: str, elems: int) -> np.ndarray:
        formula = _FORMULAS[self.family][which]
        lane = np.arange(self.lanes, dtype=np.int64)[:, None]
        elem = np.arange(elems, dtype=np.int64)[None, :]
        row, col = formula(self, lane, elem)
        out = np.stack(np.broadcast_arrays(row, col), axis=-1).astype(np.int64)
        out.setflags(write=False)
        return out


# --- MFMA (CDNA2/CDNA3, wave64), docs/targets/matrix-layouts.md §2 -----------------------------------
# Both MFMA shapes have the same structure: the 64 lanes are cut into lanes/m groups, each holding 4
# consecutive k values of every row (A) or column (B); C rows are interleaved in blocks of 4 between
# the lane groups.  Written once with m, n from the instruction, it reproduces both tables of §2 there.


def _mfma_a(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lane % ins.m, ins.a_elems * (lane // ins.m) + e


def _mfma_b(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ins.b_elems * (lane // ins.n) + e, lane % ins.n


def _mfma_c(ins: MatrixInstr, lane: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    groups = ins.lanes // ins.n  # 2 for 32x32, 4 for 16x16
    return 4 * groups * (r // 4) + 4 * (lane // ins.n) + r % 4, lane % ins.n


# --- WMMA (RDNA3, wave32), docs/targets/matrix-layouts.md §3 -----------------------------------------
# A and B are held twice: lanes l and l+16 carry the same 16 values (the hardware reads both halves).


def _wmma_a(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lane % 16, e


def _wmma_b(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return e, lane % 16


def _wmma_c(ins: MatrixInstr, lane: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 2 * r + lane // 16, lane % 16


# --- mma.sync m16n8k16 (sm_80+, warp 32), docs/targets/matrix-layouts.md §4: g = lane/4, t = lane%4 ---
# m16n8k32 (8-bit operands, §4.1) is the same pattern with p = k/8 = 4 elements to a 32-bit register
# instead of 2: a register holds p consecutive k of one row (A) or column (B).


def _nv_a(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g, t, p = lane // 4, lane % 4, ins.k // 8
    return g + 8 * ((e // p) % 2), p * t + e % p + 4 * p * (e // (2 * p))


def _nv_b(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g, t, p = lane // 4, lane % 4, ins.k // 8
    return p * t + e % p + 4 * p * (e // p), g


def _nv_c(ins: MatrixInstr, lane: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g, t = lane // 4, lane % 4
    return g + 8 * (r // 2), 2 * t + r % 2


# --- FMA fallback: not a hardware instruction --------------------------------------------------------
# On a target without matrix instructions a wave still computes an m x n accumulator tile, one
# element-wise FMA per k.  The lanes form a (lanes/8) x 8 grid and each lane owns a 4 x 2 sub-tile
# (contiguous rows and columns, so A and B values loaded once serve 2 and 4 FMAs).  k = 1: one k per
# step, which puts no constraint on K.  A is replicated over the 8 lanes of a lane row, B over the
# lanes/8 lanes of a lane column.
_FMA_TM, _FMA_TN, _FMA_LANES_N = 4, 2, 8


def _fma_a(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _FMA_TM * (lane // _FMA_LANES_N) + e, 0 * e


def _fma_b(ins: MatrixInstr, lane: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 0 * e, _FMA_TN * (lane % _FMA_LANES_N) + e


def _fma_c(ins: MatrixInstr, lane: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _FMA_TM * (lane // _FMA_LANES_N) + r // _FMA_TN, _FMA_TN * (lane % _FMA_LANES_N) + r % _FMA_TN


_FORMULAS: dict[str, dict[str, LaneFormula]] = {
    "mfma": {"a": _mfma_a, "b": _mfma_b, "c": _mfma_c},
    "wmma": {"a": _wmma_a, "b": _wmma_b, "c": _wmma_c},
    "mma_sync": {"a": _nv_a, "b": _nv_b, "c": _nv_c},
    "fma": {"a": _fma_a, "b": _fma_b, "c": _fma_c},
}


def _mfma(m: int, n: int, k: int, dtype: str, intrinsic: str, acc: str = "f32") -> MatrixInstr:
    per_lane = m * n // 64
    return MatrixInstr(f"mfma_{acc}_{m}x{n}x{k}_{dtype}", "mfma", m, n, k, dtype, acc, 64,
                       a_elems=m * k // 64, b_elems=k * n // 64, c_elems=per_lane, intrinsic=intrinsic)


# MFMA A/B are <4 x half> or, for bf16, <4 x i16> (the ".1k" forms: <4 x bfloat> is rejected), C/D
# <16|4 x float>, then cbsz, abid, blgp (docs/targets/amdgpu.md §11.1).  bf16 has the same lane
# layout as f16 (docs/targets/matrix-layouts.md §2).
MFMA_F32_32X32X8_F16 = _mfma(32, 32, 8, "f16", "llvm.amdgcn.mfma.f32.32x32x8f16")
MFMA_F32_16X16X16_F16 = _mfma(16, 16, 16, "f16", "llvm.amdgcn.mfma.f32.16x16x16f16")
MFMA_F32_32X32X8_BF16 = _mfma(32, 32, 8, "bf16", "llvm.amdgcn.mfma.f32.32x32x8bf16.1k")
MFMA_F32_16X16X16_BF16 = _mfma(16, 16, 16, "bf16", "llvm.amdgcn.mfma.f32.16x16x16bf16.1k")

# i8 MFMA, i32 accumulators (docs/targets/amdgpu.md §11.3): gfx942's forms take 8 i8 a lane as one
# i64, gfx90a's 4 as one i32; the lane layouts are the f16 ones with a_elems k values a lane.
MFMA_I32_32X32X16_I8 = _mfma(32, 32, 16, "i8", "llvm.amdgcn.mfma.i32.32x32x16.i8", "i32")
MFMA_I32_16X16X32_I8 = _mfma(16, 16, 32, "i8", "llvm.amdgcn.mfma.i32.16x16x32.i8", "i32")
MFMA_I32_32X32X8_I8 = _mfma(32, 32, 8, "i8", "llvm.amdgcn.mfma.i32.32x32x8i8", "i32")
MFMA_I32_16X16X16_I8 = _mfma(16, 16, 16, "i8", "llvm.amdgcn.mfma.i32.16x16x16i8", "i32")

# WMMA takes <16 x half>/<16 x i16> and <8 x float>, in LLVM 22's mangling (docs/targets/amdgpu.md §11.2).
WMMA_F32_16X16X16_F16 = MatrixInstr("wmma_f32_16x16x16_f16", "wmma", 16, 16, 16, "f16", "f32", 32,
                                    a_elems=16, b_elems=16, c_elems=8,
                                    intrinsic="llvm.amdgcn.wmma.f32.16x16x16.f16.v8f32.v16f16")
WMMA_F32_16X16X16_BF16 = MatrixInstr("wmma_f32_16x16x16_bf16", "wmma", 16, 16, 16, "bf16", "f32", 32,
                                     a_elems=16, b_elems=16, c_elems=8,
                                     intrinsic="llvm.amdgcn.wmma.f32.16x16x16.bf16.v8f32.v16i16")

# WMMA iu8 (RDNA3): 16 bytes a lane as <4 x i32>, i32 accumulators; each operand's signedness is an
# argument, so one record serves i8 and u8 (the lowering passes it; docs/targets/amdgpu.md §11.3).
WMMA_I32_16X16X16_I8 = MatrixInstr("wmma_i32_16x16x16_i8", "wmma", 16, 16, 16, "i8", "i32", 32,
                                   a_elems=16, b_elems=16, c_elems=8,
                                   intrinsic="llvm.amdgcn.wmma.i32.16x16x16.iu8.v8i32.v4i32")
WMMA_I32_16X16X16_U8 = dataclasses.replace(WMMA_I32_16X16X16_I8, name="wmma_i32_16x16x16_u8", in_dtype="u8")

# mma.sync m16n8k16 with f32 accumulators (docs/targets/nvptx.md §9). For f16 inputs the intrinsic's suffix
# is <D type>.<C type> and the operands are <2 x half> pairs; for bf16 it is the input type and
# each pair travels as an i32 (low half = the lower-numbered element).
MMA_M16N8K16_F16 = MatrixInstr("mma_m16n8k16_f16", "mma_sync", 16, 8, 16, "f16", "f32", 32,
                               a_elems=8, b_elems=4, c_elems=4,
                               intrinsic="llvm.nvvm.mma.m16n8k16.row.col.f32.f32")
MMA_M16N8K16_BF16 = MatrixInstr("mma_m16n8k16_bf16", "mma_sync", 16, 8, 16, "bf16", "f32", 32,
                                a_elems=8, b_elems=4, c_elems=4,
                                intrinsic="llvm.nvvm.mma.m16n8k16.row.col.bf16")

# mma.sync m16n8k32 with 8-bit operands (docs/targets/nvptx.md §16): four elements a 32-bit register
# (element 4j in its low byte). fp8 (e4m3, e5m2) needs sm_89 and PTX 8.4; s8/u8 sm_80 and PTX 7.0.
MMA_M16N8K32_E4M3 = MatrixInstr("mma_m16n8k32_e4m3", "mma_sync", 16, 8, 32, "f8e4m3", "f32", 32,
                                a_elems=16, b_elems=8, c_elems=4,
                                intrinsic="llvm.nvvm.mma.m16n8k32.row.col.f32.e4m3.e4m3.f32")
MMA_M16N8K32_E5M2 = MatrixInstr("mma_m16n8k32_e5m2", "mma_sync", 16, 8, 32, "f8e5m2", "f32", 32,
                                a_elems=16, b_elems=8, c_elems=4,
                                intrinsic="llvm.nvvm.mma.m16n8k32.row.col.f32.e5m2.e5m2.f32")
MMA_M16N8K32_S8 = MatrixInstr("mma_m16n8k32_s8", "mma_sync", 16, 8, 32, "i8", "i32", 32,
                              a_elems=16, b_elems=8, c_elems=4, intrinsic="llvm.nvvm.mma.m16n8k32.row.col.s8")
MMA_M16N8K32_U8 = MatrixInstr("mma_m16n8k32_u8", "mma_sync", 16, 8, 32, "u8", "i32", 32,
                              a_elems=16, b_elems=8, c_elems=4, intrinsic="llvm.nvvm.mma.m16n8k32.row.col.u8")

#: Every matrix instruction some target has, by name.
MATRIX_INSTRS: dict[str, MatrixInstr] = {i.name: i for i in (
    MFMA_F32_32X32X8_F16, MFMA_F32_16X16X16_F16, MFMA_F32_32X32X8_BF16, MFMA_F32_16X16X16_BF16,
    MFMA_I32_32X32X16_I8, MFMA_I32_16X16X32_I8, MFMA_I32_32X32X8_I8, MFMA_I32_16X16X16_I8,
    WMMA_F32_16X16X16_F16, WMMA_F32_16X16X16_BF16, WMMA_I32_16X16X16_I8, WMMA_I32_16X16X16_U8,
    MMA_M16N8K16_F16, MMA_M16N8K16_BF16, MMA_M16N8K32_E4M3, MMA_M16N8K32_E5M2, MMA_M16N8K32_S8,
    MMA_M16N8K32_U8)}


def fma_fallback(wave_size: int) -> MatrixInstr:
    """The plain-FMA accumulator "instruction" used where a target has no matrix instruction.

    It is a layout device, not hardware: each lane owns a 4x2 sub-tile of a ``(wave_size/2) x 16``
    wave tile (16x16 on a wave32), one k per step.
    """
    if wave_size % _FMA_LANES_N:
        raise ValueError(f"the FMA fallback needs a wave size that is a multiple of {_FMA_LANES_N}")
    m = _FMA_TM * wave_size // _FMA_LANES_N
    n = _FMA_TN * _FMA_LANES_N
    return MatrixInstr(f"fma_f32_{m}x{n}x1", "fma", m, n, 1, "f32", "f32", wave_size,
                       a_elems=_FMA_TM, b_elems=_FMA_TN, c_elems=_FMA_TM * _FMA_TN)
