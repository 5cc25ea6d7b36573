"""What each LLVM backend needs to know about one processor, beyond the thread-level facts.

These are parts of a :class:`tiledsl.targets.Target` record (its ``amdgpu`` or ``nvptx`` field),
so that one record per GPU states every fact once; the backends in ``tiledsl.backend_amdgpu`` and
``tiledsl.backend_nvptx`` read them from there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AmdArch:
    """Facts about one gfx architecture: code generation and the occupancy rules.

    The occupancy figures are LLVM's own (llvm/lib/Target/AMDGPU/Utils/AMDGPUBaseInfo.cpp:
    ``getTotalNumVGPRs``, ``getVGPRAllocGranule``, ``getMaxWavesPerEU``, ``getLocalMemorySize``,
    ``getEUsPerCU``, ``getMaxWorkGroupsPerCU``; AMDGPUSubtarget.cpp:
    ``getOccupancyWithWorkGroupSizes``), so that ``Resources.waves_per_simd`` agrees with the
    ``; Occupancy:`` line LLVM prints (a test checks that).
    """

    name: str
    wave_size: int
    #: ``inreg`` kernel arguments are preloaded into user SGPRs (gfx90a, gfx940+; docs/targets/amdgpu.md §4.4).
    kernarg_preload: bool
    #: VGPRs per SIMD lane shared by the resident waves (512 unified VGPR+AGPR on gfx90a/gfx942;
    #: 1536 in wave32 on gfx1100, which has the 1.5x register file; 1024 on gfx1030).
    vgprs_per_simd: int
    #: VGPRs are allocated in blocks of this many (8 on gfx90a/942, 24 on gfx1100 wave32,
    #: 16 on gfx1030 wave32).
    vgpr_granule: int
    #: Hardware wave slots per SIMD (8 on gfx90a/gfx942, 16 on gfx10.3+).
    max_waves_per_simd: int
    #: LDS shared by the workgroups resident on one CU (gfx9) or WGP (gfx10+ in WGP mode, the
    #: default: twice the 64 KiB that one workgroup can address).
    lds_bytes_per_cu: int
    #: SIMDs that share that LDS (4 per CU on gfx9, 4 per WGP on gfx10+).
    simds_per_cu: int
    #: Workgroups of more than one wave need a hardware barrier each: 16 per CU, 32 per WGP.
    max_barriers_per_cu: int
    #: Before gfx10 a wave's SGPR count also limits occupancy (``getOccupancyWithNumSGPRs``).
    sgprs_limit_occupancy: bool
    #: Two-wide f32 ALU ops (``v_pk_mul_f32``, ``v_pk_fma_f32``, ``v_pk_add_f32``: gfx90a, gfx940+),
    #: which LLVM selects for ``<2 x float>`` arithmetic, so the SLP vectorizer pays off.
    packed_f32: bool = False


@dataclass(frozen=True)
class NvArch:
    """Facts about one NVIDIA architecture (the shared memory a block may use is the record's
    ``lds_bytes``)."""

    name: str
    #: PTX ISA feature for the TargetMachine. Empty means LLVM's minimum for the arch (PTX 7.0
    #: for sm_80, 7.8 for sm_90, docs/targets/nvptx.md §1), so the PTX loads on the oldest driver that
    #: knows the arch; sm_90a (wgmma, setmaxnreg) needs PTX 8.0.
    ptx_features: str
    #: OCP fp8 conversions, two values an instruction: ``cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32`` and
    #: ``cvt.rn.f16x2.{e4m3x2,e5m2x2}`` (sm_89+ with PTX 7.8; docs/targets/nvptx.md §15).
    fp8_cvt: bool = False
