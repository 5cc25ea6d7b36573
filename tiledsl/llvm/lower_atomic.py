"""Lowering of atomics on global memory (thread IR ``global_atomic``).

Each group of ``vec`` registers (1, or 2 for a packed f16/bf16 add) is one ``atomicrmw`` at the
group's first element (``GpuTarget.atomic_rmw``: relaxed, at device scope), addressed as a store
is (``global_address``). A masked-off group is branched around, as a masked store is; where the
old values are used, they meet the 0 of the masked-off path in a phi.
"""

from __future__ import annotations

from typing import Any

from tiledsl.ir.core import Op
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering, constant, lowers
from tiledsl.llvm.lower_memory import _always, global_address


@lowers("global_atomic")
def _global_atomic(lw: KernelLowering, op: Op, args: list[Any]) -> list[Any]:
    tensor, *indices, mask, values = args
    dtype = op.operands[-1].type.dtype
    kind = op.attrs["kind"]
    vec = op.attrs.get("vec", 1)
    address = global_address(lw, op, tensor, indices, len(values))
    b = lw.b
    zero = constant(dtype, 0)
    olds: list[ir.Value] = []
    for g in range(0, len(values), vec):
        group = values[g:g + vec]
        known = _always(mask[g])
        if known is False:
            olds += [zero] * vec
            continue
        if known:
            olds += lw.target.atomic_rmw(b, kind, dtype, address(g, None), group)
            continue
        before = b.block
        with b.if_then(mask[g]):
            got = lw.target.atomic_rmw(b, kind, dtype, address(g, None), group)
            inside = b.block
        if op.results:
            for v in got:
                phi = b.phi(v.type)
                phi.add_incoming(v, inside)
                phi.add_incoming(zero, before)
                olds.append(phi)
    return [olds] if op.results else []
