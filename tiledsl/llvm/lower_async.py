"""Lowering of the asynchronous global→LDS copies of pipelined loops.

``async_copy`` is one ``GpuTarget.async_copy`` per group of ``vec`` registers (4, 8 or 16
bytes, contiguous in the tensor and in LDS, aligned to the group): ``cp.async`` on NVPTX.
A group whose store mask is off is branched around; one whose load mask is off copies 0
bytes from the tensor's first element (a safe address) and zero-fills its destination,
which is the pad value distribution requires of an async copy. ``async_commit`` and
``async_wait`` are the target's group commit and wait. Distribution emits these ops only for
targets with ``has_async_copy``; the others run pipelined copies synchronously.
"""

from __future__ import annotations

from typing import Any

from tiledsl.ir.core import Op
from tiledsl.ir.types import DTYPE_BYTES
from tiledsl.llvm.irgen import I8, I32
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering, lowers
from tiledsl.llvm.lower_memory import _always, _at, global_address


@lowers("async_copy")
def _async_copy(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, load_mask, offsets, store_mask = args
    b = lw.b
    vec = op.attrs.get("vec", 1)
    nbytes = vec * DTYPE_BYTES[tensor.dtype]
    arena = lw.lds_arena()
    n = op.operands[-1].type.n
    source = global_address(lw, op, tensor, indices, n)

    def copy(g: int) -> None:
        m = load_mask[g]
        known = _always(m)
        src = source(g, None if known else m)
        dst = b.gep(arena, [_at(offsets, g)], source_etype=I8)
        src_bytes = nbytes if known else b.select(m, ir.Constant(I32, nbytes), ir.Constant(I32, 0))
        lw.target.async_copy(b, dst, src, nbytes, src_bytes)

    for g in range(0, n, vec):
        store = _always(store_mask[g])
        if store is False:
            continue
        if store:
            copy(g)
            continue
        with b.if_then(store_mask[g]):
            copy(g)
    return []


@lowers("async_commit")
def _async_commit(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    lw.target.async_commit(lw.b)
    return []


@lowers("async_wait")
def _async_wait(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    lw.target.async_wait(lw.b, op.attrs["pending"])
    return []
