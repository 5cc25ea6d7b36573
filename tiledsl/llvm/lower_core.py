"""The machinery of the thread IR → LLVM IR lowering: the op table, the per-kernel state,
dtype conversions.

A thread IR value becomes, in LLVM:
- a uniform scalar (rank-0 tile): one llvmlite value;
- ``regs<T, n>``: a Python list of n llvmlite scalars (SSA values, never memory: allocas are a
  trap on AMDGPU, docs/targets/llvm-pipeline.md §2.3), or a :class:`LazyRegs` whose loads are emitted
  where its registers are first read (only the ops in ``LAZY_CONSUMERS`` ever see one);
- a tensor parameter: a :class:`TensorRef` (its pointer and strides).

Element types: f16 → ``half``, f32 → ``float``, i1 → ``i1``, integers → ``iN`` of their width
(signedness is in the ops: ``udiv``, ``lshr``, ``icmp ult`` ... for u8 and u32), and bf16 → ``i16``
and f8e4m3/f8e5m2 → ``i8`` holding the bit pattern (llvmlite.ir has no ``bfloat``, LLVM no OCP
fp8; the AMD matrix intrinsics take i16 vectors anyway). Arithmetic on f16/bf16/fp8 converts to
f32, computes, and rounds once, which is what ``tiledsl.interp.numerics`` defines; LLVM narrows
the f16 cases back to half instructions where that is exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.interp.numerics import round_to, to_bits
from tiledsl.interp.report import Report
from tiledsl.interp.thread import ThreadInterpreter
from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, Value
from tiledsl.ir.lds_storage import MAX_VECTOR_BYTES, LdsStorage
from tiledsl.ir.types import FP8_DTYPES, INT_DTYPES
from tiledsl.llvm import fp8
from tiledsl.llvm.irgen import F16, F32, I1, I8, I16, I32, I64, call_intrinsic
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.target_base import GpuTarget
from tiledsl.thread.context import ThreadContext

LLVM_TYPES: dict[str, ir.Type] = {"f16": F16, "bf16": I16, "f32": F32, "i32": I32, "i1": I1, "f8e4m3": I8,
                                  "f8e5m2": I8, "i8": I8, "u8": I8, "i16": I16, "u32": I32, "i64": I64}


@dataclass(frozen=True)
class TensorRef:
    """A global tensor parameter in LLVM: its base pointer and one i64 stride (in elements)
    per dim, row-major and dense (the kernel ABI)."""

    name: str
    ptr: ir.Value
    dtype: str
    strides: tuple[ir.Value, ...]


Lowerer = Callable[["KernelLowering", Op, list[Any]], "list[Any] | None"]
#: op name → the function that lowers it (one per op; ``lowers`` fills it).
LOWERINGS: dict[str, Lowerer] = {}
#: Ops whose lowering takes :class:`LazyRegs` operands as they are (and reads them register by
#: register where each is needed); every other op gets them loaded in full first.
LAZY_CONSUMERS: set[str] = set()
#: The modules whose ``@lowers`` functions fill ``LOWERINGS``; ``KernelLowering`` imports them first,
#: so the table is whole whatever the caller imported.
LOWERING_MODULES = ("lower_arith", "lower_async", "lower_atomic", "lower_layout", "lower_matrix", "lower_memory",
                    "lower_simt", "lower_math", "lower_scan")


def load_lowerings() -> dict[str, Lowerer]:
    """The whole op → lowering table."""
    import importlib
    for name in LOWERING_MODULES:
        importlib.import_module(f"tiledsl.llvm.{name}")
    return LOWERINGS


def lowers(*names: str, lazy_operands: bool = False) -> Callable[[Lowerer], Lowerer]:
    """Register a lowering for the thread IR ops ``names``; ``lazy_operands``: it accepts
    :class:`LazyRegs` operands."""
    def deco(fn: Lowerer) -> Lowerer:
        for n in names:
            if n in LOWERINGS:
                raise RuntimeError(f"two LLVM lowerings for '{n}'")
            LOWERINGS[n] = fn
            if lazy_operands:
                LAZY_CONSUMERS.add(n)
        return fn
    return deco


class LazyRegs:
    """``regs<T, n>`` loaded on demand: register group g (``vec`` registers, one vector access)
    is emitted by ``load_group(g)`` at the builder's position when one of its registers is first
    read, and reused after that.

    This is how a dot operand read from LDS gets its loads next to the matrix instructions that
    use them (k-step by k-step) instead of all before the first one: ptxas and the AMDGPU
    scheduler do not sink them that far, and a whole K^T tile live at once spills on sm_90.
    Only legal where ``can_defer`` says so: the loads move down the block, past pure ops only.
    """

    def __init__(self, n: int, vec: int, load_group: Callable[[int], list[ir.Value]],
                 groups: list[list[int]] | None = None) -> None:
        self.n = n
        self.vec = vec
        self._load_group = load_group
        self._loaded: dict[int, list[ir.Value]] = {}
        #: Where groups are not runs of ``vec`` registers (ldmatrix): group g's registers, in the
        #: order ``load_group(g)`` returns their values.
        self._place: dict[int, tuple[int, int]] | None = None
        if groups is not None:
            self._place = {r: (g, i) for g, regs in enumerate(groups) for i, r in enumerate(regs)}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, r: int) -> ir.Value:
        if not 0 <= r < self.n:
            raise IndexError(f"register {r} of {self.n}")
        g, i = self._place[r] if self._place is not None else (r - r % self.vec, r % self.vec)
        if g not in self._loaded:
            self._loaded[g] = self._load_group(g)
        return self._loaded[g][i]

    def force(self) -> list[ir.Value]:
        """Every register, loading (here) the groups not read yet."""
        return [self[r] for r in range(self.n)]


def loaded(v: Any) -> Any:
    """An operand with any :class:`LazyRegs` replaced by its registers, loaded in full."""
    return v.force() if isinstance(v, LazyRegs) else v


def can_defer(op: Op) -> bool:
    """Whether the loads of ``op`` (an LDS load) may be emitted later, at its users.

    Decided on the thread IR: some user takes lazy operands, every user is in the op's own block
    and every op from here to the last user is pure. Then nothing in between writes LDS or waits
    at a barrier (so the loads read what they would have read here, in the same barrier interval),
    and the users' code is emitted where this op's values still dominate (not inside a loop or a
    branch the load is outside of).
    """
    block = op.parent
    users = op.result.uses
    if block is None or not users or not any(u.name in LAZY_CONSUMERS for u in users):
        return False
    if any(u.parent is not block for u in users):
        return False
    start = block.ops.index(op)
    last = max(block.ops.index(u) for u in users)
    return all(o.pure for o in block.ops[start + 1:last + 1])


# ---------------------------------------------------------------- dtypes

def llvm_type(dtype: str) -> ir.Type:
    """The llvmlite type of one element of ``dtype`` (bf16: its i16 bit pattern)."""
    try:
        return LLVM_TYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"no LLVM type for dtype '{dtype}'") from None


def constant(dtype: str, value: float | bool) -> ir.Constant:
    """``value`` as an LLVM constant of ``dtype``, rounded as the interpreter rounds it."""
    if dtype == "i1":
        return ir.Constant(I1, int(bool(value)))
    stored = round_to(np.asarray([value]), dtype)[0]
    if dtype in INT_DTYPES:
        return ir.Constant(llvm_type(dtype), int(stored))
    if dtype in FP8_DTYPES:
        return ir.Constant(I8, int(to_bits(stored, dtype)))
    if dtype == "bf16":
        return ir.Constant(I16, int(np.asarray(stored, np.float32).view(np.uint32)) >> 16)
    # Exact in the type (rounded above), as LLVM requires of a half/float literal.
    return ir.Constant(llvm_type(dtype), float(stored))


def to_f32(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """A float element as f32 (exact). fp8 goes through the software sequence here; a register list
    of fp8 is widened faster by ``widen_to_f32``, with the target's instructions."""
    if dtype == "f32":
        return v
    if dtype == "f16":
        return b.fpext(v, F32)
    if dtype == "bf16":
        return b.bitcast(b.shl(b.zext(v, I32), ir.Constant(I32, 16)), F32)
    if dtype in FP8_DTYPES:
        return fp8.fp8_to_f32(b, v, dtype)
    raise TypeError(f"to_f32 of a {dtype} value")


