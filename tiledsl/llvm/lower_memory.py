"""Lowering of global and LDS loads and stores.

Every memory op takes per-register (or uniform) indices and a per-register mask, and ``vec``:
groups of ``vec`` consecutive registers that distribution guarantees contiguous in memory, with
the first element aligned to the group and one mask for the group. A group becomes one vector
access (``<8 x half>``: ``global_load_dwordx4`` / ``ld.global.nc.v4.b32``) at the first
register's address with ``align vec·size``.

Masks never let an access leave its buffer: a masked-off load reads the tensor's first element
(LDS byte 0) and ``select``s the pad value; a masked-off store is branched around.

An LDS load whose users may take it lazily (``can_defer``: a dot operand with nothing but pure
ops up to the ``mma_tile``) returns :class:`LazyRegs`, so its groups are loaded next to the
matrix instructions that read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tiledsl.ir.core import Op, Value
from tiledsl.ir.types import DTYPE_BYTES
from tiledsl.llvm import irgen, ldmatrix
from tiledsl.llvm.irgen import I1, I8, I32, I64
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import (
    KernelLowering,
    LazyRegs,
    TensorRef,
    can_defer,
    constant,
    llvm_type,
    lowers,
)
from tiledsl.llvm.lower_layout import lower_ints, thread_term
from tiledsl.llvm.lower_matrix import plan_of
from tiledsl.llvm.static_ints import affine_index, static_table


def _always(m: ir.Value) -> bool | None:
    """True / False for a constant mask, None for a mask known only at run time."""
    if isinstance(m, ir.Constant) and m.type == I1:
        return bool(m.constant)
    return None


def _at(v: Any, r: int) -> Any:
    """Register ``r`` of a per-register operand, or the uniform operand itself."""
    return v[r] if isinstance(v, list) else v


def _access_type(dtype: str, vec: int) -> tuple[ir.Type, int]:
    elem = llvm_type(dtype)
    size = DTYPE_BYTES[dtype]
    return (elem if vec == 1 else ir.VectorType(elem, vec)), size * vec


def _load_group(b: ir.IRBuilder, ptr: ir.Value, dtype: str, vec: int) -> list[ir.Value]:
    ty, align = _access_type(dtype, vec)
    v = b.load(ptr, typ=ty, align=align)
    return [v] if vec == 1 else irgen.unpack(b, v)


def _store_group(b: ir.IRBuilder, ptr: ir.Value, values: list[ir.Value], dtype: str) -> None:
    _, align = _access_type(dtype, len(values))
    b.store(values[0] if len(values) == 1 else irgen.pack(b, values, llvm_type(dtype)), ptr, align=align)


def _masked_loads(lw: KernelLowering, n: int, vec: int, mask: list[ir.Value], dtype: str, pad: ir.Value,
                  address: Callable[[int, ir.Value | None], ir.Value]) -> LazyRegs:
    """n registers in groups of vec, each loaded where it is first read; ``address(first_register,
    mask or None)`` gives the group's pointer, clamped to a safe address where the mask is off."""
    def group(g: int) -> list[ir.Value]:
        b = lw.b
        m = mask[g]
        known = _always(m)
        if known is False:
            return [pad] * vec
        values = _load_group(b, address(g, None if known else m), dtype, vec)
        return values if known else [b.select(m, v, pad) for v in values]
    return LazyRegs(n, vec, group)


def _masked_stores(lw: KernelLowering, values: list[ir.Value], vec: int, mask: list[ir.Value], dtype: str,
                   address: Callable[[int], ir.Value]) -> None:
    b = lw.b
    for g in range(0, len(values), vec):
        m = mask[g]
        known = _always(m)
        if known is False:
            continue
        if known:
            _store_group(b, address(g), values[g:g + vec], dtype)
            continue
        with b.if_then(m):
            _store_group(b, address(g), values[g:g + vec], dtype)


# ---------------------------------------------------------------- global memory

class _FlatOffset:
    """Element offsets Σ_d idx_d·stride_d (i64) of a tensor access: the uniform indices summed
    once, the per-register ones per group."""

    def __init__(self, lw: KernelLowering, tensor: TensorRef, indices: list[Any]) -> None:
        self.lw = lw
        b = lw.b
        self.uniform: ir.Value | None = None
        self.varying: list[tuple[list[ir.Value], ir.Value]] = []
        for idx, stride in zip(indices, tensor.strides):
            if isinstance(idx, list):
                self.varying.append((idx, stride))
                continue
            term = b.mul(lw.i64(idx), stride)
            self.uniform = term if self.uniform is None else b.add(self.uniform, term)

    def at(self, r: int) -> ir.Value:
        b = self.lw.b
        total = self.uniform
        for idx, stride in self.varying:
            term = b.mul(self.lw.i64(idx[r]), stride)
            total = term if total is None else b.add(total, term)
        return total if total is not None else ir.Constant(I64, 0)


