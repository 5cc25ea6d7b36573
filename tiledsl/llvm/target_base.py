"""The interface between the target-independent LLVM lowering and one GPU target.

The lowering from thread IR to LLVM IR is the same code for every target; whatever differs
between AMDGPU and NVPTX (intrinsics, address spaces, attributes, matrix instructions) is a
method of a :class:`GpuTarget`. Methods that emit code take an ``ir.IRBuilder`` positioned where
the code goes and llvmlite values, and return llvmlite values.

Conventions shared by all targets:
- blocks are one-dimensional (``block_threads`` threads along x), so a thread's lane is the low
  bits of its x id and its wave is the rest;
- pointers are opaque (see ``llvm_init``): global tensors are ``ptr addrspace(1)``, LDS is
  ``ptr addrspace(3)``; loads and GEPs must name their element type;
- bf16 values are carried as ``i16`` bit patterns (llvmlite.ir has no ``bfloat`` type, and the
  AMD matrix intrinsics take ``i16`` vectors anyway, docs/targets/amdgpu.md §8).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tiledsl.llvm import fp8, irgen
from tiledsl.llvm.irgen import F16, F32, I16, I32
from tiledsl.llvm.llvm_init import binding, initialize, ir
from tiledsl.llvm.pipeline import CompileError, compile_text, run_in_child
from tiledsl.targets import MATRIX_INSTRS, MatrixInstr


class UnsupportedOnTarget(NotImplementedError):
    """The target has no instruction for this operation (e.g. MFMA on gfx1100)."""

    def __init__(self, target: str, op: str, detail: str = "") -> None:
        msg = f"{op} is not available on target {target}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.target = target
        self.op = op
        self._detail = detail

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # Keeps the exception picklable, so that safe_compile can raise it in the parent.
        return (type(self), (self.target, self.op, self._detail))


def operand_type(instr: MatrixInstr) -> ir.Type:
    """The llvmlite type of one A/B element of ``instr``: ``half``, or ``i16`` holding bf16 bits."""
    return F16 if instr.in_dtype == "f16" else I16


_DYNAMIC_LDS_MD = "tiledsl.dynamic_lds_bytes"
_DYNAMIC_LDS_RE = re.compile(r"^!tiledsl\.dynamic_lds_bytes = !\{!(\d+)\}", re.MULTILINE)


@dataclass(frozen=True)
class CompiledModule:
    """What one compile produces.

    ``llvm_ir`` is the optimised module as LLVM prints it, ``asm`` the target assembly (AMDGPU
    ``.s`` with its metadata block, or PTX), ``object`` the loadable bytes before linking (an
    AMDGPU ELF relocatable; for NVPTX, which has no object emission, the PTX text).
    ``dynamic_lds_bytes`` is the LDS size that must be passed at launch (0 when all LDS is static).
    """

    target: str
    llvm_ir: str
    asm: str
    object: bytes
    dynamic_lds_bytes: int = 0


class GpuTarget(abc.ABC):
    """One GPU target: its facts and the code for every target-specific thread-IR operation."""

    #: A stable name, e.g. ``"gfx942"`` or ``"sm_90"``.
    name: str
    triple: str
    cpu: str
    features: str
    wave_size: int
    kernel_calling_convention: str
    #: The matrix instructions ``matrix_op`` accepts on this target (empty: FMA only).
    matrix_instrs: Mapping[str, MatrixInstr]
    #: Relocation model of the target machine (AMDGPU code objects are position independent).
    reloc: str = "default"
    #: Whether the TargetMachine can emit an object file (NVPTX cannot).
    _emits_object: bool = True
    #: Run the SLP vectorizer in the O3 pipeline: where the target has two-wide f32 ALU ops,
    #: per-register arithmetic pairs up (FA2's acc * alpha: half the instructions).
    slp_vectorize: bool = False
    #: Whether ``ldmatrix(b, lds_ptr, count, trans)`` exists: 8x8 16-bit tiles from LDS, a row
    #: address per lane (NVPTX sm_75+); LDS reads of that shape use it (``tiledsl.llvm.ldmatrix``).
    has_ldmatrix: bool = False
    #: Hopper warpgroup MMA from shared memory (``tiledsl.llvm.wgmma``): NVPTX sm_90a only.
    has_wgmma: bool = False

    GLOBAL_ADDRSPACE = 1
    LDS_ADDRSPACE = 3

    def __init__(self) -> None:
        self._machines: dict[int, binding.TargetMachine] = {}

    # ---- target machine and module -------------------------------------------------------
    def target_machine(self, opt: int = 3) -> binding.TargetMachine:
        """The (cached) LLVM TargetMachine for this target at codegen level ``opt``."""
        if opt not in self._machines:
            initialize()
            tm = binding.Target.from_triple(self.triple).create_target_machine(
                cpu=self.cpu, features=self.features, opt=opt, reloc=self.reloc
            )
            self._configure_machine(tm)
            self._machines[opt] = tm
        return self._machines[opt]

    def _configure_machine(self, tm: binding.TargetMachine) -> None:
        """Hook for per-target TargetMachine settings (asm verbosity ...)."""

    @property
    def data_layout(self) -> str:
        """The data layout string of this target's TargetMachine (docs/targets/llvm-pipeline.md §3.3)."""
        return str(self.target_machine().target_data)

    @property
    def global_ptr_type(self) -> ir.PointerType:
        """Pointer to global memory (tensor arguments)."""
        return ir.PointerType(addrspace=self.GLOBAL_ADDRSPACE)

    @property
    def lds_ptr_type(self) -> ir.PointerType:
        """Pointer to LDS / shared memory."""
        return ir.PointerType(addrspace=self.LDS_ADDRSPACE)

    @property
    def has_matrix(self) -> bool:
        """Whether any matrix instruction is available (else the lowering uses FMA)."""
        return bool(self.matrix_instrs)

    def new_module(self, name: str) -> ir.Module:
        """An empty module with this target's triple, data layout and module flags."""
        module = ir.Module(name)
        module.triple = self.triple
        # Set before optimisation, not left to codegen: the O3 pipeline otherwise runs with
        # 64-bit pointers everywhere and emits worse code (docs/targets/llvm-pipeline.md §3.2).
        module.data_layout = self.data_layout
        self._add_module_flags(module)
        return module

    def _add_module_flags(self, module: ir.Module) -> None:
        """Hook: module flags the target needs (e.g. the AMDGPU code object version)."""

    # ---- kernels and ids -----------------------------------------------------------------
    def declare_kernel(
        self,
        module: ir.Module,
        name: str,
        arg_types: Sequence[ir.Type],
        block_threads: int,
        *,
        arg_names: Sequence[str] | None = None,
        noalias: bool = True,
        readonly_args: Sequence[int] = (),
    ) -> ir.Function:
        """Define a kernel ``name(arg_types...)`` for blocks of exactly ``block_threads`` threads.

        ``noalias`` marks every pointer argument ``noalias``: tiledsl's calling contract is that
        tensor arguments do not overlap. ``readonly_args`` are indices of pointer arguments the
        kernel never writes. The function has no body yet.
        """
        self._check_block(block_threads)
        fn = self._new_kernel(module, name, arg_types, arg_names, noalias, readonly_args)
        self._kernel_attributes(fn, block_threads)
        return fn

    def _kernel_attributes(self, fn: ir.Function, block_threads: int) -> None:
        """Hook: the target's kernel attributes (launch bounds, work-group size, ...); none by default."""

    def _check_block(self, block_threads: int) -> None:
        if not 1 <= block_threads <= 1024:
            raise ValueError(f"block of {block_threads} threads: must be 1..1024")

    def _new_kernel(
        self,
        module: ir.Module,
        name: str,
        arg_types: Sequence[ir.Type],
        arg_names: Sequence[str] | None,
        noalias: bool,
        readonly_args: Sequence[int],
    ) -> ir.Function:
        """The common part of ``declare_kernel``: signature, CC, names, alias attributes."""
        fn = ir.Function(module, ir.FunctionType(irgen.VOID, list(arg_types)), name)
        fn.calling_convention = self.kernel_calling_convention
        for i, arg in enumerate(fn.args):
            if arg_names is not None:
                arg.name = arg_names[i]
            if isinstance(arg.type, ir.PointerType):
                if noalias:
                    arg.add_attribute("noalias")
                if i in readonly_args:
                    irgen.add_arg_attribute(arg, "readonly")
            elif i in readonly_args:
                raise ValueError(f"argument {i} of {name} is not a pointer; it cannot be readonly")
        return fn

    @abc.abstractmethod
    def thread_id(self, b: ir.IRBuilder, axis: int = 0) -> ir.Value:
        """This thread's i32 index within its block along ``axis`` (0 = x)."""

    @abc.abstractmethod
    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        """This block's i32 index within the grid along ``axis`` (0, 1, 2)."""

    def lane_id(self, b: ir.IRBuilder) -> ir.Value:
        """This thread's lane within its wave.

        Blocks are 1-D and waves are cut from consecutive x ids, so the lane is
        ``tid.x & (wave-1)``: one AND whose range LLVM knows, instead of ``mbcnt.lo/hi`` (two
        VALU, docs/targets/amdgpu.md §2) or a special-register read.
        """
        return b.and_(self.thread_id(b), ir.Constant(I32, self.wave_size - 1), name="lane")

    def wave_id(self, b: ir.IRBuilder) -> ir.Value:
        """This thread's wave within its block (``tid.x // wave_size``)."""
        return b.lshr(self.thread_id(b), ir.Constant(I32, self.wave_size.bit_length() - 1), name="wave")

    # ---- synchronisation, math, cross-lane ------------------------------------------------
    @abc.abstractmethod
    def barrier(self, b: ir.IRBuilder) -> None:
        """Block-wide barrier after which every thread sees the LDS writes made before it."""

    def lds_store_fence(self, b: ir.IRBuilder) -> None:
        """After a thread's ordinary LDS stores: whatever makes them visible to matrix units
        that read LDS by themselves (NVPTX sm_90a's wgmma); nothing elsewhere."""

    @abc.abstractmethod
    def exp2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        """Fast 2**x of an f32 (or f16) scalar: one hardware instruction on every target."""

    def log2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        """log2(x) of an f32 scalar.

        ``llvm.log2.f32`` by default (one ``v_log_f32`` plus a denormal fix-up on AMDGPU); a
        target without a lowering for it (NVPTX: "no libcall available for flog2") overrides.
        """
        if x.type != F32:
            raise TypeError(f"log2 of {x.type}: f32 only")
        return irgen.call_intrinsic(b, "llvm.log2.f32", F32, [x], "log2")

    def math(self, b: ir.IRBuilder, name: str, args: Sequence[ir.Value], result_dtype: str) -> ir.Value:
        """The math function ``name`` (``tanh``, ``sigmoid``, ``erf``, ``log``, ``log1p``, ``sin``,
        ``cos``, ``pow``) of f32 scalars, as an f32 that will be rounded to ``result_dtype``.

        By default the instruction sequence of ``tiledsl.llvm.math_f32`` (FMAs, selects, integer
        bit operations and this target's ``exp2``); a target overrides a function it has a better
        lowering for."""
        from tiledsl.llvm import math_f32
        return math_f32.SEQUENCES[name](math_f32.Seq(b, self), *args)

    @abc.abstractmethod
    def shuffle_xor(self, b: ir.IRBuilder, v: ir.Value, mask: int) -> ir.Value:
        """The value ``v`` of lane ``lane ^ mask`` (all lanes of the wave must be active)."""

    # ---- conversions ----------------------------------------------------------------------
    def fp8_to_f32(self, b: ir.IRBuilder, values: Sequence[ir.Value], dtype: str) -> list[ir.Value]:
        """The f32 values (exact) of fp8 bit patterns (``i8``) of ``dtype`` (f8e4m3, f8e5m2).

        The bit-exact integer sequence of ``tiledsl.llvm.fp8`` by default; a target overrides it
        only with instructions that convert OCP's formats exactly."""
        return [fp8.fp8_to_f32(b, v, dtype) for v in values]

    def f32_to_fp8(self, b: ir.IRBuilder, values: Sequence[ir.Value], dtype: str) -> list[ir.Value]:
        """f32 values rounded to fp8 ``dtype`` (to nearest even, saturating to the largest finite
        value, NaN to NaN: ``interp.numerics.round_fp8``), as ``i8`` bit patterns."""
        return [fp8.f32_to_fp8(b, v, dtype) for v in values]

    def uniform(self, b: ir.IRBuilder, v: ir.Value) -> ir.Value:
        """``v``, which every thread holds alike, as the uniform value of the block (thread IR's
        ``uniform``): the value itself, unless the target keeps uniform values apart."""
        return v

    @abc.abstractmethod
    def shuffle_idx(self, b: ir.IRBuilder, v: ir.Value, src_lane: ir.Value | int) -> ir.Value:
        """The value ``v`` of lane ``src_lane`` (all lanes of the wave must be active)."""

    # ---- memory ---------------------------------------------------------------------------
    @abc.abstractmethod
    def lds_global(self, module: ir.Module, name: str, nbytes: int, align: int) -> ir.GlobalVariable:
        """The LDS arena of the module's kernel: ``nbytes`` bytes, aligned to ``align``.

        Address it with byte offsets (``b.gep(arena, [off], source_etype=I8)``). Its ``.type`` is
        the opaque ``ptr addrspace(3)`` on every target.
        """

    # Asynchronous global→LDS copies (thread IR ``async_copy``, ``async_commit``, ``async_wait``):
    # only targets whose tiledsl description has ``has_async_copy`` get them from distribution.
    def async_copy(self, b: ir.IRBuilder, lds_dst: ir.Value, global_src: ir.Value, nbytes: int,
                   src_bytes: ir.Value | int) -> None:
        """Start copying ``nbytes`` (4, 8 or 16) from ``global_src`` to ``lds_dst`` without
        registers; bytes past ``src_bytes`` (``nbytes`` or 0) are written as zeros."""
        raise UnsupportedOnTarget(self.name, "async_copy", "no asynchronous global-to-LDS copies")

    def async_commit(self, b: ir.IRBuilder) -> None:
        """Close the group of async copies issued since the last commit."""
        raise UnsupportedOnTarget(self.name, "async_commit", "no asynchronous global-to-LDS copies")

    def async_wait(self, b: ir.IRBuilder, pending: int) -> None:
        """Wait until at most ``pending`` committed groups of this thread's copies are in flight."""
        raise UnsupportedOnTarget(self.name, "async_wait", "no asynchronous global-to-LDS copies")

    # Atomics on global memory (thread IR ``global_atomic``): relaxed, at device scope.
    #: The ``syncscope`` of device scope in this target's LLVM backend (None: LLVM's default,
    #: the whole system).
    atomic_syncscope: str | None = None

    def atomic_rmw(self, b: ir.IRBuilder, kind: str, dtype: str, ptr: ir.Value, values: Sequence[ir.Value]
                   ) -> list[ir.Value]:
        """Atomically combine ``values`` into global memory at ``ptr`` (``kind``: add, max, min;
        float max/min are maxnum/minnum) and return the old values: one element, or two
        neighbouring f16/bf16 ones as one packed add. ``monotonic`` (relaxed) at
        ``atomic_syncscope``; where the target has no instruction for it, LLVM expands it into a
        compare-and-swap loop. bf16 values are ``i16`` bits, as everywhere in the lowering. An f32
        add may flush subnormal inputs and results to zero (the language allows it: NVIDIA's
        ``atom.add.f32`` on global memory does, docs/targets/nvptx.md §14)."""
        elem = {"f32": F32, "f16": F16, "bf16": irgen.BF16, "i32": I32}[dtype]
        op = {"add": "add", "max": "max", "min": "min"}[kind]
        if dtype != "i32":
            op = "f" + op
        size = {"f32": 4, "f16": 2, "bf16": 2, "i32": 4}[dtype] * len(values)
        vals = [b.bitcast(v, elem) if dtype == "bf16" else v for v in values]
        val = vals[0] if len(vals) == 1 else irgen.pack(b, vals, elem)
        old = irgen.atomic_rmw(b, op, ptr, val, "monotonic", self.atomic_syncscope, size,
                               self._atomic_metadata(b, op, val.type))
        olds = [old] if len(vals) == 1 else irgen.unpack(b, old)
        return [b.bitcast(o, I16) if dtype == "bf16" else o for o in olds]

    def _atomic_metadata(self, b: ir.IRBuilder, op: str, ty: ir.Type) -> dict[str, ir.MDValue]:
        """Hook: metadata an ``atomicrmw op`` of ``ty`` carries (what the target may assume)."""
        return {}

    def _check_lds_align(self, align: int) -> None:
        if align <= 0 or align & (align - 1):
            raise ValueError(f"LDS alignment {align} is not a power of two")

    # ---- matrix instructions --------------------------------------------------------------
    def matrix_info(self, instr_name: str) -> MatrixInstr:
        """The shape of ``instr_name``; raises UnsupportedOnTarget if this target lacks it."""
        if instr_name not in MATRIX_INSTRS:
            raise ValueError(f"unknown matrix instruction {instr_name!r}; known: {', '.join(MATRIX_INSTRS)}")
        if instr_name not in self.matrix_instrs:
            have = ", ".join(self.matrix_instrs) or "none (FMA only)"
            raise UnsupportedOnTarget(self.name, instr_name, f"this target has {have}")
        return self.matrix_instrs[instr_name]

    def matrix_op(
        self,
        b: ir.IRBuilder,
        instr_name: str,
        a_elems: Sequence[ir.Value],
        b_elems: Sequence[ir.Value],
        c_elems: Sequence[ir.Value],
    ) -> list[ir.Value]:
        """D = A·B + C with the target's matrix instruction, on this lane's fragment.

        The lists are this lane's scalars in docs/targets/matrix-layouts.md §1 order: A/B elements are
        ``half`` (f16) or ``i16`` (bf16 bits), C elements are ``float``. Returns D's f32 scalars
        in C's order. The lowering never builds the vector operands itself.
        """
        info = self.matrix_info(instr_name)
        for what, elems, count, ty in (
            ("A", a_elems, info.a_elems, operand_type(info)),
            ("B", b_elems, info.b_elems, operand_type(info)),
            ("C", c_elems, info.c_elems, F32),
        ):
            if len(elems) != count:
                raise ValueError(f"{instr_name}: {what} needs {count} elements per lane, got {len(elems)}")
            bad = [str(e.type) for e in elems if e.type != ty]
            if bad:
                raise TypeError(f"{instr_name}: {what} elements must be {ty}, got {bad[0]}")
        return self._emit_matrix(b, info, list(a_elems), list(b_elems), list(c_elems))

    @abc.abstractmethod
    def _emit_matrix(
        self, b: ir.IRBuilder, info: MatrixInstr, a: list[ir.Value], bv: list[ir.Value], c: list[ir.Value]
    ) -> list[ir.Value]:
        """Target part of ``matrix_op``; the operands are already checked."""

    # ---- compilation ----------------------------------------------------------------------
    def compile(self, module_or_text: ir.Module | str, opt: int = 3) -> CompiledModule:
        """Parse, verify, optimise (O``opt``) and emit asm and object for this target.

        Raises CompileError when LLVM rejects the module. An intrinsic the target cannot select
        aborts the whole process inside LLVM; use :meth:`safe_compile` when that may happen.
        """
        text = str(module_or_text)
        llvm_ir, asm, obj = compile_text(
            self.target_machine(opt), self.triple, text, opt, emit_object=self._emits_object,
            slp=self.slp_vectorize)
        dynamic = _read_dynamic_lds(llvm_ir)
        return self._package(llvm_ir=llvm_ir, asm=asm, obj=obj if obj is not None else asm.encode(),
                             dynamic_lds_bytes=dynamic)

    def _package(self, *, llvm_ir: str, asm: str, obj: bytes, dynamic_lds_bytes: int) -> CompiledModule:
        """Hook: wrap the compile products in the target's CompiledModule class."""
        return CompiledModule(self.name, llvm_ir, asm, obj, dynamic_lds_bytes)

    def safe_compile(self, module_or_text: ir.Module | str, opt: int = 3) -> CompiledModule:
        """:meth:`compile` in a forked child, so that an LLVM abort becomes a Python error.

        Raises CompileError (or its subclass LlvmAbort, with LLVM's message) instead of
        letting ``report_fatal_error`` end the caller (docs/targets/llvm-pipeline.md §4).
        """
        return run_in_child(self.compile, module_or_text, opt)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def record_dynamic_lds(module: ir.Module, nbytes: int) -> None:
    """Note in the module (named metadata) the dynamic LDS size the launch must provide."""
    if _DYNAMIC_LDS_MD in module.namedmetadata:
        raise ValueError("the module already has a dynamic LDS arena; use one arena per module")
    module.add_named_metadata(_DYNAMIC_LDS_MD, [ir.Constant(irgen.I64, nbytes)])


def _read_dynamic_lds(llvm_ir: str) -> int:
    m = _DYNAMIC_LDS_RE.search(llvm_ir)
    if not m:
        return 0
    node = re.search(rf"^!{m.group(1)} = !\{{i64 (\d+)\}}", llvm_ir, re.MULTILINE)
    if node is None:
        raise CompileError(f"malformed !{_DYNAMIC_LDS_MD} in the optimised module")
    return int(node.group(1))


__all__ = [
    "CompiledModule",
    "GpuTarget",
    "UnsupportedOnTarget",
    "operand_type",
    "record_dynamic_lds",
]
