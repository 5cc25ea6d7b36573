"""Per-kernel resource usage and occupancy, from the code object's metadata note.

Occupancy follows LLVM's own rules, so that it matches the ``; Occupancy:`` comment of the
asm (tests compare the two). Sources, all in llvm/lib/Target/AMDGPU:
- VGPRs — ``Utils/AMDGPUBaseInfo.cpp`` ``getNumWavesPerEUWithNumVGPRs``: below one granule
  the VGPRs do not limit; otherwise ``min(max(total // align_up(vgprs, granule), 1), max_waves)``
  with ``total``/``granule`` = 512/8 on gfx90a/gfx942 (unified VGPR+AGPR file; ``.vgpr_count``
  is the unified count), 1536/24 on gfx1100 wave32 (1.5x register file), 1024/16 on gfx1030
  wave32, and ``max_waves`` = 8 (gfx90a/gfx942) or 16 (gfx10.3+) per SIMD (``getMaxWavesPerEU``).
- SGPRs — gfx8/gfx9 only (``getOccupancyWithNumSGPRs``): <=80 → 10, <=88 → 9, <=100 → 8, else 7.
- LDS and workgroup slots — ``AMDGPUSubtarget.cpp`` ``getOccupancyWithWorkGroupSizes`` for a
  fixed block size: workgroups per CU = min(LDS per CU // LDS per block, wave slots per CU //
  waves per block, 16 barriers per CU (32 per WGP)), and waves per SIMD =
  ceil(workgroups * waves per block / SIMDs per CU). LDS per CU is 64 KiB on gfx9 and
  128 KiB per WGP on gfx10+ (WGP mode); a one-wave block needs no barrier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # target.py imports this module (through compiled.py) at run time
    from tiledsl.targets import AmdArch


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _align_up(n: int, granule: int) -> int:
    return _ceil_div(n, granule) * granule


def occupancy_limits(
    arch: AmdArch, *, vgprs: int, sgprs: int, lds_bytes: int, block_threads: int
) -> dict[str, int]:
    """Waves per SIMD allowed by each resource separately (the occupancy is their minimum)."""
    limits = {"wave slots": arch.max_waves_per_simd}
    if vgprs >= arch.vgpr_granule:
        by_vgprs = arch.vgprs_per_simd // _align_up(vgprs, arch.vgpr_granule)
        limits["vgprs"] = min(max(by_vgprs, 1), arch.max_waves_per_simd)
    if arch.sgprs_limit_occupancy:
        limits["sgprs"] = next((w for cap, w in ((80, 10), (88, 9), (100, 8)) if sgprs <= cap), 7)
    waves_per_block = _ceil_div(block_threads, arch.wave_size)
    slots_per_cu = arch.max_waves_per_simd * arch.simds_per_cu
    blocks_by_slots = slots_per_cu // waves_per_block
    if waves_per_block > 1:
        blocks_by_slots = min(blocks_by_slots, arch.max_barriers_per_cu)
    limits["workgroup slots"] = _waves_per_simd(arch, blocks_by_slots, waves_per_block)
    if lds_bytes > 0:
        blocks_by_lds = arch.lds_bytes_per_cu // lds_bytes
        limits["lds"] = _waves_per_simd(arch, blocks_by_lds, waves_per_block) if blocks_by_lds else 1
    return limits


def _waves_per_simd(arch: AmdArch, blocks_per_cu: int, waves_per_block: int) -> int:
    waves = _ceil_div(blocks_per_cu * waves_per_block, arch.simds_per_cu)
    return min(max(waves, 1), arch.max_waves_per_simd)


@dataclass(frozen=True)
class Resources:
    """What one kernel uses, from the metadata note, and the occupancy that follows.

    ``lds_bytes`` is the static group segment (``.group_segment_fixed_size``);
    ``dynamic_lds_bytes`` is what the launch adds (the caller knows it; 0 with tiledsl's static
    AMD arenas). ``scratch_bytes`` is private memory per lane (spills live there).
    """

    kernel: str
    arch: str
    vgprs: int
    agprs: int
    sgprs: int
    vgpr_spills: int
    sgpr_spills: int
    scratch_bytes: int
    lds_bytes: int
    dynamic_lds_bytes: int
    wave_size: int
    max_flat_workgroup_size: int
    waves_per_simd: int
    occupancy_limiter: str

    @classmethod
    def from_metadata(cls, kernel_md: dict[str, Any], arch: AmdArch, dynamic_lds_bytes: int = 0) -> Resources:
        """Build from one entry of ``read_metadata(elf)["amdhsa.kernels"]``.

        The occupancy assumes blocks of ``.max_flat_workgroup_size`` threads, which tiledsl
        sets to the real block size (``"amdgpu-flat-work-group-size"="1,N"``).
        """
        vgprs, sgprs = kernel_md[".vgpr_count"], kernel_md[".sgpr_count"]
        lds = kernel_md[".group_segment_fixed_size"]
        block = kernel_md[".max_flat_workgroup_size"]
        limits = occupancy_limits(arch, vgprs=vgprs, sgprs=sgprs, lds_bytes=lds + dynamic_lds_bytes,
                                  block_threads=block)
        waves = min(limits.values())
        limiter = next(k for k in ("vgprs", "sgprs", "lds", "workgroup slots", "wave slots")
                       if limits.get(k) == waves and (waves < arch.max_waves_per_simd or k == "wave slots"))
        return cls(
            kernel=kernel_md[".name"],
            arch=arch.name,
            vgprs=vgprs,
            agprs=kernel_md.get(".agpr_count", 0),
            sgprs=sgprs,
            vgpr_spills=kernel_md.get(".vgpr_spill_count", 0),
            sgpr_spills=kernel_md.get(".sgpr_spill_count", 0),
            scratch_bytes=kernel_md.get(".private_segment_fixed_size", 0),
            lds_bytes=lds,
            dynamic_lds_bytes=dynamic_lds_bytes,
            wave_size=kernel_md[".wavefront_size"],
            max_flat_workgroup_size=block,
            waves_per_simd=waves,
            occupancy_limiter=limiter,
        )

    @property
    def spills(self) -> bool:
        """Whether any register was spilled to scratch."""
        return self.vgpr_spills > 0 or self.sgpr_spills > 0

    def table(self) -> str:
        """A small aligned text table for ``tdslc resources``."""
        rows = [
            ("kernel", f"{self.kernel} ({self.arch}, wave{self.wave_size}, block {self.max_flat_workgroup_size})"),
            ("VGPRs", f"{self.vgprs}" + (f" (of which AGPRs {self.agprs})" if self.agprs else "")),
            ("SGPRs", f"{self.sgprs}"),
            ("spills", f"VGPR {self.vgpr_spills}, SGPR {self.sgpr_spills}"),
            ("scratch", f"{self.scratch_bytes} B per lane"),
            ("LDS", f"{self.lds_bytes} B static + {self.dynamic_lds_bytes} B dynamic"),
            ("occupancy", f"{self.waves_per_simd} waves per SIMD (limited by {self.occupancy_limiter})"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