def from_f32(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """An f32 rounded to the float ``dtype`` (to nearest even, as ``numerics.round_to``; saturating
    for fp8, see ``narrow_from_f32``)."""
    if dtype == "f32":
        return v
    if dtype == "f16":
        return b.fptrunc(v, F16)
    if dtype == "bf16":
        return f32_to_bf16(b, v)
    if dtype in FP8_DTYPES:
        return fp8.f32_to_fp8(b, v, dtype)
    raise TypeError(f"from_f32 to {dtype}")


def widen_to_f32(lw: KernelLowering, v: Any, dtype: str) -> Any:
    """A float operand (a register list or a uniform scalar) as f32: fp8 by the target's
    conversion (two registers an instruction where it has one, ``GpuTarget.fp8_to_f32``)."""
    if dtype in FP8_DTYPES:
        return lw.target.fp8_to_f32(lw.b, v, dtype) if isinstance(v, list) else \
            lw.target.fp8_to_f32(lw.b, [v], dtype)[0]
    return [to_f32(lw.b, x, dtype) for x in v] if isinstance(v, list) else to_f32(lw.b, v, dtype)


def narrow_from_f32(lw: KernelLowering, v: Any, dtype: str) -> Any:
    """``widen_to_f32``'s inverse: f32 values rounded to ``dtype`` (``GpuTarget.f32_to_fp8``)."""
    if dtype in FP8_DTYPES:
        return lw.target.f32_to_fp8(lw.b, v, dtype) if isinstance(v, list) else \
            lw.target.f32_to_fp8(lw.b, [v], dtype)[0]
    return [from_f32(lw.b, x, dtype) for x in v] if isinstance(v, list) else from_f32(lw.b, v, dtype)


def f32_to_bf16(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """Round to nearest even on the bits, exactly ``numerics.round_bf16``: bits + 0x7FFF +
    (bit 16), keep the high half; a NaN becomes the quiet NaN 0x7FC0 (round_bf16 writes np.nan).

    Integer ops rather than ``fptrunc ... to bfloat``: llvmlite.ir has no bfloat type, and on
    gfx9 LLVM's own conversion is the same software sequence (docs/targets/amdgpu.md §7)."""
    bits = b.bitcast(v, I32)
    lsb = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
    rounded = b.add(b.add(bits, ir.Constant(I32, 0x7FFF)), lsb)
    hi = b.trunc(b.lshr(rounded, ir.Constant(I32, 16)), I16)
    is_nan = b.fcmp_unordered("uno", v, v)
    return b.select(is_nan, ir.Constant(I16, 0x7FC0), hi)


def maxnum(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return call_intrinsic(b, "llvm.maxnum.f32", F32, [x, y])


def minnum(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return call_intrinsic(b, "llvm.minnum.f32", F32, [x, y])


# ---------------------------------------------------------------- the per-kernel state

class KernelLowering:
    """Lowers one thread IR kernel body into one LLVM function.

    ``env`` maps IR values (by id) to their LLVM form; ``b`` is the builder, positioned where the
    next op's code goes. ``tid`` and ``wave`` are computed once in the entry block.
    """

    def __init__(self, kernel: ops.KernelOp, ctx: ThreadContext, target: GpuTarget, module: ir.Module,
                 fn: ir.Function, dims: dict[str, ir.Value]) -> None:
        self.kernel = kernel
        self.ctx = ctx
        self.target = target
        self.module = module
        self.fn = fn
        self.dims = dims
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.env: dict[int, Any] = {}
        self.lds: ir.GlobalVariable | None = None
        self.tid = target.thread_id(self.b)
        self.wave = target.wave_id(self.b) if ctx.num_waves > 1 else ir.Constant(I32, 0)
        self._interp: ThreadInterpreter | None = None
        self._tables = 0
        #: Thread-static values' tables by value id (``static_ints``; None: not thread-static).
        self.static_tables: dict[int, np.ndarray | None] = {}
        #: Matrix-instruction plans by op id (``lower_matrix.plan_of``): an mma_tile's plan is
        #: also read by the LDS loads of its operands.
        self.matrix_plans: dict[int, Any] = {}
        #: How each layout query was lowered ("coord:linear", "valid:bit-test", "coord:table" ...).
        self.stats: Counter[str] = Counter()

    # ---- values
    def get(self, v: Value) -> Any:
        return self.env[id(v)]

    def lower_block(self, block: Block, args: Sequence[Any]) -> list[Any]:
        """Lower the ops of ``block`` with its arguments bound to ``args``; return the LLVM
        values of its ``yield`` (empty when it has none)."""
        for a, v in zip(block.args, args):
            self.env[id(a)] = v
        for op in block.ops:
            operands = [self.get(v) for v in op.operands]
            if op.name not in LAZY_CONSUMERS:
                operands = [loaded(v) for v in operands]
            if isinstance(op, ops.YieldOp):
                return operands
            lowering = LOWERINGS.get(op.name)
            if lowering is None:
                raise NotImplementedError(f"no LLVM lowering for '{op.name}'")
            outs = lowering(self, op, operands)
            for r, v in zip(op.results, outs or []):
                self.env[id(r)] = v
        return []

    # ---- what the lowerings share
    def interpreter(self) -> ThreadInterpreter:
        """A thread interpreter of this kernel with no data: the executable definition of the
        layout queries, asked for the per-thread tables that the lowering turns into code."""
        if self._interp is None:
            self._interp = ThreadInterpreter(self.kernel, self.ctx, {}, {}, {}, Report(level="thread"))
        return self._interp

    def lds_arena(self) -> ir.GlobalVariable:
        """The kernel's one LDS arena (``lds_bytes`` of the kernel), created on first use."""
        if self.lds is None:
            nbytes = int(self.kernel.attrs.get("lds_bytes", 0))
            if nbytes <= 0:
                raise RuntimeError("internal: an LDS access in a kernel with no LDS")
            # As aligned as the most demanding tile in it (a swizzled one: 1024 bytes).
            align = max((LdsStorage.from_record(v[1:]).align for v in self.kernel.attrs.get("lds_buffers", {}).values()),
                        default=MAX_VECTOR_BYTES)
            self.lds = self.target.lds_global(self.module, "lds", nbytes, align)
        return self.lds

    def table_name(self) -> str:
        self._tables += 1
        return f"layout_table.{self._tables}"

    def i64(self, v: ir.Value) -> ir.Value:
        """An i32 index widened for address arithmetic (sign-extended: a masked-off index may be
        negative; it is never dereferenced); an i64 one as it is."""
        if v.type == I64:
            return v
        if isinstance(v, ir.Constant):
            return ir.Constant(I64, int(v.constant))
        return self.b.sext(v, I64)


def per_register(args: Sequence[Any], n: int | None) -> list[list[Any]]:
    """The operands of an element-wise op, one tuple per register (``n`` registers), or a single
    tuple when the op is on uniform scalars (``n`` None)."""
    if n is None:
        return [list(args)]
    return [[a[i] for a in args] for i in range(n)]


def result_count(op: Op) -> int | None:
    """Registers of the op's result, or None for a uniform scalar."""
    t = op.result.type
    return t.n if hasattr(t, "n") else None


def flatten(values: Sequence[Any]) -> tuple[list[ir.Value], list[int | None]]:
    """Values (scalars or register lists) as one flat list, with the shape to rebuild them:
    None for a scalar, n for a list of n."""
    flat: list[ir.Value] = []
    shape: list[int | None] = []
    for v in values:
        if isinstance(v, list):
            flat.extend(v)
            shape.append(len(v))
        else:
            flat.append(v)
            shape.append(None)
    return flat, shape


def unflatten(flat: Sequence[ir.Value], shape: Sequence[int | None]) -> list[Any]:
    out: list[Any] = []
    i = 0
    for n in shape:
        if n is None:
            out.append(flat[i])
            i += 1
        else:
            out.append(list(flat[i:i + n]))
            i += n
    return out
