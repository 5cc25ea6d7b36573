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

from tiledsl.ir.core import Op
from tiledsl.ir.types import DTYPE_BYTES
from tiledsl.llvm import irgen
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


@lowers("global_load")
def _global_load(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, mask = args
    dtype = op.result.type.dtype
    flat = _FlatOffset(lw, tensor, indices)
    elem = llvm_type(dtype)

    def address(r: int, m: ir.Value | None) -> ir.Value:
        off = flat.at(r)
        if m is not None:
            off = lw.b.select(m, off, ir.Constant(I64, 0))
        return lw.b.gep(tensor.ptr, [off], source_etype=elem)

    pad = constant(dtype, op.attrs["pad"])
    return [_masked_loads(lw, op.result.type.n, op.attrs.get("vec", 1), mask, dtype, pad, address).force()]


@lowers("global_store")
def _global_store(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, mask, values = args
    dtype = op.operands[-1].type.dtype
    flat = _FlatOffset(lw, tensor, indices)
    elem = llvm_type(dtype)
    _masked_stores(lw, values, op.attrs.get("vec", 1), mask, dtype,
                   lambda r: lw.b.gep(tensor.ptr, [flat.at(r)], source_etype=elem))
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
    regs = _masked_loads(lw, op.result.type.n, op.attrs.get("vec", 1), mask, dtype, pad, address)
    # A dot operand is loaded k-step by k-step inside the matrix instruction chain where legal.
    return [regs if can_defer(op) else regs.force()]


@lowers("lds_store")
def _lds_store(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    offsets, mask, values = args
    arena = lw.lds_arena()
    _masked_stores(lw, values, op.attrs.get("vec", 1), mask, op.operands[-1].type.dtype,
                   lambda r: lw.b.gep(arena, [_at(offsets, r)], source_etype=I8))
    return []
