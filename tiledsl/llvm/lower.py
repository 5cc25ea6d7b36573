"""Thread IR → LLVM IR: one kernel function per thread IR kernel, the same code for every target.

    kernel, ctx = compile_thread_ir(program, "gfx942")
    lowered = lower_kernel(kernel, ctx, AmdgpuTarget("gfx942"))
    compiled = lowered.compile()                   # GpuTarget.compile(lowered.module)
    grid = lowered.grid({"Z": 1, "H": 8, "N": 1000})

The translation is a table from thread IR op name to one lowering function (``LOWERINGS`` in
``lower_core``, filled by ``lower_arith``, ``lower_simt``, ``lower_layout``, ``lower_memory``,
``lower_async`` and ``lower_matrix``); everything target-specific goes through the ``GpuTarget``
methods. The thread interpreter (``tiledsl.interp.thread``) is the definition of what each op computes.

Kernel ABI (the order of the LLVM function's arguments):

1. one ``ptr addrspace(1)`` per tensor parameter, in parameter order: dense, row-major, base
   aligned to 16 bytes (vector accesses assume it); ``noalias``, and ``readonly`` unless ``out``;
2. the scalar parameters, in parameter order: f32 ``float``, f16 ``half``, bf16 ``i16`` (the bit
   pattern), i32 ``i32``, i1 ``i32`` (non-zero is true);
3. one ``i32`` per runtime dim: the dim names of the tensor parameters that are not compile-time
   parameters (``kernel.attrs["params"]``), in order of first appearance over the tensor
   parameters' dims;
4. for each *strided* tensor (``lower_kernel(..., strided=...)``), in parameter order, one ``i64``
   element stride per dim but the last: the tensor is then any view whose last dim is contiguous
   (stride 1), e.g. ``[B, N, H, D]`` viewed as ``[B, H, N, D]``. Vector accesses along the last
   dim stay; the launcher checks that the base and every stride keep them aligned. A tensor not
   named is dense and row-major, its strides folded from the dims as before.

The block is one-dimensional, ``block_threads`` threads; the grid is ``grid(dims)`` (grid axis
0, 1, 2 → x, y, z). LDS is one arena of ``lds_bytes``: static on AMDGPU, dynamic shared memory
on NVPTX, where the launch passes ``lds_bytes`` (``CompiledModule.dynamic_lds_bytes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tiledsl.interp.report import Report
from tiledsl.interp.thread import ThreadInterpreter
from tiledsl.ir import ops
from tiledsl.ir.types import TensorType, TileType
from tiledsl.llvm.irgen import I32, I64
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import LOWERINGS, KernelLowering, TensorRef, llvm_type, load_lowerings
from tiledsl.llvm.target_base import CompiledModule, GpuTarget
from tiledsl.thread.context import ThreadContext

ArgKind = Literal["tensor", "scalar", "dim", "stride"]


@dataclass(frozen=True)
class KernelArg:
    """One argument of the lowered kernel, in ABI order: a tensor pointer, a scalar parameter or
    a runtime dim (``name`` is the parameter's or the dim's name), or the element stride of dim
    ``axis`` of a strided tensor (``name`` is the tensor's)."""

    name: str
    kind: ArgKind
    dtype: str
    type: ir.Type
    axis: int | None = None


@dataclass
class LoweredKernel:
    """An LLVM module holding one kernel, and what a launcher needs to know about it."""

    module: ir.Module
    name: str
    args: list[KernelArg]
    block_threads: int
    lds_bytes: int
    target: GpuTarget
    #: The thread IR kernel it was lowered from (its grid region gives ``grid``).
    kernel: ops.KernelOp = field(repr=False)
    ctx: ThreadContext = field(repr=False)
    #: How the layout queries were lowered, matrix instructions and FMAs emitted (for reports).
    stats: dict[str, int] = field(default_factory=dict)

    def compile(self, opt: int = 3) -> CompiledModule:
        """Optimise and emit asm and object for the kernel's target."""
        return self.target.compile(self.module, opt)

    def grid(self, dims: Mapping[str, int], scalars: Mapping[str, Any] | None = None) -> tuple[int, int, int]:
        """Blocks along x, y, z for tensors with these dim sizes and these scalar arguments (the
        grid may read i32 scalar parameters), as the interpreters count them."""
        known = {**{k: v for k, v in self.kernel.attrs.get("params", {}).items() if isinstance(v, int)},
                 **dims}
        it = ThreadInterpreter(self.kernel, self.ctx, {}, dict(scalars or {}), known, Report(level="thread"))
        extents = [int(np.asarray(v).reshape(-1)[0]) for v in it.run_block(self.kernel.grid, [])]
        if len(extents) > 3:
            raise NotImplementedError(f"a grid of {len(extents)} axes: GPUs launch at most 3")
        return tuple(extents + [1] * (3 - len(extents)))  # type: ignore[return-value]


def runtime_dims(kernel: ops.KernelOp) -> list[str]:
    """The dims passed as i32 arguments, in ABI order (see the module docstring)."""
    params = kernel.attrs.get("params", {})
    names: list[str] = []
    for a in kernel.body.args:
        if isinstance(a.type, TensorType):
            for d in a.type.dims:
                if isinstance(d, str) and not isinstance(params.get(d), int) and d not in names:
                    names.append(d)
    return names


def kernel_args(kernel: ops.KernelOp, target: GpuTarget, strided: frozenset[str] = frozenset()
                ) -> list[KernelArg]:
    """The kernel's arguments in ABI order; ``strided``: the tensors whose strides are arguments."""
    body = kernel.body.args
    tensors = [KernelArg(a.hint, "tensor", a.type.dtype, target.global_ptr_type)
               for a in body if isinstance(a.type, TensorType)]
    scalars = []
    for a in body:
        if isinstance(a.type, TileType):
            ty = I32 if a.type.dtype == "i1" else llvm_type(a.type.dtype)
            scalars.append(KernelArg(a.hint, "scalar", a.type.dtype, ty))
    dims = [KernelArg(d, "dim", "i32", I32) for d in runtime_dims(kernel)]
    unknown = strided - {a.name for a in tensors}
    if unknown:
        raise ValueError(f"strided tensors {sorted(unknown)} are not tensor parameters of '{kernel.attrs['sym_name']}'")
    strides = [KernelArg(a.hint, "stride", "i64", I64, axis)
               for a in body if isinstance(a.type, TensorType) and a.hint in strided
               for axis in range(len(a.type.dims) - 1)]
    return tensors + scalars + dims + strides


def lower_kernel(kernel: ops.KernelOp, ctx: ThreadContext, target: GpuTarget,
                 strided: frozenset[str] = frozenset()) -> LoweredKernel:
    """Lower a thread IR kernel (from ``compile_thread_ir``) to an LLVM module for ``target``;
    the tensors named in ``strided`` take their strides as arguments (see the module docstring)."""
    if ctx.target.wave_size != target.wave_size:
        raise ValueError(f"thread IR for {ctx.target.name} (wave{ctx.target.wave_size}) cannot run on "
                         f"{target.name} (wave{target.wave_size})")
    name = kernel.attrs["sym_name"]
    args = kernel_args(kernel, target, strided)
    threads = int(kernel.attrs["threads"])
    module = target.new_module(name)
    tensor_params = [a for a in kernel.body.args if isinstance(a.type, TensorType)]
    readonly = [i for i, a in enumerate(tensor_params) if not a.type.out]
    fn = target.declare_kernel(module, name, [a.type for a in args], threads,
                               arg_names=[_arg_name(a) for a in args],
                               readonly_args=readonly)
    by_kind = {kind: [(a, v) for a, v in zip(args, fn.args) if a.kind == kind] for kind in ("tensor", "scalar", "dim", "stride")}
    params = kernel.attrs.get("params", {})
    dims: dict[str, ir.Value] = {a.name: v for a, v in by_kind["dim"]}
    for k, v in params.items():
        if isinstance(v, int) and k not in dims:
            dims[k] = ir.Constant(I32, v)
    load_lowerings()
    lw = KernelLowering(kernel, ctx, target, module, fn, dims)
    values: dict[str, Any] = {}
    given: dict[str, list[ir.Value]] = {}
    for a, v in by_kind["stride"]:
        given.setdefault(a.name, []).append(v)
    for (a, v), param in zip(by_kind["tensor"], tensor_params):
        strides = (*given[a.name], ir.Constant(I64, 1)) if a.name in given else _strides(lw, param.type)
        values[a.name] = TensorRef(a.name, v, a.dtype, strides)
    for a, v in by_kind["scalar"]:
        values[a.name] = lw.b.icmp_signed("!=", v, ir.Constant(I32, 0)) if a.dtype == "i1" else v
    lw.lower_block(kernel.body, [values[a.hint] for a in kernel.body.args])
    lw.b.ret_void()
    return LoweredKernel(module, name, args, threads, int(kernel.attrs.get("lds_bytes", 0)), target, kernel, ctx,
                         dict(lw.stats))


def _arg_name(a: KernelArg) -> str:
    return {"dim": f"dim.{a.name}", "stride": f"stride.{a.name}.{a.axis}"}.get(a.kind, a.name)


def _strides(lw: KernelLowering, t: TensorType) -> tuple[ir.Value, ...]:
    """Row-major element strides (i64) of a dense tensor; products of static dims folded here so
    that the IR states them as constants."""
    strides: list[ir.Value] = []
    static = 1
    dynamic: ir.Value | None = None
    for d in reversed(t.dims):
        strides.append(_times(lw, dynamic, static))
        if isinstance(d, int):
            static *= d
        elif isinstance(lw.dims.get(d), ir.Constant):
            static *= int(lw.dims[d].constant)
        else:
            size = lw.b.zext(lw.dims[d], I64)
            dynamic = size if dynamic is None else lw.b.mul(dynamic, size)
    return tuple(reversed(strides))


def _times(lw: KernelLowering, dynamic: ir.Value | None, static: int) -> ir.Value:
    if dynamic is None:
        return ir.Constant(I64, static)
    return dynamic if static == 1 else lw.b.mul(dynamic, ir.Constant(I64, static))


__all__ = ["LOWERINGS", "KernelArg", "LoweredKernel", "kernel_args", "lower_kernel", "runtime_dims"]

