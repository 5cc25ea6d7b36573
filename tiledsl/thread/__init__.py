"""The thread level: layouts assigned, LDS allocated, tile IR distributed to thread IR.

    kernel, ctx = compile_thread_ir(program, "gfx942")

runs, on a copy of the program's tile IR: software pipelining (``pipeline`` loops, on
targets with asynchronous copies), layout assignment, the choice of each LDS tile's
storage layout, LDS allocation (with reuse), distribution, then CSE and DCE on the thread
IR, verifying after each step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tiledsl.diagnostics import TdslError
from tiledsl.ir import ops as tile_ops
from tiledsl.ir.core import verify_tree
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.ir.parser import parse_op
from tiledsl.ir.passes import cse, dce, layouts, lds_alloc, lds_layout, pipeline, sink_broadcast
from tiledsl.ir.printer import print_op
from tiledsl.layout import Layout, LayoutError
from tiledsl.targets import Target, get_target
from tiledsl.thread import defer_sums
from tiledsl.thread import ops as thread_ops  # noqa: F401  (registers the thread IR ops)
from tiledsl.thread.context import ThreadContext
from tiledsl.thread.distribute import distribute
from tiledsl.thread.limits import check_limits


@contextlib.contextmanager
def _quoting(program: Any) -> Iterator[None]:
    """Errors in the program found at the thread level quote its source, as sema's do."""
    try:
        yield
    except TdslError as e:
        e.source = e.source or getattr(program, "source", None)
        raise


def layout_ir(program: Any, target: str | Target) -> tuple[tile_ops.KernelOp, ThreadContext]:
    """Tile IR with a layout on every register tile and a storage layout and an offset on
    every LDS tile."""
    kernel = parse_op(print_op(program.lowered()))
    if program.unbound_consts:
        raise TdslError(kernel.loc, f"the thread level needs every const: pass "
                                    f"{', '.join(f'-D {c}=...' for c in program.unbound_consts)}")
    with _quoting(program):
        check_limits(kernel, get_target(target) if isinstance(target, str) else target)
    try:
        ctx = ThreadContext.for_kernel(kernel, target)
    except ValueError as e:
        raise TdslError(kernel.loc, str(e)) from None
    with _quoting(program):
        if pipeline.run(kernel, async_copy=ctx.target.has_async_copy):
            cse.run(kernel)
    sink_broadcast.run(kernel)
    dce.run(kernel)
    verify_tree(kernel)
    try:
        layouts.run(kernel, ctx)
    except LayoutError as e:
        raise TdslError(kernel.loc, f"layout assignment failed on {ctx.target.name}: {e}") from None
    verify_tree(kernel)
    lds_layout.run(kernel, ctx)
    verify_tree(kernel)
    with _quoting(program):
        lds_alloc.run(kernel, ctx.target.lds_bytes, ctx.target.name)
    verify_tree(kernel)
    return kernel, ctx


def compile_thread_ir(program: Any, target: str | Target) -> tuple[tile_ops.KernelOp, ThreadContext]:
    """Thread IR for ``program`` on ``target`` (cached on the program per target)."""
    cache = program.__dict__.setdefault("_thread_ir", {})
    key = target if isinstance(target, str) else target.name
    if key not in cache:
        kernel, ctx = layout_ir(program, target)
        buffers = {}
        for op in kernel.walk():
            if isinstance(op, tile_ops.LdsAllocOp):
                name = op.result.hint or f"scratch{len(buffers)}"
                buffers[name] = [op.attrs["offset"], *LdsStorage.of(op).record()]
        tk = distribute(kernel, ctx)
        tk.attrs["lds_buffers"] = buffers
        verify_tree(tk)
        defer_sums.run(tk)
        cse.run(tk)
        dce.run(tk)
        verify_tree(tk)
        cache[key] = (tk, ctx)
    return cache[key]


def layouts_of(program: Any, target: str) -> dict[str, Layout]:
    """The concrete layout of every named register tile of the kernel (by name)."""
    kernel, ctx = layout_ir(program, target)
    out: dict[str, Layout] = {}
    for op in kernel.walk():
        for r in op.results:
            t = r.type
            if r.hint and getattr(t, "layout", None) and t.shape:
                try:
                    out.setdefault(r.hint, ctx.bind(t.layout, tuple(t.shape), t.dtype))
                except LayoutError:
                    continue
    return out


__all__ = ["ThreadContext", "compile_thread_ir", "layout_ir", "layouts_of"]
