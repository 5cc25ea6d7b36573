"""The AMDGPU target: every AMD-specific fact tiledsl relies on, with the reason for each.

Section numbers (§N) refer to docs/targets/amdgpu.md, which says how each fact was checked
(by compiling with llvmlite 0.50 / LLVM 22; nothing here has run on AMD hardware). The
facts about each processor (wave size, matrix instructions and their intrinsics, occupancy) are
in its record in ``tiledsl.targets``; this module turns them into LLVM IR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tiledsl.backend_amdgpu.compiled import AmdgpuCompiledModule
from tiledsl.llvm import irgen
from tiledsl.llvm.irgen import F16, F32, I1, I32, VOID, byte_array, call_intrinsic
from tiledsl.llvm.llvm_init import binding, ir
from tiledsl.llvm.target_base import GpuTarget, operand_type
from tiledsl.targets import TARGETS, AmdArch, MatrixInstr, Target

#: The AMDGPU facts of every AMD target record, by name (``tiledsl.targets``).
AMD_ARCHES: Mapping[str, AmdArch] = {t.name: t.amdgpu for t in TARGETS.values() if t.amdgpu is not None}

_AXES = "xyz"


class AmdgpuTarget(GpuTarget):
    """gfx90a / gfx942 (wave64, MFMA), gfx1100 (wave32, WMMA), or any of them FMA-only.

    ``matrix=False`` gives the FMA fallback on any listed arch (``matrix_op`` then raises
    UnsupportedOnTarget); ``matrix=None`` uses the arch's matrix unit when it has one.
    """

    triple = "amdgcn-amd-amdhsa"
    kernel_calling_convention = "amdgpu_kernel"
    # Code objects are shared libraries loaded at any address (§1: "pic" is what was
    # checked; other models were not compared).
    reloc = "pic"

    def __init__(self, target: str | Target = "gfx942", *, matrix: bool | None = None) -> None:
        super().__init__()
        record = target if isinstance(target, Target) else TARGETS.get(target)
        if record is None or record.amdgpu is None:
            raise ValueError(f"unknown AMDGPU arch {target!r}; supported: {', '.join(AMD_ARCHES)}")
        if matrix and not record.matrix_instrs:
            raise ValueError(f"{record.name} has no matrix instructions; use matrix=False")
        if matrix is False:
            record = record.without_matrix()
        self.record = record
        self.arch = record.amdgpu
        self.slp_vectorize = self.arch.packed_f32
        self.name = record.name
        self.cpu = record.arch
        # No "+xnack"/"+sramecc": the code object then says "any" for both and loads in either
        # mode (ELF e_flags 0x53f/0x54c, §1).
        self.features = ""
        self.wave_size = record.wave_size
        self.matrix_instrs: Mapping[str, MatrixInstr] = {i.name: i for i in record.matrix_instrs}

    def _configure_machine(self, tm: binding.TargetMachine) -> None:
        # Verbose asm carries "; NumVgprs:", "; Occupancy:" ... comments, which the resource
        # report cross-checks against the metadata note (llvm-pipeline.md §3.6).
        tm.set_asm_verbosity(True)

    def _add_module_flags(self, module: ir.Module) -> None:
        # LLVM 22 defaults to code object v6, which older ROCm runtimes may reject; v5 is what
        # Triton pins (llvm-pipeline.md §5.2). Behaviour 1 (Error): conflicting values cannot link.
        irgen.add_module_flag(module, 1, "amdhsa_code_object_version", 500)

    def _package(self, *, llvm_ir: str, asm: str, obj: bytes, dynamic_lds_bytes: int) -> AmdgpuCompiledModule:
        return AmdgpuCompiledModule(self.name, llvm_ir, asm, obj, dynamic_lds_bytes, arch=self.arch)

    # ---- kernels and ids -------------------------------------------------------------------
    def _kernel_attributes(self, fn: ir.Function, block_threads: int) -> None:
        # The default maximum is 1024 threads, which caps gfx90a/gfx942 at 128 VGPRs so that
        # 16 waves fit on a CU: a kernel with 160 live floats spills at the default and does not
        # at "1,256" (§4.1). tiledsl knows its block size, so state it.
        irgen.set_string_attribute(fn, "amdgpu-flat-work-group-size", f"1,{block_threads}")
        # The grid is a whole number of blocks (tiledsl launches blocks, never partial ones), so
        # LLVM may drop partial-workgroup handling; Triton always sets it too (§4.2).
        irgen.set_string_attribute(fn, "uniform-work-group-size", "true")
        # IEEE f32 denormals (LLVM's default, stated so the choice is visible): native results
        # then match the NumPy interpreters on tiny values. The usual reason to flush,
        # exp2 becoming one v_exp_f32, does not apply because exp2() uses llvm.amdgcn.exp2,
        # which is one instruction in either mode (§6).
        irgen.set_string_attribute(fn, "denormal-fp-math-f32", "ieee,ieee")
        if self.arch.kernarg_preload:
            # Kernel-argument preload into SGPRs: the body need not wait for the s_load of its
            # arguments. LLVM adds a compatibility prologue that still loads them, so the code
            # also runs on firmware without preload (§4.4); gfx1100 ignores inreg.
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
        ``s_waitcnt lgkmcnt(0)`` (§3.1). The fences add the wait. The MMRA
        ``amdgpu-synchronize-as = local`` says the fences only order LDS, which is what tiledsl's
        ``sync`` means: on gfx90a/gfx942 it is what Triton emits, and on gfx1100 it also drops
        the ``buffer_gl0_inv`` global-cache invalidate that plain fences cost (§3.2).
        """
        mmra = b.module.add_metadata(
            [ir.MetaDataString(b.module, "amdgpu-synchronize-as"), ir.MetaDataString(b.module, "local")]
        )
        irgen.fence(b, "release", "workgroup", {"mmra": mmra})
        call_intrinsic(b, "llvm.amdgcn.s.barrier", VOID, [])
        irgen.fence(b, "acquire", "workgroup", {"mmra": mmra})

    def exp2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # llvm.amdgcn.exp2 is one v_exp_f32 (as Triton's tl.math.exp2); llvm.exp2.f32 with IEEE
        # denormals is 6-8 instructions of range fix-up (§6).
        if x.type == F32:
            return call_intrinsic(b, "llvm.amdgcn.exp2.f32", F32, [x], "exp2")
        if x.type == F16:
            return call_intrinsic(b, "llvm.amdgcn.exp2.f16", F16, [x], "exp2")
        raise TypeError(f"exp2 of {x.type}: f32 or f16 only")

    def math(self, b: ir.IRBuilder, name: str, args: Sequence[ir.Value], result_dtype: str) -> ir.Value:
        # llvm.log.f32 is lowered correctly here (v_log_f32, 1 ulp, with a denormal fix-up and an
        # extended-precision multiply by ln 2: docs/targets/math.md §2). Not sin/cos: LLVM makes
        # them v_sin_f32/v_cos_f32 of x/2π with no range reduction. The rest has no lowering.
        if name == "log":
            return call_intrinsic(b, "llvm.log.f32", F32, list(args), "log")
        return super().math(b, name, args, result_dtype)

    def shuffle_xor(self, b: ir.IRBuilder, v: ir.Value, mask: int) -> ir.Value:
        """Butterfly exchange: DPP ``quad_perm`` within a quad, else ``ds_bpermute``.

        Masks 1-3 stay inside a group of four lanes, where a DPP ``quad_perm`` (0xB1 = xor 1,
        0x4E = xor 2) is a VALU modifier that LLVM can fold into the consumer, e.g.
        ``v_max_f32_dpp`` (§9.3). Larger masks use ``ds_bpermute_b32`` with the byte address
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

        A constant lane is wave-uniform, so the scalar ``v_readlane_b32`` broadcast (§9.1)
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
    # Device scope is syncscope "agent" (the AMDGPU name for it), §14.
    atomic_syncscope = "agent"

    def _atomic_metadata(self, b: ir.IRBuilder, op: str, ty: ir.Type) -> dict[str, ir.MDValue]:
        # Tensors are device memory (hipMalloc: coarse-grained, on this GPU), what HIP's clang
        # assumes of every atomic by default. Without these LLVM must allow for fine-grained or
        # peer memory and turns the f32 atomic add on gfx90a/gfx1100, f32 max/min on gfx1100 and
        # i32 max/min on gfx90a/gfx1100 into compare-and-swap loops (§14).
        empty = b.module.add_metadata([])
        md = {"amdgpu.no.fine.grained.memory": empty, "amdgpu.no.remote.memory": empty}
        if op == "fadd" and ty == F32:
            # gfx90a's global_atomic_add_f32 flushes subnormals, which the language allows of an
            # f32 atomic add (NVIDIA's does too); without this it is a compare-and-swap loop.
            md["amdgpu.ignore.denormal.mode"] = empty
        return md

    def lds_global(self, module: ir.Module, name: str, nbytes: int, align: int) -> ir.GlobalVariable:
        """A *static* LDS arena (``internal addrspace(3) global [n x i8] undef``).

        Static, not dynamic: the code object's metadata then reports the kernel's LDS
        (``.group_segment_fixed_size``, §10.5), so the resource report and occupancy come
        from the binary alone and the launcher passes no size; LLVM also knows the base and its
        alignment. Dynamic LDS would buy nothing here: one workgroup addresses 64 KiB either way.
        """
        self._check_lds_align(align)
        if not 0 < nbytes <= self.record.lds_bytes:
            raise ValueError(f"LDS arena of {nbytes} bytes: {self.name} allows 1..{self.record.lds_bytes}")
        ty = byte_array(nbytes)
        gv = ir.GlobalVariable(module, ty, name, addrspace=self.LDS_ADDRSPACE)
        # LDS cannot be initialised: it must be undef (llvm-pipeline.md §2.4).
        gv.linkage = "internal"
        gv.initializer = ir.Constant(ty, ir.Undefined)
        gv.align = align
        gv.type = self.lds_ptr_type  # opaque whatever llvmlite's pointer mode (llvm_init)
        return gv

    # ---- matrix instructions -----------------------------------------------------------------
    def _emit_matrix(
        self, b: ir.IRBuilder, info: MatrixInstr, a: list[ir.Value], bv: list[ir.Value], c: list[ir.Value]
    ) -> list[ir.Value]:
        av = irgen.pack(b, a, operand_type(info))
        bvec = irgen.pack(b, bv, operand_type(info))
        cv = irgen.pack(b, c, F32)
        args = [av, bvec, cv]
        if info.family == "mfma":
            args += [ir.Constant(I32, 0)] * 3  # cbsz, abid, blgp: no broadcast, no lane swizzle
        d = call_intrinsic(b, info.intrinsic, cv.type, args, info.name)
        return irgen.unpack(b, d)
