"""The NVPTX target (sm_80, sm_90, sm_90a): every NVIDIA-specific fact tiledsl relies on.

Section numbers (§N) refer to docs/targets/nvptx.md, which says how each fact was checked.
mma.sync m16n8k16 and its fragment layout were run on an H100; the rest was checked by compiling.

Shared-memory pointers are 32-bit (``-nvptx-short-ptr``, set once per process in
``tiledsl.llvm.llvm_init``; the data layout then says p3:32:32), as Triton and nvcc use them:
with 64-bit ones every LDS address was 64-bit arithmetic, and the D=128 attention kernel spilled
(bench/NOTES.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tiledsl.backend_nvptx.compiled import NvptxCompiledModule
from tiledsl.llvm import irgen
from tiledsl.llvm.irgen import F16, F32, I8, I16, I32, VOID, byte_array, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.target_base import GpuTarget, record_dynamic_lds
from tiledsl.targets import TARGETS, MatrixInstr, NvArch, Target

#: The NVPTX facts of every NVIDIA target record, by name (``tiledsl.targets``).
NV_ARCHES: Mapping[str, NvArch] = {t.name: t.nvptx for t in TARGETS.values() if t.nvptx is not None}

_AXES = "xyz"
#: The PTX names of the fp8 dtypes (OCP E4M3FN and E5M2, as tiledsl's).
_FP8_NAME = {"f8e4m3": "e4m3", "f8e5m2": "e5m2"}
_FULL_MASK = -1  # every lane of the warp takes part in a .sync shuffle
_LAUNCH_BOUNDS = ("reqntid", "maxntid")


class NvptxTarget(GpuTarget):
    """sm_80 / sm_90 (/ sm_90a): warps of 32, mma.sync m16n8k16.

    ``launch_bound`` picks the kernel attribute that states the block size: ``"reqntid"`` (the
    block is exactly that size, as tiledsl launches it; Triton uses it on sm_90) or
    ``"maxntid"`` (at most that size). PTX does not allow both on one kernel.
    """

    triple = "nvptx64-nvidia-cuda"
    kernel_calling_convention = "ptx_kernel"
    # NVPTX has no object emission; the "object" is the PTX text (see CompiledModule).
    _emits_object = False
    has_ldmatrix = True         # sm_75+; every arch here is sm_80 or later

    def __init__(self, target: str | Target = "sm_90", *, launch_bound: str = "reqntid") -> None:
        super().__init__()
        record = target if isinstance(target, Target) else TARGETS.get(target)
        if record is None or record.nvptx is None:
            raise ValueError(f"unknown NVPTX arch {target!r}; supported: {', '.join(NV_ARCHES)}")
        if launch_bound not in _LAUNCH_BOUNDS:
            raise ValueError(f"launch_bound must be one of {_LAUNCH_BOUNDS}, not {launch_bound!r}")
        self.record = record
        self.arch = record.nvptx
        self.name = record.name
        self.cpu = record.arch
        self.features = self.arch.ptx_features
        self.wave_size = record.wave_size
        self.launch_bound = launch_bound
        self.has_wgmma = record.has_wgmma
        self.matrix_instrs: Mapping[str, MatrixInstr] = {i.name: i for i in record.matrix_instrs}

    def _package(self, *, llvm_ir: str, asm: str, obj: bytes, dynamic_lds_bytes: int) -> NvptxCompiledModule:
        return NvptxCompiledModule(self.name, llvm_ir, asm, obj, dynamic_lds_bytes)

    # ---- kernels and ids -------------------------------------------------------------------
    def _kernel_attributes(self, fn: ir.Function, block_threads: int) -> None:
        # Kernel-ness is the ptx_kernel calling convention in LLVM 22 (set by _new_kernel);
        # noalias + readonly lets loads become ld.global.nc (§7.1).
        # Launch bounds as *function attributes*: the legacy !nvvm.annotations form is still
        # upgraded, but its key "maxntid" (without x/y/z) is silently dropped (§3).
        # ptxas uses the bound to budget registers for that many threads.
        irgen.set_string_attribute(fn, f"nvvm.{self.launch_bound}", str(block_threads))

    def thread_id(self, b: ir.IRBuilder, axis: int = 0) -> ir.Value:
        return call_intrinsic(b, f"llvm.nvvm.read.ptx.sreg.tid.{_AXES[axis]}", I32, [], f"tid.{_AXES[axis]}")

    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return call_intrinsic(b, f"llvm.nvvm.read.ptx.sreg.ctaid.{_AXES[axis]}", I32, [], f"bid.{_AXES[axis]}")

    # wave_id: the base class's tid >> 5. There are no scalar registers to move it into, so the
    # AMD readfirstlane has no NVIDIA counterpart worth emitting.

    # ---- synchronisation, math, cross-lane ----------------------------------------------------
    def barrier(self, b: ir.IRBuilder) -> None:
        """``bar.sync 0``, as Triton emits it (``barrier.cta.sync.aligned.all``).

        No fence is emitted: bar.sync orders shared-memory accesses among the threads of the
        CTA by PTX semantics (§5; GPU tests exercise it, §13). Stores that wgmma reads
        next also need ``lds_store_fence``.
        """
        call_intrinsic(b, "llvm.nvvm.barrier.cta.sync.aligned.all", VOID, [ir.Constant(I32, 0)])

    def lds_store_fence(self, b: ir.IRBuilder) -> None:
        """On sm_90a, after ordinary stores to shared memory: ``fence.proxy.async.shared::cta``
        makes them visible to the async proxy, through which ``wgmma`` reads its operands (the
        PTX memory model asks it of each writing thread before the barrier). Copies by cp.async
        get none, as in Triton's fence placement for Hopper; elsewhere nothing."""
        if self.has_wgmma:
            irgen.inline_asm(b, "fence.proxy.async.shared::cta;", "", VOID, [])

    def exp2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # ex2.approx.ftz.f32: one MUFU.EX2. Without .ftz (what llvm.exp2.f32 becomes, §6)
        # ptxas adds a range test and two multiplies around it to produce subnormal results;
        # ex2.approx is already ~2 ulp off, and .ftz changes only results below 2^-126, by less
        # than 2^-126. Never llvm.exp.f32, which has no libcall on NVPTX and aborts.
        if x.type == F32:
            return self.ex2_approx(b, x, ftz=True)
        if x.type == F16:
            return call_intrinsic(b, "llvm.exp2.f16", F16, [x], "exp2")
        raise TypeError(f"exp2 of {x.type}: f32 or f16 only")

    def log2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        # llvm.log2.f32 aborts on NVPTX ("no libcall available for flog2"); lg2.approx.f32 has a
        # relative error of 2^-22 and keeps subnormal inputs (no .ftz).
        if x.type != F32:
            raise TypeError(f"log2 of {x.type}: f32 only")
        return call_intrinsic(b, "llvm.nvvm.lg2.approx.f", F32, [x], "lg2")

    def math(self, b: ir.IRBuilder, name: str, args: Sequence[ir.Value], result_dtype: str) -> ir.Value:
        # tanh.approx.f32 (sm_75+, one MUFU.TANH) where the result is f16/bf16: its relative error
        # (about 2^-16.5, docs/targets/math.md §3) is far below their half ulp (2^-11, 2^-8).
        # f32 results take the sequence (2 ulp). Every other function: the sequences, since
        # llvm.log/sin/cos/pow/tanh.f32 abort here (§2).
        if name == "tanh" and result_dtype in ("f16", "bf16"):
            return call_intrinsic(b, "llvm.nvvm.tanh.approx.f32", F32, list(args), "tanh")
        return super().math(b, name, args, result_dtype)

    def ex2_approx(self, b: ir.IRBuilder, x: ir.Value, ftz: bool = False) -> ir.Value:
        """``ex2.approx[.ftz].f32`` by name, for code that wants the flush-to-zero form."""
        name = "llvm.nvvm.ex2.approx.ftz.f32" if ftz else "llvm.nvvm.ex2.approx.f32"
        return call_intrinsic(b, name, F32, [x], "ex2")

    def shuffle_xor(self, b: ir.IRBuilder, v: ir.Value, mask: int) -> ir.Value:
        if not 0 < mask < self.wave_size:
            raise ValueError(f"shuffle_xor mask {mask} outside 1..31")
        return self._shfl(b, "bfly", v, ir.Constant(I32, mask))

    def shuffle_idx(self, b: ir.IRBuilder, v: ir.Value, src_lane: ir.Value | int) -> ir.Value:
        if isinstance(src_lane, int) and not 0 <= src_lane < self.wave_size:
            raise ValueError(f"lane {src_lane} outside 0..31")
        return self._shfl(b, "idx", v, irgen.as_i32(src_lane))

    def _shfl(self, b: ir.IRBuilder, mode: str, v: ir.Value, operand: ir.Value) -> ir.Value:
        # shfl.sync.<mode>.b32 with member mask -1 (the whole warp) and c = 31: clamp to the
        # warp, no sub-warp segments (§4).
        def move(word: ir.Value) -> ir.Value:
            args = [ir.Constant(I32, _FULL_MASK), word, operand, ir.Constant(I32, 31)]
            suffix = "f32" if word.type == F32 else "i32"
            return call_intrinsic(b, f"llvm.nvvm.shfl.sync.{mode}.{suffix}", word.type, args, "shfl")

        if v.type == F32:
            return move(v)
        return irgen.from_lane_words(b, [move(w) for w in irgen.to_lane_words(b, v)], v.type)

    # ---- conversions -------------------------------------------------------------------------
    def f32_to_fp8(self, b: ir.IRBuilder, values: Sequence[ir.Value], dtype: str) -> list[ir.Value]:
        """``cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32`` per pair (sm_89+; §14): round to nearest
        even, saturate to the largest finite value (±inf too), NaN to NaN: exactly tiledsl's
        rule. The first operand goes to the high byte. Elsewhere the software sequence."""
        if not self.arch.fp8_cvt:
            return super().f32_to_fp8(b, values, dtype)
        name = f"llvm.nvvm.ff.to.{_FP8_NAME[dtype]}x2.rn"
        out: list[ir.Value] = []
        for i in range(0, len(values), 2):
            pair = values[i:i + 2]
            word = call_intrinsic(b, name, I16, [pair[-1], pair[0]], "cvt.fp8")
            out.append(b.trunc(word, I8))
            if len(pair) == 2:
                out.append(b.trunc(b.lshr(word, ir.Constant(I16, 8)), I8))
        return out

    def fp8_to_f32(self, b: ir.IRBuilder, values: Sequence[ir.Value], dtype: str) -> list[ir.Value]:
        """``cvt.rn.f16x2.{e4m3x2,e5m2x2}`` per pair (exact: every fp8 value is an f16), then
        ``cvt.f32.f16``. Element 0 of the ``<2 x half>`` is the low byte's (§14)."""
        if not self.arch.fp8_cvt:
            return super().fp8_to_f32(b, values, dtype)
        name = f"llvm.nvvm.{_FP8_NAME[dtype]}x2.to.f16x2.rn"
        out: list[ir.Value] = []
        for i in range(0, len(values), 2):
            pair = values[i:i + 2]
            word = b.zext(pair[0], I16)
            if len(pair) == 2:
                word = b.or_(word, b.shl(b.zext(pair[1], I16), ir.Constant(I16, 8)))
            halves = call_intrinsic(b, name, ir.VectorType(F16, 2), [word], "cvt.f16x2")
            out += [b.fpext(h, F32) for h in irgen.unpack(b, halves)[:len(pair)]]
        return out

    # ---- memory ------------------------------------------------------------------------------
    # Device scope is syncscope "device": PTX .gpu, as in the compare-and-swap loops LLVM expands
    # (the default scope, system, gives .sys there), §14.
    atomic_syncscope = "device"

    def lds_global(self, module: ir.Module, name: str, nbytes: int, align: int) -> ir.GlobalVariable:
        """A *dynamic* shared-memory arena (``.extern .shared .align A .b8 name[]``).

        Dynamic because static ``.shared`` is capped at 48 KiB per block, while FA2 tiles
        (e.g. Q 128x128 + K, V 64x128 in f16 = 64 KiB) need more; Triton uses dynamic shared
        memory for the same reason. The size is recorded in the module and comes back as
        ``CompiledModule.dynamic_lds_bytes``, which the launch must pass (and, above 48 KiB,
        opt into with cuFuncSetAttribute). All dynamic arrays of a kernel start at the same
        address, so a module has one arena.
        """
        self._check_lds_align(align)
        if not 0 < nbytes <= self.record.lds_bytes:
            raise ValueError(f"shared arena of {nbytes} bytes: {self.name} allows 1..{self.record.lds_bytes}")
        record_dynamic_lds(module, nbytes)
        gv = ir.GlobalVariable(module, byte_array(0), name, addrspace=self.LDS_ADDRSPACE)
        gv.linkage = "external"
        gv.align = align
        gv.type = self.lds_ptr_type  # opaque whatever llvmlite's pointer mode (llvm_init)
        return gv

    def ldmatrix(self, b: ir.IRBuilder, lds_ptr: ir.Value, count: int = 4, trans: bool = False) -> list[ir.Value]:
        """``ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16``: ``count`` 8x8 b16 tiles.

        Returns ``count`` i32 registers, each holding two b16 elements (low half first). Lanes
        8i..8i+7 supply the row addresses of tile i (§10; the thread-to-row mapping
        is checked on an H100 by tests/backend/test_nvptx_gpu.py).
        """
        if count not in (1, 2, 4):
            raise ValueError(f"ldmatrix loads 1, 2 or 4 tiles, not {count}")
        name = f"llvm.nvvm.ldmatrix.sync.aligned.m8n8.x{count}{'.trans' if trans else ''}.b16.p3"
        ret = I32 if count == 1 else ir.LiteralStructType([I32] * count)
        r = call_intrinsic(b, name, ret, [lds_ptr], "ldm")
        return [r] if count == 1 else [b.extract_value(r, i) for i in range(count)]

    def cp_async_copy16(self, b: ir.IRBuilder, lds_dst: ir.Value, global_src: ir.Value) -> None:
        """Asynchronous 16-byte global→shared copy (``cp.async.cg.shared.global``, sm_80+).

        ``.cg`` caches in L2 only: tiles are streamed once into shared memory, so L1 would only
        be polluted (and .cg is the only form that copies 16 bytes).
        """
        call_intrinsic(b, "llvm.nvvm.cp.async.cg.shared.global.16", VOID, [lds_dst, global_src])

    def cp_async_commit(self, b: ir.IRBuilder) -> None:
        """Close the current group of cp.async copies (``cp.async.commit_group``)."""
        call_intrinsic(b, "llvm.nvvm.cp.async.commit.group", VOID, [])

    def cp_async_wait(self, b: ir.IRBuilder, pending: int = 0) -> None:
        """Wait until at most ``pending`` committed groups are in flight (``cp.async.wait_group``).

        Only this thread's copies are waited for; a barrier must follow before other threads
        read the data.
        """
        call_intrinsic(b, "llvm.nvvm.cp.async.wait.group", VOID, [ir.Constant(I32, pending)])

    def async_copy(self, b: ir.IRBuilder, lds_dst: ir.Value, global_src: ir.Value, nbytes: int,
                   src_bytes: ir.Value | int) -> None:
        """``cp.async.{cg,ca}.shared.global [dst], [src], nbytes[, src_bytes]`` (sm_80+).

        16 bytes go ``.cg`` (L2 only: a tile is streamed into shared memory once, and .cg takes
        only 16); 4 and 8 go ``.ca``. With a run-time ``src_bytes`` the ``.s`` form copies that
        many bytes and zero-fills the rest: masked-off rows pass 0 and read nothing.
        """
        if nbytes not in (4, 8, 16):
            raise ValueError(f"cp.async copies 4, 8 or 16 bytes, not {nbytes}")
        name = f"llvm.nvvm.cp.async.{'cg' if nbytes == 16 else 'ca'}.shared.global.{nbytes}"
        if isinstance(src_bytes, int):
            if src_bytes != nbytes:
                raise ValueError("a constant src_bytes must be the whole copy")
            call_intrinsic(b, name, VOID, [lds_dst, global_src])
            return
        call_intrinsic(b, name + ".s", VOID, [lds_dst, global_src, src_bytes])

    def async_commit(self, b: ir.IRBuilder) -> None:
        self.cp_async_commit(b)

    def async_wait(self, b: ir.IRBuilder, pending: int) -> None:
        self.cp_async_wait(b, pending)

    # ---- matrix instructions -----------------------------------------------------------------
    def _emit_matrix(
        self, b: ir.IRBuilder, info: MatrixInstr, a: list[ir.Value], bv: list[ir.Value], c: list[ir.Value]
    ) -> list[ir.Value]:
        regs = [self._pair(b, elems[i], elems[i + 1], info) for elems in (a, bv) for i in range(0, len(elems), 2)]
        d = call_intrinsic(b, info.intrinsic, ir.LiteralStructType([F32] * 4), regs + c, info.name)
        return [b.extract_value(d, i) for i in range(4)]

    @staticmethod
    def _pair(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, info: MatrixInstr) -> ir.Value:
        # Element 2j goes in the low 16 bits of register j (§9); a 2-vector's element 0
        # is its low half, so pack as a vector (and bitcast to i32 for bf16).
        if info.in_dtype == "f16":
            return irgen.pack(b, [lo, hi], F16)
        return b.bitcast(irgen.pack(b, [lo, hi], I16), I32)
