"""The thread level: layouts assigned, LDS allocated, tile IR distributed to thread IR.

    kernel, ctx = compile_thread_ir(program, "gfx942")

The stages ``layout-ir`` and ``thread-ir`` of the compile pipeline (``tiledsl.stages``) do the
work: software pipelining (``pipeline`` loops, on targets with asynchronous copies), layout
assignment, the choice of each LDS tile's storage layout, LDS allocation (with reuse),
distribution, then defer-sums, CSE and DCE on the thread IR. These functions are their entry
points by level.
"""

from __future__ import annotations

from typing import Any

from tiledsl.ir import ops as tile_ops
from tiledsl.layout import Layout, LayoutError
from tiledsl.targets import Target
from tiledsl.thread.context import ThreadContext


def layout_ir(program: Any, target: str | Target) -> tuple[tile_ops.KernelOp, ThreadContext]:
    """Tile IR with a layout on every register tile and a storage layout and an offset on
    every LDS tile (the ``layout-ir`` stage; cached on the program: do not mutate it)."""
    from tiledsl.stages import run_with_context
    kernel, ctx = run_with_context(program, "layout-ir", target)
    return kernel, ctx.thread


def compile_thread_ir(program: Any, target: str | Target) -> tuple[tile_ops.KernelOp, ThreadContext]:
    """Thread IR for ``program`` on ``target`` (the ``thread-ir`` stage, cached on the program)."""
    from tiledsl.stages import run_with_context
    kernel, ctx = run_with_context(program, "thread-ir", target)
    return kernel, ctx.thread


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