class _SplitAddress:
    """Element addresses of a tensor access as ``base + uniform + zext(thread) + C[r]``: the
    uniform indices and the uniform parts of per-register ones (``affine_index``) summed once
    (scalar registers on AMD), the per-thread part as one i32 byte offset shared by every register
    (one VGPR: the ``saddr`` form ``global_load v, v_off, s[base]``), and a constant per register
    (the instruction's offset field, or scalar adds).

    ``build`` gives None where that split does not hold: an index that is not a uniform plus a
    bit-linear thread-static table, a per-thread part along a dim with a run-time stride, or a
    per-thread byte offset outside [0, 2³¹)."""

    def __init__(self, lw: KernelLowering, tensor: TensorRef, uniform: ir.Value, thread: ir.Value | None,
                 consts: list[int], dynamic: list[tuple[ir.Value, tuple[int, ...]]]) -> None:
        # Both forms of the shared part are built here, where they dominate every register's
        # access (a masked store's is inside a branch); LLVM drops the one not used.
        b = lw.b
        self.lw = lw
        self.tensor = tensor
        self.elem = llvm_type(tensor.dtype)
        thread64 = None if thread is None else b.zext(thread, I64)
        base = b.gep(tensor.ptr, [uniform], source_etype=self.elem)
        self.base = base if thread64 is None else b.gep(base, [thread64], source_etype=I8)
        self.bytes = b.mul(uniform, ir.Constant(I64, DTYPE_BYTES[tensor.dtype]))
        if thread64 is not None:
            self.bytes = b.add(self.bytes, thread64)
        self.consts = consts
        self.dynamic = dynamic

    @classmethod
    def build(cls, lw: KernelLowering, tensor: TensorRef, operands: list[Value], indices: list[Any],
              n: int) -> _SplitAddress | None:
        b = lw.b
        size = DTYPE_BYTES[tensor.dtype]
        uniform: list[ir.Value] = []
        thread_coef: list[int] = []
        consts = [0] * n
        dynamic: list[tuple[ir.Value, tuple[int, ...]]] = []
        for operand, idx, stride in zip(operands, indices, tensor.strides):
            if not isinstance(idx, list):
                uniform.append(b.mul(lw.i64(idx), stride))
                continue
            split = affine_index(lw, operand, n)
            if split is None:
                return None
            uniform += [b.mul(lw.i64(u), stride) for u in split.uniform]
            if isinstance(stride, ir.Constant):
                step = int(stride.constant)
                consts = [c + o * step for c, o in zip(consts, split.form.offsets)]
            elif any(split.form.offsets):
                dynamic.append((stride, split.form.offsets))
            if any(split.form.coef):
                if not isinstance(stride, ir.Constant):
                    return None
                coef = [c * int(stride.constant) * size for c in split.form.coef]
                width = max(len(coef), len(thread_coef))
                thread_coef = [(thread_coef[i] if i < len(thread_coef) else 0) + (coef[i] if i < len(coef) else 0)
                               for i in range(width)]
        if not _fits_unsigned_i32(thread_coef):
            return None
        lw.stats["global:split"] += 1
        total = uniform[0] if uniform else ir.Constant(I64, 0)
        for u in uniform[1:]:
            total = b.add(total, u)
        return cls(lw, tensor, total, thread_term(lw, tuple(thread_coef)), consts, dynamic)

    def _const(self, r: int) -> ir.Value:
        """Register r's constant part, in elements."""
        b = self.lw.b
        off: ir.Value = ir.Constant(I64, self.consts[r])
        for stride, offsets in self.dynamic:
            if offsets[r]:
                off = b.add(off, b.mul(ir.Constant(I64, offsets[r]), stride))
        return off

    def at(self, r: int) -> ir.Value:
        """Register r's address: ``(base + uniform) + thread`` shared, then its constant."""
        off = self._const(r)
        if isinstance(off, ir.Constant) and off.constant == 0:
            return self.base
        return self.lw.b.gep(self.base, [off], source_etype=self.elem)

    def clamped(self, r: int, m: ir.Value) -> ir.Value:
        """Register r's address where ``m``, the tensor's base where not (a byte offset selected
        to 0: the uniform part may be out of bounds too)."""
        b = self.lw.b
        size = ir.Constant(I64, DTYPE_BYTES[self.tensor.dtype])
        off = b.add(self.bytes, b.mul(self._const(r), size))
        return b.gep(self.tensor.ptr, [b.select(m, off, ir.Constant(I64, 0))], source_etype=I8)


def _fits_unsigned_i32(coef: list[int]) -> bool:
    """Whether ``Σ coef_i·bit_i(t)`` lies in [0, 2³¹) for every t (so it can be zero-extended)."""
    lo = sum(c for c in coef if c < 0)
    hi = sum(c for c in coef if c > 0)
    return lo >= 0 and hi < 2 ** 31


