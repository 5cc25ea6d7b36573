"""The target description: the facts about a GPU that the tile level needs, as plain data.

One record per GPU states every fact about it once: what layout assignment, LDS allocation and
the thread interpreter decide with (wave size, LDS capacity, matrix instructions with their lane
formulas and intrinsics, cross-lane operations), and which LLVM backend compiles for it with which
processor facts (``amdgpu`` / ``nvptx``). The thread level and the backends both read the record;
adding a GPU is adding a record (plus intrinsics for a new instruction family).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from tiledsl.ir.types import FP8_DTYPES
from tiledsl.targets.arch import AmdArch, NvArch
from tiledsl.targets.matrix import MatrixInstr

Vendor = Literal["amd", "nvidia", "generic"]
Backend = Literal["amdgpu", "nvptx"]

# The names used in ``Target.cross_lane``.  "shuffle" is a pull from an arbitrary lane (NVIDIA
# shfl.sync.idx/bfly, AMD ds_bpermute); "shuffle_xor" a dedicated butterfly (shfl.sync.bfly); the
# others are the AMD instructions of docs/targets/amdgpu.md §9.
CROSS_LANE_OPS = frozenset({"shuffle", "shuffle_xor", "dpp", "swizzle", "permlanex16", "permlane64", "readlane"})


@dataclass(frozen=True)
class Target:
    """One GPU target as seen by the tile level.

    ``matrix_instrs`` is ordered by preference: for each input dtype the first instruction taking
    it is the default.  ``lds_bytes`` is what one block may allocate.

    LDS banks, as the choice of LDS storage layouts models them: ``lds_banks`` banks of
    ``lds_bank_bytes`` each serve one ``lds_bank_bytes`` word per cycle; a wave's access is
    served in phases of ``lds_phase_bytes`` (the lanes whose accesses add up to that many
    bytes), and two different words of one bank in one phase take two cycles.
    """

    name: str
    vendor: Vendor
    wave_size: int
    lds_bytes: int
    #: The most threads one block may have: 1024 on every target here (CUDA guide, "Compute
    #: capabilities" table; the AMDGPU ``amdgpu-flat-work-group-size`` maximum).
    max_threads_per_block: int = 1024
    #: The 32-bit registers one thread can hold: what a register tile spread over the block's
    #: threads must fit in (beyond it, everything spills). Each record says where its number
    #: comes from.
    max_registers_per_thread: int = 255
    matrix_instrs: tuple[MatrixInstr, ...] = ()
    cross_lane: frozenset[str] = field(default_factory=frozenset)
    has_async_copy: bool = False
    #: Warpgroup matrix instructions that read operands from LDS through descriptors (Hopper
    #: ``wgmma``, sm_90a): 16-bit tiles that only feed matrix instructions are stored in 8x8 core
    #: matrices (``LdsStorage.cores``), the form those descriptors address.
    has_wgmma: bool = False
    #: What an ``mma`` layout that does not say ``swap=`` becomes. True where the instruction's
    #: accumulator puts a row's elements in different lanes (MFMA, WMMA): swapped, each lane holds
    #: part of a row, so row reductions stay mostly in registers, the accumulator of one dot is the
    #: next dot's B operand without an LDS round trip, and rows are stored with vector stores
    #: (docs/targets/matrix-layouts.md §7.1).
    mma_swap: bool = False
    lds_banks: int = 32
    lds_bank_bytes: int = 4
    lds_phase_bytes: int = 128
    #: The LLVM backend that compiles for this target; None: the thread level only (``generic``).
    backend: Backend | None = None
    #: The processor LLVM compiles for (its ``-mcpu``); the record's name without a variant suffix.
    arch: str = ""
    #: AMDGPU code generation and occupancy facts (``backend == "amdgpu"``).
    amdgpu: AmdArch | None = None
    #: NVPTX facts (``backend == "nvptx"``).
    nvptx: NvArch | None = None
    #: The dtypes whose atomic add the target does on two neighbouring elements in one instruction
    #: (AMD ``global_atomic_pk_add_f16``/``_bf16``): distribution pairs the registers of an
    #: ``atomic_add`` of them where they are contiguous and aligned. Elsewhere one atomic per
    #: element, native or a compare-and-swap loop from LLVM (docs/targets/amdgpu.md §14,
    #: docs/targets/nvptx.md §14).
    packed_atomic_add: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = self.cross_lane - CROSS_LANE_OPS
        if unknown:
            raise ValueError(f"target {self.name}: unknown cross-lane ops {sorted(unknown)}")
        for instr in self.matrix_instrs:
            if instr.lanes != self.wave_size:
                raise ValueError(f"target {self.name}: {instr.name} runs in {instr.lanes} lanes, "
                                 f"the wave has {self.wave_size}")

        if (self.backend == "amdgpu") != (self.amdgpu is not None) or \
                (self.backend == "nvptx") != (self.nvptx is not None):
            raise ValueError(f"target {self.name}: the {self.backend} backend needs its arch facts, and only those")
        if self.backend is not None and not self.arch:
            raise ValueError(f"target {self.name}: a native target names its processor (arch=)")
        facts = self.amdgpu or self.nvptx
        if facts is not None and facts.name != self.arch:
            raise ValueError(f"target {self.name}: its {self.backend} facts are for {facts.name}, not {self.arch}")
        if self.amdgpu is not None and self.amdgpu.wave_size != self.wave_size:
            raise ValueError(f"target {self.name}: wave{self.wave_size} but its AMDGPU facts say "
                             f"wave{self.amdgpu.wave_size}")

    def __str__(self) -> str:
        return self.name

    @property
    def native(self) -> bool:
        """Whether an LLVM backend compiles for this target."""
        return self.backend is not None

    def without_matrix(self) -> Target:
        """The same machine computing ``dot`` with FMAs (``NAME-fma``): no matrix instructions."""
        if not self.matrix_instrs:
            return self
        return dataclasses.replace(self, name=f"{self.name}-fma", matrix_instrs=(), has_wgmma=False)

    def default_matrix_instr(self, a_dtype: str) -> MatrixInstr | None:
        """The preferred matrix instruction whose A/B operands are ``a_dtype``, or None."""
        for instr in self.matrix_instrs:
            if instr.in_dtype == a_dtype:
                return instr
        return None

    def matrix_variant(self, instr: MatrixInstr, dtype: str) -> MatrixInstr | None:
        """The instruction of ``instr``'s family and m x n that takes ``dtype`` operands, or None.

        Variants of one m x n share the accumulator's lane layout (docs/targets/matrix-layouts.md);
        their k and operand fragments differ with the element size (an fp8 or i8 variant holds
        twice the k of the 16-bit one in the same registers). fp8 without an instruction of its own
        takes the f16 one: every e4m3 and e5m2 value is an f16, so the lowering widens the operands
        exactly and the dot's result is the same.
        """
        if instr.in_dtype == dtype:
            return instr
        for other in self.matrix_instrs:
            if other.in_dtype == dtype and (other.family, other.m, other.n) == (instr.family, instr.m, instr.n):
                return other
        if dtype in FP8_DTYPES:
            return self.matrix_variant(instr, "f16")
        return None

    def matrix_instr(self, name: str) -> MatrixInstr | None:
        """The matrix instruction called ``name`` on this target, or None."""
        for instr in self.matrix_instrs:
            if instr.name == name:
                return instr
        return None
