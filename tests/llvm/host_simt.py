"""Running lowered kernels on the CPU, to test the lowering without a GPU.

``HostSimtTarget`` is a ``GpuTarget`` for the host: every GPU thread of a block is an OS thread
running the same JIT-compiled function, which takes the thread and block ids as hidden
arguments after the kernel ABI's. ``barrier`` is ``pthread_barrier_wait``; a shuffle goes
through a shared exchange buffer between two barriers; the LDS arena is a global shared by
the threads of the block (blocks run one after another). There are no matrix instructions,
so it runs the thread IR of the ``generic`` target (wave32, FMA fallback). Asynchronous copies
(sm_80/sm_90 thread IR) land at once, which is one of the behaviours cp.async allows.

ctypes releases the GIL during a foreign call, so the threads really run concurrently and
wait for each other in the barrier. A module with a unique name rather than conftest.py, so
that ``from host_simt import ...`` cannot pick up another test folder's conftest.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tiledsl.llvm import binding, initialize, ir
from tiledsl.llvm.irgen import F16, F32, I16, I32, I64, VOID, byte_array, call_intrinsic, intrinsic
from tiledsl.llvm.lower import LoweredKernel
from tiledsl.llvm.target_base import GpuTarget
from tiledsl.targets import MatrixInstr, get_target

_HIDDEN = 5  # tid, block x, y, z, barrier
_LIBC = ctypes.CDLL(None)
_BARRIER_BYTES = 128  # sizeof(pthread_barrier_t) is 32 on x86-64 glibc; leave room


class HostSimtTarget(GpuTarget):
    """The host CPU as a SIMT machine of ``wave_size`` lanes (see the module docstring).

    ``like``: the tiledsl target whose matrix instructions to emulate (its thread IR can then
    run here): each instruction becomes a wave-wide exchange of the fragments through memory
    and, per lane, the dot products its C registers need, found from the instruction's lane
    layout (``tiledsl.targets.matrix``). That checks which registers the lowering passes to
    which instruction, though not the real intrinsics' operand packing.
    """

    cpu = ""
    features = ""
    kernel_calling_convention = "ccc"
    GLOBAL_ADDRSPACE = 0
    LDS_ADDRSPACE = 0

    def __init__(self, like: str = "generic") -> None:
        super().__init__()
        initialize()
        binding.initialize_native_target()
        binding.initialize_native_asmprinter()
        self.triple = binding.get_process_triple()
        self.like = get_target(like)
        self.name = f"host-{like}"
        self.wave_size = self.like.wave_size
        self.lane_instrs = {i.name: i for i in self.like.matrix_instrs}
        self.matrix_instrs: Mapping[str, MatrixInstr] = dict(self.lane_instrs)

    def declare_kernel(self, module: ir.Module, name: str, arg_types: Sequence[ir.Type], block_threads: int, *,
                       arg_names: Sequence[str] | None = None, noalias: bool = True,
                       readonly_args: Sequence[int] = ()) -> ir.Function:
        hidden = [I32, I32, I32, I32, ir.PointerType()]
        fn = self._new_kernel(module, name, [*arg_types, *hidden], None, noalias, readonly_args)
        # Not internal: the barrier (an external call) may then read and write it, so LLVM keeps
        # the exchanges on either side of it.
        xchg = ir.GlobalVariable(module, ir.ArrayType(I64, block_threads), "xchg")
        xchg.initializer = ir.Constant(xchg.value_type, None)
        xchg.type = ir.PointerType()  # opaque, as the targets' LDS globals (llvm_init)
        for buf in ("mma_a", "mma_b", "mma_c"):
            gv = ir.GlobalVariable(module, ir.ArrayType(F32, block_threads * _MAX_FRAGMENT), buf)
            gv.initializer = ir.Constant(gv.value_type, None)
            gv.type = ir.PointerType()
        return fn

    def _hidden(self, b: ir.IRBuilder, i: int) -> ir.Value:
        return b.function.args[len(b.function.args) - _HIDDEN + i]

    def thread_id(self, b: ir.IRBuilder, axis: int = 0) -> ir.Value:
        return self._hidden(b, 0)

    def block_id(self, b: ir.IRBuilder, axis: int) -> ir.Value:
        return self._hidden(b, 1 + axis)

    def barrier(self, b: ir.IRBuilder) -> None:
        fn = intrinsic(b.module, "pthread_barrier_wait", I32, [ir.PointerType()])
        b.call(fn, [self._hidden(b, 4)])

    def exp2(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        return call_intrinsic(b, "llvm.exp2.f32", F32, [x])

    def shuffle_xor(self, b: ir.IRBuilder, v: ir.Value, mask: int) -> ir.Value:
        return self.shuffle_idx(b, v, b.xor(self.thread_id(b), ir.Constant(I32, mask)))

    def shuffle_idx(self, b: ir.IRBuilder, v: ir.Value, src_lane: ir.Value | int) -> ir.Value:
        xchg = b.module.get_global("xchg")
        tid = self.thread_id(b)
        if isinstance(src_lane, int):
            src_lane = b.or_(b.and_(tid, ir.Constant(I32, ~(self.wave_size - 1))), ir.Constant(I32, src_lane))
        bits = {F32: I32, F16: I16}.get(v.type, v.type)
        word = b.zext(b.bitcast(v, bits) if bits != v.type else v, I64) if bits != I64 else v
        b.store(word, b.gep(xchg, [ir.Constant(I32, 0), tid], source_etype=xchg.value_type))
        self.barrier(b)
        got = b.load(b.gep(xchg, [ir.Constant(I32, 0), src_lane], source_etype=xchg.value_type), typ=I64)
        self.barrier(b)
        narrow = b.trunc(got, bits) if bits != I64 else got
        return b.bitcast(narrow, v.type) if bits != v.type else narrow

    def lds_global(self, module: ir.Module, name: str, nbytes: int, align: int) -> ir.GlobalVariable:
        gv = ir.GlobalVariable(module, byte_array(nbytes), name)
        gv.initializer = ir.Constant(gv.value_type, None)
        gv.align = align
        gv.type = ir.PointerType()
        return gv

    def async_copy(self, b: ir.IRBuilder, lds_dst: ir.Value, global_src: ir.Value, nbytes: int,
                   src_bytes: ir.Value | int) -> None:
        """Copied at once (bytes as an integer vector; zeros where ``src_bytes`` is 0): the data
        may land any time before the wait, and landing at the issue is one such time."""
        ty = ir.VectorType(ir.IntType(8), nbytes)
        data = b.load(global_src, typ=ty, align=nbytes)
        if not isinstance(src_bytes, int):
            data = b.select(b.icmp_unsigned("!=", src_bytes, ir.Constant(I32, 0)), data, ir.Constant(ty, None))
        b.store(data, lds_dst, align=nbytes)

    def async_commit(self, b: ir.IRBuilder) -> None:
        """Nothing to do: every copy has landed already."""

    def async_wait(self, b: ir.IRBuilder, pending: int) -> None:
        """Nothing to do: every copy has landed already."""

    def _emit_matrix(self, b: ir.IRBuilder, info: MatrixInstr, a: list[ir.Value], bv: list[ir.Value],
                     c: list[ir.Value]) -> list[ir.Value]:
        """Fragments to memory, one call of the instruction's emulation (shared by all the
        instructions of the module, which keeps the JIT quick), D back from memory."""
        tid = self.thread_id(b)
        slot = b.mul(tid, _c(_MAX_FRAGMENT))
        bufs = [b.module.get_global(n) for n in ("mma_a", "mma_b", "mma_c")]
        for buf, elems in zip(bufs, (a, bv, c)):
            for e, v in enumerate(elems):
                wide = v if v.type == F32 else b.fpext(v, F32) if v.type == F16 else \
                    b.bitcast(b.shl(b.zext(v, I32), _c(16)), F32)
                b.store(wide, b.gep(buf, [b.add(slot, _c(e))], source_etype=F32))
        b.call(self._emulation(b.module, info.name), [tid, self._hidden(b, 4)])
        return [b.load(b.gep(bufs[2], [b.add(slot, _c(r))], source_etype=F32), typ=F32) for r in range(len(c))]

    def _emulation(self, module: ir.Module, name: str) -> ir.Function:
        """``void @emulate.<instr>(i32 tid, ptr barrier)``: D = A·B + C for this lane's C
        registers, read from the fragments the wave's lanes stored."""
        fname = f"emulate.{name}"
        if fname in module.globals:
            return module.globals[fname]
        instr = self.lane_instrs[name]
        fn = ir.Function(module, ir.FunctionType(VOID, [I32, ir.PointerType()]), fname)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        b = ir.IRBuilder(fn.append_basic_block())
        tid, barrier = fn.args
        wait = intrinsic(module, "pthread_barrier_wait", I32, [ir.PointerType()])
        lane = b.and_(tid, _c(self.wave_size - 1))
        wave_base = b.mul(b.sub(tid, lane), _c(_MAX_FRAGMENT))
        slot = b.mul(tid, _c(_MAX_FRAGMENT))
        a_buf, b_buf, c_buf = (module.get_global(n) for n in ("mma_a", "mma_b", "mma_c"))
        b.call(wait, [barrier])
        # Which lane and element hold A[i, k] and B[k, j] (the first, where replicated).
        a_src, b_src = _sources(instr.a_map(), instr.m, instr.k), _sources(instr.b_map(), instr.k, instr.n)
        c_i, c_j, a_tab, b_tab = (_table(module, v) for v in (instr.c_map()[..., 0], instr.c_map()[..., 1],
                                                               a_src, b_src))
        for r in range(instr.c_elems):
            at = b.add(b.mul(lane, _c(instr.c_elems)), _c(r))
            i, j = (_load_i32(b, t, at) for t in (c_i, c_j))
            c_ptr = b.gep(c_buf, [b.add(slot, _c(r))], source_etype=F32)
            acc = b.load(c_ptr, typ=F32)
            for k in range(instr.k):
                ai = _load_i32(b, a_tab, b.add(b.mul(i, _c(instr.k)), _c(k)))
                bi = _load_i32(b, b_tab, b.add(_c(k * instr.n), j))
                x = b.load(b.gep(a_buf, [b.add(wave_base, ai)], source_etype=F32), typ=F32)
                y = b.load(b.gep(b_buf, [b.add(wave_base, bi)], source_etype=F32), typ=F32)
                acc = call_intrinsic(b, "llvm.fmuladd.f32", F32, [x, y, acc])
            b.store(acc, c_ptr)
        b.call(wait, [barrier])
        b.ret_void()
        return fn