def global_address(lw: KernelLowering, op: Op, tensor: TensorRef, indices: list[Any], n: int
                   ) -> Callable[[int, ir.Value | None], ir.Value]:
    """``address(r, mask or None)``: register r's element of ``tensor`` at ``indices`` (the
    operands after the tensor of ``op``), clamped to the tensor's first element where the mask is
    off. Split into uniform + per-thread + constant (``_SplitAddress``) where it can be."""
    split = _SplitAddress.build(lw, tensor, op.operands[1:1 + len(indices)], indices, n)
    flat = None if split is not None else _FlatOffset(lw, tensor, indices)
    elem = llvm_type(tensor.dtype)

    def address(r: int, m: ir.Value | None) -> ir.Value:
        if split is not None:
            return split.at(r) if m is None else split.clamped(r, m)
        assert flat is not None
        off = flat.at(r)
        if m is not None:
            off = lw.b.select(m, off, ir.Constant(I64, 0))
        return lw.b.gep(tensor.ptr, [off], source_etype=elem)
    return address


@lowers("global_load")
def _global_load(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, mask = args
    dtype = op.result.type.dtype
    address = global_address(lw, op, tensor, indices, op.result.type.n)
    pad = constant(dtype, op.attrs["pad"])
    return [_masked_loads(lw, op.result.type.n, op.attrs.get("vec", 1), mask, dtype, pad, address).force()]


@lowers("global_store")
def _global_store(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, mask, values = args
    dtype = op.operands[-1].type.dtype
    address = global_address(lw, op, tensor, indices, len(values))
    _masked_stores(lw, values, op.attrs.get("vec", 1), mask, dtype, lambda r: address(r, None))
    return []


# ---------------------------------------------------------------- LDS

@lowers("lds_load")
def _lds_load(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    offsets, mask = args
    dtype = op.result.type.dtype
    arena = lw.lds_arena()

    def address(r: int, m: ir.Value | None) -> ir.Value:
        off = _at(offsets, r)
        if m is not None:
            off = lw.b.select(m, off, ir.Constant(I32, 0))
        return lw.b.gep(arena, [off], source_etype=I8)

    pad = constant(dtype, op.attrs.get("pad", 0))
    regs = _ldmatrix_loads(lw, op, mask) or \
        _masked_loads(lw, op.result.type.n, op.attrs.get("vec", 1), mask, dtype, pad, address)
    # A dot operand is loaded k-step by k-step inside the matrix instruction chain where legal.
    return [regs if can_defer(op) else regs.force()]


def _ldmatrix_loads(lw: KernelLowering, op: Op, mask: list[ir.Value]) -> LazyRegs | None:
    """The read as ``ldmatrix`` instructions (``tiledsl.llvm.ldmatrix``) where the target has them,
    the elements are 16-bit, every slot is read and the offsets fit; None otherwise."""
    dtype = op.result.type.dtype
    if not lw.target.has_ldmatrix or DTYPE_BYTES[dtype] != 2 or not all(_always(m) for m in mask):
        return None
    table = static_table(lw, op.operands[0])
    if table is None:
        return None
    n = op.result.type.n
    groups = ldmatrix.plan(np.broadcast_to(table, (lw.ctx.threads, n)), lw.ctx.target.wave_size,
                           _pair_use_order(lw, op, n))
    if groups is None:
        return None
    elem = llvm_type(dtype)
    pair = ir.VectorType(elem, 2)

    def load(index: int) -> list[ir.Value]:
        g = groups[index]
        b = lw.b
        lw.stats["ldmatrix"] += 1          # counted where emitted: a read that wgmma does is not
        (addr,) = lower_ints(lw, g.addresses[:, None], np.ones((lw.ctx.threads, 1), bool), "ldmatrix")
        words = lw.target.ldmatrix(b, b.gep(lw.lds_arena(), [addr], source_etype=I8), g.count, g.trans)
        return [v for w in words for v in irgen.unpack(b, b.bitcast(w, pair))]
    return LazyRegs(n, 2, load, [g.registers for g in groups])


def _pair_use_order(lw: KernelLowering, op: Op, n: int) -> list[int] | None:
    """The register pairs of an LDS read in the order its one matrix-instruction user first reads
    them (``plan_of``), so that ldmatrix groups pairs used together; None (index order) for
    any other user or where the read is not deferred to its user."""
    users = op.result.uses
    if len(users) != 1 or users[0].name != "mma_tile" or not can_defer(op):
        return None
    user = users[0]
    if user.attrs["instr"].startswith("fma"):
        return None
    which = [i for i, v in enumerate(user.operands[:2]) if v is op.result]
    if len(which) != 1:
        return None
    order: dict[int, None] = {}     # insertion-ordered set
    for call in plan_of(lw, user):
        for r in (call.a_regs if (which[0] == 0) != call.a_from_b else call.b_regs):
            order.setdefault(r // 2)
    return list(order) if sorted(order) == list(range(n // 2)) else None


@lowers("lds_store")
def _lds_store(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    offsets, mask, values = args
    arena = lw.lds_arena()
    _masked_stores(lw, values, op.attrs.get("vec", 1), mask, op.operands[-1].type.dtype,
                   lambda r: lw.b.gep(arena, [_at(offsets, r)], source_etype=I8))
    lw.target.lds_store_fence(lw.b)
    return []
