"""The AMDGPU target: every AMD-specific fact tiledsl relies on, with the reason for each.

Section numbers refer to shared/reference/llvm-targets/REFERENCE.md, where each fact was
checked by compiling with llvmlite 0.50 / LLVM 22 (nothing here has run on AMD hardware).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tiledsl.backend_amdgpu.compiled import AmdgpuCompiledModule
from tiledsl.llvm import irgen
from tiledsl.llvm.irgen import F16, F32, I1, I32, VOID, byte_array, call_intrinsic
from tiledsl.llvm.llvm_init import binding, ir
from tiledsl.llvm.target_base import MATRIX_INSTRS, GpuTarget, MatrixInstr


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
    #: "mfma" (CDNA), "wmma" (RDNA3) or None (FMA only).
    matrix_family: str | None
    #: ``inreg`` kernel arguments are preloaded into user SGPRs (gfx90a, gfx940+; section 5).
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
    #: LDS one workgroup can address (``getAddressableLocalMemorySize``).
    max_lds_per_block: int = 65536
    #: Two-wide f32 ALU ops (``v_pk_mul_f32``, ``v_pk_fma_f32``, ``v_pk_add_f32``: gfx90a, gfx940+),
    #: which LLVM selects for ``<2 x float>`` arithmetic, so the SLP vectorizer pays off.
    packed_f32: bool = False


AMD_ARCHES: Mapping[str, AmdArch] = {
    a.name: a
    for a in (
        AmdArch("gfx90a", 64, "mfma", True, 512, 8, 8, 65536, 4, 16, True, packed_f32=True),
        AmdArch("gfx942", 64, "mfma", True, 512, 8, 8, 65536, 4, 16, True, packed_f32=True),
        # wave32 is RDNA's native width and the WMMA form we use (section 9.3); the wave64
        # form would need features="+wavefrontsize64".
        AmdArch("gfx1100", 32, "wmma", False, 1536, 24, 16, 131072, 4, 32, False),
        # An RDNA2 part with neither MFMA nor WMMA: the "any AMDGPU" FMA fallback.
        AmdArch("gfx1030", 32, None, False, 1024, 16, 16, 131072, 4, 32, False),
    )
}

#: tiledsl matrix instruction -> (family, LLVM intrinsic). MFMA A/B are <4 x half> or, for bf16,
#: <4 x i16> (the .1k forms; <4 x bfloat> is rejected), C/D <16|4 x float>, then cbsz, abid,
#: blgp = 0 (section 9.1). WMMA takes <16 x half>/<16 x i16> and <8 x float> in LLVM 22's
#: mangling (section 9.3).
_MATRIX_INTRINSICS: Mapping[str, tuple[str, str]] = {
    "mfma_f32_32x32x8_f16": ("mfma", "llvm.amdgcn.mfma.f32.32x32x8f16"),
    "mfma_f32_16x16x16_f16": ("mfma", "llvm.amdgcn.mfma.f32.16x16x16f16"),
    "mfma_f32_32x32x8_bf16": ("mfma", "llvm.amdgcn.mfma.f32.32x32x8bf16.1k"),
    "mfma_f32_16x16x16_bf16": ("mfma", "llvm.amdgcn.mfma.f32.16x16x16bf16.1k"),
    "wmma_f32_16x16x16_f16": ("wmma", "llvm.amdgcn.wmma.f32.16x16x16.f16.v8f32.v16f16"),
    "wmma_f32_16x16x16_bf16": ("wmma", "llvm.amdgcn.wmma.f32.16x16x16.bf16.v8f32.v16i16"),
}

_AXES = "xyz"


class AmdgpuTarget(GpuTarget):
    """gfx90a / gfx942 (wave64, MFMA), gfx1100 (wave32, WMMA), or any of them FMA-only.

    ``matrix=False`` gives the FMA fallback on any listed arch (``matrix_op`` then raises
    UnsupportedOnTarget); ``matrix=None`` uses the arch's matrix unit when it has one.
    """

    triple = "amdgcn-amd-amdhsa"
    kernel_calling_convention = "amdgpu_kernel"
    # Code objects are shared libraries loaded at any address (section 12: "pic" is what was
    # checked; other models were not compared).
    reloc = "pic"

    def __init__(self, arch: str = "gfx942", *, matrix: bool | None = None) -> None:
        super().__init__()
        if arch not in AMD_ARCHES:
            raise ValueError(f"unknown AMDGPU arch {arch!r}; supported: {', '.join(AMD_ARCHES)}")
        self.arch = AMD_ARCHES[arch]
        self.slp_vectorize = self.arch.packed_f32
        if matrix and self.arch.matrix_family is None:
            raise ValueError(f"{arch} has no matrix instructions; use matrix=False")
        use_matrix = self.arch.matrix_family is not None and matrix is not False
        self.name = arch if use_matrix or self.arch.matrix_family is None else f"{arch}-fma"
        self.cpu = arch
        # No "+xnack"/"+sramecc": the code object then says "any" for both and loads in either
        # mode (ELF e_flags 0x53f/0x54c, section 2).
        self.features = ""
        self.wave_size = self.arch.wave_size
        self.matrix_instrs: Mapping[str, MatrixInstr] = {
            name: MATRIX_INSTRS[name]
            for name, (family, _) in _MATRIX_INTRINSICS.items()
            if use_matrix and family == self.arch.matrix_family
        }

    def _configure_machine(self, tm: binding.TargetMachine) -> None:
        # Verbose asm carries "; NumVgprs:", "; Occupancy:" ... comments, which the resource
        # report cross-checks against the metadata note (section 1, "Dump asm comments").
        tm.set_asm_verbosity(True)

    def _add_module_flags(self, module: ir.Module) -> None:
        # LLVM 22 defaults to code object v6, which older ROCm runtimes may reject; v5 is what
        # Triton pins (sections 5 and 10). Behaviour 1 (Error): conflicting values cannot link.
        irgen.add_module_flag(module, 1, "amdhsa_code_object_version", 500)

    def _package(self, *, llvm_ir: str, asm: str, obj: bytes, dynamic_lds_bytes: int) -> AmdgpuCompiledModule:
        return AmdgpuCompiledModule(self.name, llvm_ir, asm, obj, dynamic_lds_bytes, arch=self.arch)

    # ---- kernels and ids -------------------------------------------------------------------
    def _kernel_attributes(self, fn: ir.Function, block_threads: int) -> None:
        # The default maximum is 1024 threads, which caps gfx90a/gfx942 at 128 VGPRs so that
        # 16 waves fit on a CU: a kernel with 160 live floats spills at the default and does not
        # at "1,256" (section 5, t04b). tiledsl knows its block size, so state it.
        irgen.set_string_attribute(fn, "amdgpu-flat-work-group-size", f"1,{block_threads}")
        # The grid is a whole number of blocks (tiledsl launches blocks, never partial ones), so
        # LLVM may drop partial-workgroup handling; Triton always sets it too (section 5).
        irgen.set_string_attribute(fn, "uniform-work-group-size", "true")
        # IEEE f32 denormals (LLVM's default, stated so the choice is visible): native results
        # then match the NumPy interpreters on tiny values. The usual reason to flush,
        # exp2 becoming one v_exp_f32, does not apply because exp2() uses llvm.amdgcn.exp2,
        # which is one instruction in either mode (section 6).
        irgen.set_string_attribute(fn, "denormal-fp-math-f32", "ieee,ieee")
        if self.arch.kernarg_preload:
            # Kernel-argument preload into SGPRs: the body need not wait for the s_load of its
            # arguments. LLVM adds a compatibility prologue that still loads them, so the code
            # also runs on firmware without preload (section 5, t13); gfx1100 ignores inreg.
            for arg in fn.args:
                arg.add_attribute("inreg")

    def thread_id(self, b: ir.IRBuilder, axis: int = 0) -> ir.Value:
        return call_intrinsic(b, f"llvm.amdgcn.workitem.id.{_AXES[axis]}", I32, [], f"tid.{_AXES[axis]}")

    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return call_intrinsic(b, f"llvm.amdgcn.workgroup.id.{_AXES[axis]}", I32, [], f"bid.{_AXES[axis]}")

    def wave_id(self, b: ir.IRBuilder) -> ir.Value:
        # readfirstlane moves the (wave-uniform) wave index into an SGPR, so that branches and
        # addresses derived from it are scalar; LLVM's divergence analysis cannot prove that
        # tid >> log2(wave) is uniform by itself (Triton does the same).
        return call_intrinsic(b, "llvm.amdgcn.readfirstlane.i32", I32, [super().wave_id(b)], "wave.u")

    # ---- synchronisation, math, cross-lane ----------------------------------------------------
    def barrier(self, b: ir.IRBuilder) -> None:
        """Workgroup release fence, ``s_barrier``, acquire fence, each fence limited to LDS.

        ``s.barrier`` alone orders nothing: LLVM then emits ds_write; s_barrier; ds_read with no
        ``s_waitcnt lgkmcnt(0)`` (section 4). The fences add the wait. The MMRA
        ``amdgpu-synchronize-as = local`` says the fences only order LDS, which is what tiledsl's
        ``sync`` means: on gfx90a/gfx942 it is what Triton emits, and on gfx1100 it also drops
        the ``buffer_gl0_inv`` global-cache invalidate that plain fences cost (section 4).
        """
        mmra = b.module.add_metadata(
            [ir.MetaDataString(b.module, "amdgpu-synchronize-as"), ir.MetaDataString(b.module, "local")]
        )
        irgen.fence(b, "release", "workgroup", {"mmra": mmra})
        call_intrinsic(b, "llvm.amdgcn.s.barrier", VOID, [])
        irgen.fence(b, "acquire", "workgroup", {"mmra": mmra})

    def exp2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # llvm.amdgcn.exp2 is one v_exp_f32 (as Triton's tl.math.exp2); llvm.exp2.f32 with IEEE
        # denormals is 6-8 instructions of range fix-up (section 6).
        if x.type == F32:
            return call_intrinsic(b, "llvm.amdgcn.exp2.f32", F32, [x], "exp2")
        if x.type == F16:
            return call_intrinsic(b, "llvm.amdgcn.exp2.f16", F16, [x], "exp2")
        raise TypeError(f"exp2 of {x.type}: f32 or f16 only")

    def shuffle_xor(self, b: ir.IRBuilder, v: ir.Value, mask: int) -> ir.Value:
        """Butterfly exchange: DPP ``quad_perm`` within a quad, else ``ds_bpermute``.

        Masks 1-3 stay inside a group of four lanes, where a DPP ``quad_perm`` (0xB1 = xor 1,
        0x4E = xor 2) is a VALU modifier that LLVM can fold into the consumer, e.g.
        ``v_max_f32_dpp`` (section 7). Larger masks use ``ds_bpermute_b32`` with the byte address
        (lane ^ mask) * 4, which works on every AMD target (within 32 lanes on wave32).
        """
        if not 0 < mask < self.wave_size:
            raise ValueError(f"shuffle_xor mask {mask} outside 1..{self.wave_size - 1}")
        if mask < 4:
            sel = [lane ^ mask for lane in range(4)]
            ctrl = sel[0] | sel[1] << 2 | sel[2] << 4 | sel[3] << 6
            return self._per_word(b, v, lambda w: self._dpp(b, w, ctrl))
        addr = b.shl(b.xor(self.lane_id(b), ir.Constant(I32, mask)), ir.Constant(I32, 2))
        return self._per_word(b, v, lambda w: self._bpermute(b, addr, w))

    def shuffle_idx(self, b: ir.IRBuilder, v: ir.Value, src_lane: ir.Value | int) -> ir.Value:
        """Read lane ``src_lane``: ``v_readlane`` for a constant lane, else ``ds_bpermute``.

        A constant lane is wave-uniform, so the scalar ``v_readlane_b32`` broadcast (section 7)
        needs neither the LDS unit nor an address.
        """
        if isinstance(src_lane, int):
            if not 0 <= src_lane < self.wave_size:
                raise ValueError(f"lane {src_lane} outside 0..{self.wave_size - 1}")
            lane = ir.Constant(I32, src_lane)
            return self._per_word(
                b, v, lambda w: call_intrinsic(b, "llvm.amdgcn.readlane.i32", I32, [w, lane], "readlane")
            )
        addr = b.shl(irgen.as_i32(src_lane), ir.Constant(I32, 2))
        return self._per_word(b, v, lambda w: self._bpermute(b, addr, w))

    def uniform(self, b: ir.IRBuilder, v: ir.Value) -> ir.Value:
        """``v_readfirstlane_b32`` per 32-bit word: the value moves to an SGPR, so what uses it
        (loop bounds, branch conditions, addresses) is scalar code. LLVM drops the instruction
        where it proves ``v`` uniform already (e.g. an ``s_load`` of a uniform address)."""
        if v.type == I1:
            word = call_intrinsic(b, "llvm.amdgcn.readfirstlane.i32", I32, [b.zext(v, I32)], "rfl")
            return b.trunc(word, I1)
        return self._per_word(b, v, lambda w: call_intrinsic(b, "llvm.amdgcn.readfirstlane.i32", I32, [w], "rfl"))

    @staticmethod
    def _per_word(b: ir.IRBuilder, v: ir.Value, move: Callable[[ir.Value], ir.Value]) -> ir.Value:
        # Cross-lane moves are 32 bits wide: split other widths into words and rebuild.
        return irgen.from_lane_words(b, [move(w) for w in irgen.to_lane_words(b, v)], v.type)

    @staticmethod
    def _dpp(b: ir.IRBuilder, word: ir.Value, ctrl: int) -> ir.Value:
        # row_mask = bank_mask = 0xf and bound_ctrl: every lane is written, the old value unused.
        args = [ir.Constant(I32, ir.Undefined), word, ir.Constant(I32, ctrl), ir.Constant(I32, 15),
                ir.Constant(I32, 15), ir.Constant(I1, 1)]
        return call_intrinsic(b, "llvm.amdgcn.update.dpp.i32", I32, args, "dpp")

    @staticmethod
    def _bpermute(b: ir.IRBuilder, byte_addr: ir.Value, word: ir.Value) -> ir.Value:
        return call_intrinsic(b, "llvm.amdgcn.ds.bpermute", I32, [byte_addr, word], "bperm")

    # ---- memory ------------------------------------------------------------------------------
    def lds_global(self, module: ir.Module, name: str, nbytes: int, align: int) -> ir.GlobalVariable:
        """A *static* LDS arena (``internal addrspace(3) global [n x i8] undef``).

        Static, not dynamic: the code object's metadata then reports the kernel's LDS
        (``.group_segment_fixed_size``, section 10), so the resource report and occupancy come
        from the binary alone and the launcher passes no size; LLVM also knows the base and its
        alignment. Dynamic LDS would buy nothing here: one workgroup addresses 64 KiB either way.
        """
        self._check_lds_align(align)
        if not 0 < nbytes <= self.arch.max_lds_per_block:
            raise ValueError(f"LDS arena of {nbytes} bytes: {self.name} allows 1..{self.arch.max_lds_per_block}")
        ty = byte_array(nbytes)
        gv = ir.GlobalVariable(module, ty, name, addrspace=self.LDS_ADDRSPACE)
        # LDS cannot be initialised: it must be undef (section 1, "llvmlite.ir kernels").
        gv.linkage = "internal"
        gv.initializer = ir.Constant(ty, ir.Undefined)
        gv.align = align
        gv.type = self.lds_ptr_type  # opaque whatever llvmlite's pointer mode (llvm_init)
        return gv

    # ---- matrix instructions -----------------------------------------------------------------
    def _emit_matrix(
        self, b: ir.IRBuilder, info: MatrixInstr, a: list[ir.Value], bv: list[ir.Value], c: list[ir.Value]
    ) -> list[ir.Value]:
        family, intrinsic = _MATRIX_INTRINSICS[info.name]
        av = irgen.pack(b, a, info.operand_type)
        bvec = irgen.pack(b, bv, info.operand_type)
        cv = irgen.pack(b, c, F32)
        args = [av, bvec, cv]
        if family == "mfma":
            args += [ir.Constant(I32, 0)] * 3  # cbsz, abid, blgp: no broadcast, no lane swizzle
        d = call_intrinsic(b, intrinsic, cv.type, args, info.name)
        return irgen.unpack(b, d)