_MAX_FRAGMENT = 16  # the most A or B elements a lane holds (WMMA)


def _c(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _sources(lane_map: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``[rows * cols]``: lane * _MAX_FRAGMENT + element of the first lane element holding each
    matrix element."""
    src = np.full(rows * cols, -1, dtype=np.int64)
    lanes, elems, _ = lane_map.shape
    for lane in range(lanes - 1, -1, -1):
        for e in range(elems - 1, -1, -1):
            r, c = lane_map[lane, e]
            src[r * cols + c] = lane * _MAX_FRAGMENT + e
    assert (src >= 0).all()
    return src


def _table(module: ir.Module, values: np.ndarray) -> ir.GlobalVariable:
    flat = np.asarray(values).reshape(-1)
    ty = ir.ArrayType(I32, flat.size)
    gv = ir.GlobalVariable(module, ty, module.get_unique_name("mma_table"))
    gv.global_constant = True
    gv.linkage = "internal"
    gv.initializer = ir.Constant(ty, [int(x) for x in flat])
    gv.type = ir.PointerType()
    return gv


def _load_i32(b: ir.IRBuilder, table: ir.GlobalVariable, index: ir.Value) -> ir.Value:
    return b.load(b.gep(table, [index], source_etype=I32), typ=I32)


_CTYPES = {"f32": ctypes.c_float, "i32": ctypes.c_int32, "i1": ctypes.c_int32, "i8": ctypes.c_int8,
           "u8": ctypes.c_uint8, "i16": ctypes.c_int16, "u32": ctypes.c_uint32, "i64": ctypes.c_int64,
           "f8e4m3": ctypes.c_uint8, "f8e5m2": ctypes.c_uint8}
#: The NumPy type of a tensor's elements on the host: bf16 and fp8 as their bit patterns.
_NUMPY = {"f16": np.float16, "bf16": np.uint16, "f32": np.float32, "i32": np.int32, "i8": np.int8, "u8": np.uint8,
          "i16": np.int16, "u32": np.uint32, "i64": np.int64, "f8e4m3": np.uint8, "f8e5m2": np.uint8}


class HostKernel:
    """A lowered kernel JIT-compiled for the host, callable on NumPy arrays."""

    def __init__(self, lowered: LoweredKernel, opt: int = 2) -> None:
        target = lowered.target
        # The host CPU's own features: F16C turns half conversions into instructions instead of
        # compiler-rt calls that the JIT may not find.
        tm = binding.Target.from_triple(target.triple).create_target_machine(
            cpu=binding.get_host_cpu_name(), features=binding.get_host_cpu_features().flatten(), opt=opt)
        mod = binding.parse_assembly(str(lowered.module))
        mod.triple = target.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pto = binding.create_pipeline_tuning_options(speed_level=opt)
        pb = binding.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        self.engine = binding.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        self.lowered = lowered
        argtypes: list[Any] = []
        for a in lowered.args:
            argtypes.append(ctypes.c_void_p if a.kind == "tensor" else _CTYPES[a.dtype])
        argtypes += [ctypes.c_int32] * 4 + [ctypes.c_void_p]
        proto = ctypes.CFUNCTYPE(None, *argtypes)
        self.fn = proto(self.engine.get_function_address(lowered.name))

    def __call__(self, arrays: Mapping[str, np.ndarray], scalars: Mapping[str, Any]) -> None:
        """Run the whole grid; ``arrays`` (tensors by name, in their dtype's NumPy type, bf16
        as uint16 bits, fp8 as uint8 bits) are read and written in place; fp8 scalars are given as
        their bits too. A tensor lowered as strided may be any view with a contiguous last dim; its
        strides are passed as the kernel's stride arguments."""
        lk = self.lowered
        dims: dict[str, int] = {}
        for a in lk.kernel.body.args:
            if a.hint in arrays:
                for d, n in zip(a.type.dims, arrays[a.hint].shape):
                    if isinstance(d, str):
                        dims[d] = int(n)
        values: list[Any] = []
        strided = {a.name for a in lk.args if a.kind == "stride"}
        for a in lk.args:
            if a.kind == "tensor":
                arr = arrays[a.name]
                assert (arr.flags.c_contiguous or a.name in strided) and arr.dtype == _NUMPY[a.dtype]
                values.append(arr.ctypes.data)
            elif a.kind == "stride":
                arr = arrays[a.name]
                values.append(arr.strides[a.axis] // arr.itemsize)
            elif a.kind == "scalar":
                values.append(scalars[a.name])
            else:
                values.append(dims[a.name])
        gx, gy, gz = lk.grid(dims, scalars)
        barrier = ctypes.create_string_buffer(_BARRIER_BYTES)
        assert _LIBC.pthread_barrier_init(barrier, None, lk.block_threads) == 0
        try:
            for z in range(gz):
                for y in range(gy):
                    for x in range(gx):
                        threads = [threading.Thread(target=self.fn, args=(*values, t, x, y, z, ctypes.addressof(barrier)))
                                   for t in range(lk.block_threads)]
                        for th in threads:
                            th.start()
                        for th in threads:
                            th.join()
        finally:
            _LIBC.pthread_barrier_destroy(barrier)


__all__ = ["HostKernel", "HostSimtTarget"]
