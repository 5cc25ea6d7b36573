"""NVIDIA targets: sm_80 (A100) and sm_90 (H100), with mma.sync m16n8k16 (docs/targets/nvptx.md §9); sm_90a
(H100 with its arch-specific instructions) adds wgmma."""

from __future__ import annotations

import dataclasses

from tiledsl.targets.arch import NvArch
from tiledsl.targets.matrix import MMA_M16N8K16_BF16, MMA_M16N8K16_F16
from tiledsl.targets.target import Target

_MMA_SYNC = (MMA_M16N8K16_F16, MMA_M16N8K16_BF16)

# No "readlane": a shfl.sync.idx with a constant source lane does the same job.
_NV_CROSS_LANE = frozenset({"shuffle", "shuffle_xor"})

# Shared memory one block may use (opt-in): 227 KiB on sm_90.  For sm_80 we budget 160 KiB, a little
# under the 163 KiB opt-in maximum the CUDA guide gives, so an allocation that fits here fits there.
#
# Shared memory has 32 banks of 4 bytes serving 128 bytes per cycle: a warp's 64-bit access is
# split into two phases of 16 threads, a 128-bit one into four of 8 (CUDA guide, "shared memory").
#
# A thread holds at most 255 32-bit registers on every architecture since sm_35 (CUDA guide,
# "Compute capabilities", technical specifications table; ptxas never allocates more).
SM_80 = Target(name="sm_80", vendor="nvidia", wave_size=32, lds_bytes=163840,
               matrix_instrs=_MMA_SYNC, cross_lane=_NV_CROSS_LANE, has_async_copy=True,
               lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128, max_registers_per_thread=255,
               backend="nvptx", arch="sm_80", nvptx=NvArch("sm_80", ""))
SM_90 = Target(name="sm_90", vendor="nvidia", wave_size=32, lds_bytes=232448,
               matrix_instrs=_MMA_SYNC, cross_lane=_NV_CROSS_LANE, has_async_copy=True,
               lds_banks=32, lds_bank_bytes=4, lds_phase_bytes=128, max_registers_per_thread=255,
               backend="nvptx", arch="sm_90", nvptx=NvArch("sm_90", "", fp8_cvt=True))
# sm_90a: the same machine; its kernels run only on compute capability 9.0 (no forward
# compatibility), and a dot whose operands sit in LDS in core matrices may become wgmma
# (PTX 8.0: wgmma, setmaxnreg).
SM_90A = dataclasses.replace(SM_90, name="sm_90a", has_wgmma=True, arch="sm_90a",
                             nvptx=NvArch("sm_90a", "+ptx80", fp8_cvt=True))
