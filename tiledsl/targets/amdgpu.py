"""AMDGPU targets: CDNA2 (gfx90a), CDNA3 (gfx942), RDNA3 (gfx1100).  Facts: docs/targets/amdgpu.md."""

from __future__ import annotations

from tiledsl.targets.arch import AmdArch
from tiledsl.targets.matrix import (
    MFMA_F32_16X16X16_BF16,
    MFMA_F32_16X16X16_F16,
    MFMA_F32_32X32X8_BF16,
    MFMA_F32_32X32X8_F16,
    MFMA_I32_16X16X16_I8,
    MFMA_I32_16X16X32_I8,
    MFMA_I32_32X32X8_I8,
    MFMA_I32_32X32X16_I8,
    WMMA_F32_16X16X16_BF16,
    WMMA_F32_16X16X16_F16,
    WMMA_I32_16X16X16_I8,
    WMMA_I32_16X16X16_U8,
)
from tiledsl.targets.target import Target

# 32x32x8 first: it is what Triton's FA2 uses on gfx90a/gfx942 (docs/targets/amdgpu.md §12), and it halves the
# number of MFMAs per tile against 16x16x16 for the same work.
_CDNA_MFMA = (MFMA_F32_32X32X8_F16, MFMA_F32_16X16X16_F16, MFMA_F32_32X32X8_BF16, MFMA_F32_16X16X16_BF16)
# i8 MFMA: CDNA3 doubled k (i64 operands); CDNA2 has the k=8/16 forms (amdgpu.md §11.3). u8 has no
# MFMA (its dots run on FMAs); fp8 dots widen to f16 exactly and use the f16 MFMA, since gfx942's
# fp8 MFMA reads the FNUZ formats (amdgpu.md §7.1, §11.3).
_GFX90A_MFMA = _CDNA_MFMA + (MFMA_I32_32X32X8_I8, MFMA_I32_16X16X16_I8)
_GFX942_MFMA = _CDNA_MFMA + (MFMA_I32_32X32X16_I8, MFMA_I32_16X16X32_I8)

# gfx9 has no permlanex16/permlane64 (they abort in LLVM, amdgpu.md §9.1).  No "shuffle_xor": an xor
# exchange is built from DPP (within 16 lanes), ds_swizzle (within 32) or ds_bpermute (anywhere).
_CDNA_CROSS_LANE = frozenset({"shuffle", "dpp", "swizzle", "readlane"})

# global.load.lds exists on gfx90a/gfx942 but moves 4 bytes per lane to a wave-uniform LDS base
# (amdgpu.md §10.4); it is not the 16-byte per-thread cp.async model that has_async_copy promises.
#
# LDS: 32 banks of 4 bytes on every GCN/CDNA/RDNA part; a wave64 ds_read_b32 is served as two
# halves of 32 lanes, a ds_read_b64/b128 in groups of 16/8 lanes — 128 bytes per phase.
#
# Registers: a CDNA2/CDNA3 lane addresses 256 arch VGPRs and 256 AGPRs, one unified file of 512
# (LLVM AMDGPUBaseInfo.cpp ``getAddressableNumVGPRs``/``getTotalNumVGPRs`` for gfx90a+; the
# CDNA3 ISA guide, "VGPRs and AGPRs"); AGPRs hold MFMA accumulators and spilled VGPRs.
# The AmdArch figures (occupancy, register file) are documented on AmdArch.
GFX90A = Target(name="gfx90a", vendor="amd", wave_size=64, lds_bytes=65536,
                matrix_instrs=_GFX90A_MFMA, cross_lane=_CDNA_CROSS_LANE, has_async_copy=False,
                lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128,
                mma_swap=True, max_registers_per_thread=512, backend="amdgpu", arch="gfx90a",
                amdgpu=AmdArch("gfx90a", 64, kernarg_preload=True, vgprs_per_simd=512, vgpr_granule=8,
                               max_waves_per_simd=8, lds_bytes_per_cu=65536, simds_per_cu=4,
                               max_barriers_per_cu=16, sgprs_limit_occupancy=True, packed_f32=True),
                packed_atomic_add=frozenset({"f16"}))
GFX942 = Target(name="gfx942", vendor="amd", wave_size=64, lds_bytes=65536,
                matrix_instrs=_GFX942_MFMA, cross_lane=_CDNA_CROSS_LANE, has_async_copy=False,
                lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128,
                mma_swap=True, max_registers_per_thread=512, backend="amdgpu", arch="gfx942",
                amdgpu=AmdArch("gfx942", 64, kernarg_preload=True, vgprs_per_simd=512, vgpr_granule=8,
                               max_waves_per_simd=8, lds_bytes_per_cu=65536, simds_per_cu=4,
                               max_barriers_per_cu=16, sgprs_limit_occupancy=True, packed_f32=True),
                packed_atomic_add=frozenset({"f16", "bf16"}))

# Registers: an RDNA3 wave addresses at most 256 VGPRs (8-bit register fields; RDNA3 ISA guide,
# "VGPRs"); the 1.5x register file of gfx1100 buys more resident waves, not more registers per
# lane, and there are no AGPRs.
#
# gfx1100 runs wave32 by default.  permlane64 compiles there but only swaps halves of a wave64, so
# in wave32 it exchanges nothing and is left out; permlanex16 is the lane <-> lane^16 exchange the
# WMMA FA2 recipe needs (docs/targets/matrix-layouts.md §7.3). wave32 is RDNA's native width and the
# WMMA form we use (docs/targets/amdgpu.md §11.2); the wave64 form would need
# features="+wavefrontsize64".
_RDNA_CROSS_LANE = frozenset({"shuffle", "dpp", "swizzle", "permlanex16", "readlane"})
GFX1100 = Target(name="gfx1100", vendor="amd", wave_size=32, lds_bytes=65536,
                 matrix_instrs=(WMMA_F32_16X16X16_F16, WMMA_F32_16X16X16_BF16, WMMA_I32_16X16X16_I8,
                                WMMA_I32_16X16X16_U8),
                 cross_lane=_RDNA_CROSS_LANE,
                 has_async_copy=False, lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128,
                 mma_swap=True, max_registers_per_thread=256, backend="amdgpu", arch="gfx1100",
                 amdgpu=AmdArch("gfx1100", 32, kernarg_preload=False, vgprs_per_simd=1536, vgpr_granule=24,
                                max_waves_per_simd=16, lds_bytes_per_cu=131072, simds_per_cu=4,
                                max_barriers_per_cu=32, sgprs_limit_occupancy=False))

# An RDNA2 part with neither MFMA nor WMMA: "any AMDGPU", where every dot is the FMA fallback.
GFX1030 = Target(name="gfx1030", vendor="amd", wave_size=32, lds_bytes=65536,
                 cross_lane=_RDNA_CROSS_LANE,
                 has_async_copy=False, lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128,
                 mma_swap=True, max_registers_per_thread=256, backend="amdgpu", arch="gfx1030",
                 amdgpu=AmdArch("gfx1030", 32, kernarg_preload=False, vgprs_per_simd=1024, vgpr_granule=16,
                                max_waves_per_simd=16, lds_bytes_per_cu=131072, simds_per_cu=4,
                                max_barriers_per_cu=32, sgprs_limit_occupancy=False))
