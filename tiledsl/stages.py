"""The compile pipeline: one list of named stages, run by one runner.

    tile-ir ──▶ ir ──▶ layout-ir ──▶ thread-ir ──▶ llvm ──▶ asm | obj | hsaco | ptx | cubin | meta

Each stage starts from the result of the one before (``enter``: a fresh copy or a conversion, so a
cached result is never mutated by a later stage) and runs its passes in order. Every pass has the
same signature, ``run(kernel, ctx) -> bool`` with one :class:`CompileContext`, and is registered by
name in :data:`PASSES`. What a stage does to the IR the runner does in one place, for every pass:

- verify the IR after the pass (a broken invariant is our bug);
- translate errors: a ``TdslError`` is the user's mistake and gets the program's source to quote;
  a ``LayoutError`` (worded for the user) becomes a located ``TdslError``; anything else is an
  :class:`~tiledsl.diagnostics.InternalCompilerError` naming the stage, the pass and the target;
- print the IR after the pass when asked (``tdslc compile --print-after-all``, every level);
- keep the stage within its budgets: op count (a kernel that explodes is refused with a located
  error) and, when set, time;
- cache: each stage's result is kept on the program, keyed by (stage, target, options).

``tdslc compile --emit X`` runs the stages until the one that produces X (:data:`EMITS`).

    artifact = run_until(program, "llvm", "gfx942")     # what Program.compile returns
    kernel = run_until(program, "thread-ir", "sm_90")
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tiledsl.diagnostics import InternalCompilerError, Loc, TdslError
from tiledsl.frontend import ast
from tiledsl.ir import ops as tile_ops
from tiledsl.ir.core import Op, VerifyError, verify_tree
from tiledsl.ir.parser import parse_op
from tiledsl.ir.passes import cse, dce, dot_acc, fold, pipeline, sink_broadcast, split_tail
from tiledsl.ir.printer import print_op
from tiledsl.layout import LayoutError
from tiledsl.targets import NATIVE_TARGETS, Target, UnknownTargetError, get_target

# ------------------------------------------------------------------------------------------ context

@dataclass(frozen=True)
class Options:
    """How to compile: the tile-IR passes, the LLVM optimisation level, and the budgets.

    ``tile_passes`` None means :data:`DEFAULT_TILE_PASSES` (``tdslc compile --passes`` overrides).
    ``print_ir(stage, after, target, text)``, when set, receives the IR after every pass of every
    stage run (``after``: the pass, or the conversion that made the stage's IR — sema, distribute,
    lower; the cache is bypassed so that every pass runs). ``stage_budget_s``: a stage that takes longer is an
    internal error (the generated-program tests use it; None: no limit). ``max_ops``: the most ops a
    kernel may grow to at any stage before it is refused (e.g. a loop pipelined 1000 deep).
    """

    tile_passes: tuple[str, ...] | None = None
    opt: int = 3
    print_ir: Callable[[str, str, str | None, str], None] | None = field(default=None, compare=False)
    stage_budget_s: float | None = None
    max_ops: int = 400_000
    #: Tensor parameters whose strides are kernel arguments (views contiguous in their last dim):
    #: a specialisation of the llvm stage only (``tiledsl.llvm.lower`` describes the ABI).
    strided: frozenset[str] = frozenset()

    @property
    def passes(self) -> tuple[str, ...]:
        return DEFAULT_TILE_PASSES if self.tile_passes is None else self.tile_passes


@dataclass
class CompileContext:
    """What every pass of a compile sees: the program, the target (None before the thread level),
    the options, and what earlier stages set up — the thread context (wave count, bound layouts)
    from layout-ir on, the LLVM backend for the llvm stage. ``loc`` is where a pass is working,
    for internal errors (passes may set it)."""

    program: Any
    target: Target | None
    options: Options
    thread: Any = None          # tiledsl.thread.context.ThreadContext
    backend: Any = None         # tiledsl.llvm.target_base.GpuTarget
    stage: str = ""
    loc: Loc | None = None
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ passes

@dataclass(frozen=True)
class Pass:
    """A named pass: ``run(kernel, ctx) -> bool`` (True when it changed the kernel)."""

    name: str
    run: Callable[[Op, CompileContext], bool]
    doc: str


PASSES: dict[str, Pass] = {}


def register_pass(name: str, run: Callable[[Op, CompileContext], bool], doc: str) -> None:
    if name in PASSES:
        raise RuntimeError(f"pass {name!r} registered twice")
    PASSES[name] = Pass(name, run, doc)


def _thread_pass(fn: Callable[..., Any]) -> Callable[[Op, CompileContext], bool]:
    """A pass of the thread level, which works with the thread context."""
    return lambda kernel, ctx: bool(fn(kernel, ctx.thread))


def _layouts(kernel: Op, ctx: CompileContext) -> bool:
    from tiledsl.thread import layouts
    try:
        return layouts.run(kernel, ctx.thread)
    except LayoutError as e:
        raise TdslError(kernel.loc, f"layout assignment failed on {ctx.target.name}: {e}") from None


def _lds_layout(kernel: Op, ctx: CompileContext) -> bool:
    from tiledsl.thread import lds_layout
    return lds_layout.run(kernel, ctx.thread)


def _lds_alloc(kernel: Op, ctx: CompileContext) -> bool:
    from tiledsl.thread import lds_alloc
    return lds_alloc.run(kernel, ctx.target.lds_bytes, ctx.target.name)


def _defer_sums(kernel: Op, ctx: CompileContext) -> bool:
    from tiledsl.thread import defer_sums
    return bool(defer_sums.run(kernel))


def _pipeline(kernel: Op, ctx: CompileContext) -> bool:
    # As a tile-IR pass (--passes pipeline) it pipelines; at the thread level only where the
    # target copies asynchronously (see tiledsl.ir.passes.pipeline).
    return pipeline.run(kernel, async_copy=ctx.target is None or ctx.target.has_async_copy)


register_pass("fold", lambda k, c: fold.run(k),
              "constant folding, and `if` on a constant condition replaced by its branch")
register_pass("cse", lambda k, c: cse.run(k), "common subexpression elimination of pure ops, scoped by region")
register_pass("sink-broadcast", lambda k, c: sink_broadcast.run(k),
              "push broadcasts through element-wise ops so only x[:, _] broadcasts remain")
register_pass("pipeline", _pipeline,
              "software-pipeline the LDS copies of `for ... pipeline S` loops (async copies, S buffers); "
              "the thread level runs it for targets with asynchronous copies")
register_pass("dot-acc", lambda k, c: dot_acc.run(k), "x + dot(a, b) becomes dot(a, b, x): the product accumulates into x")
register_pass("dce", lambda k, c: dce.run(k), "dead code elimination of pure ops whose results are unused")
register_pass("split-tail", lambda k, c: split_tail.run(k),
              "split a loop whose body masks against a bound into full tiles without the masks and the rest")
register_pass("layouts", _layouts, "(thread level) give every register tile a thread layout; convert where two meet")
register_pass("lds-layout", _lds_layout, "(thread level) choose each LDS tile's storage order, padding, swizzle")
register_pass("lds-alloc", _lds_alloc, "(thread level) place LDS tiles by liveness, reusing bytes; check the size")
register_pass("defer-sums", _defer_sums,
              "(thread IR) keep a loop-carried sum of cross-lane reductions as per-lane partials")

#: The tile-IR passes a compile runs (``--passes`` replaces them).
DEFAULT_TILE_PASSES = ("fold", "cse", "dot-acc", "split-tail", "cse", "dce")
#: The passes of tile IR that the user may name in ``--passes``: the target-independent ones.
TILE_PASSES = ("fold", "cse", "sink-broadcast", "pipeline", "dot-acc", "dce", "split-tail")


# ------------------------------------------------------------------------------------------ stages

@dataclass(frozen=True)
class Stage:
    """One named stage: ``enter`` turns the previous stage's result into this stage's IR (None for
    the first), then ``passes(ctx)`` run on it in order. ``entry`` names ``enter`` where it makes new
    IR (sema, distribute), so that ``--print-after-all`` shows it; None where it copies. ``target``:
    None (target-independent), "any" (any target, thread level) or "native" (an LLVM backend)."""

    name: str
    doc: str
    enter: Callable[[Any, CompileContext], Any]
    passes: Callable[[CompileContext], tuple[str, ...]] = lambda ctx: ()
    target: str | None = None
    entry: str | None = None


def _sema(_: None, ctx: CompileContext) -> tile_ops.KernelOp:
    from tiledsl.frontend.sema import build_kernel
    k = build_kernel(ctx.program.ast, ctx.program.params)
    pipeline.check(k)
    return k


def _copy(kernel: Op, ctx: CompileContext) -> Op:
    return parse_op(print_op(kernel))


def _enter_thread_level(kernel: Op, ctx: CompileContext) -> Op:
    """A copy of the tile IR for the thread level of ``ctx.target``, after checking the target's
    limits (threads, LDS, registers a thread holds), before any work that grows with them."""
    from tiledsl.thread.context import ThreadContext
    from tiledsl.thread.limits import check_limits
    if ctx.program.unbound_consts:
        raise TdslError(kernel.loc, f"the thread level needs every const: pass "
                                    f"{', '.join(f'-D {c}=...' for c in ctx.program.unbound_consts)}")
    kernel = _copy(kernel, ctx)
    check_limits(kernel, ctx.target)
    try:
        ctx.thread = ThreadContext.for_kernel(kernel, ctx.target)
    except ValueError as e:
        raise TdslError(kernel.loc, str(e)) from None
    return kernel


def _distribute(kernel: tile_ops.KernelOp, ctx: CompileContext) -> Op:
    from tiledsl.ir.lds_storage import LdsStorage
    from tiledsl.thread.distribute import distribute
    buffers = {}
    for op in kernel.walk():
        if isinstance(op, tile_ops.LdsAllocOp):
            name = op.result.hint or f"scratch{len(buffers)}"
            buffers[name] = [op.attrs["offset"], *LdsStorage.of(op).record()]
    # Distribution reads its input and builds new IR: a cached layout-ir result stays as it was.
    tk = distribute(kernel, ctx.thread)
    tk.attrs["lds_buffers"] = buffers
    return tk


def _llvm(kernel: tile_ops.KernelOp, ctx: CompileContext) -> Any:
    from tiledsl.compile import artifact
    from tiledsl.llvm.lower import lower_kernel
    lowered = lower_kernel(kernel, ctx.thread, ctx.backend, ctx.options.strided)
    if ctx.options.print_ir is not None:
        ctx.options.print_ir("llvm", "lower", ctx.target.name, str(lowered.module))
    compiled = ctx.backend.compile(lowered.module, opt=ctx.options.opt)
    return artifact(ctx.program, ctx.target, lowered, compiled)


STAGES: tuple[Stage, ...] = (
    Stage("tile-ir", "tile IR as sema builds it from the program (checked, before any pass)", _sema,
          entry="sema"),
    Stage("ir", "tile IR after the target-independent passes", _copy, lambda ctx: ctx.options.passes),
    Stage("layout-ir", "tile IR with a thread layout on every register tile and LDS storage and offsets",
          _enter_thread_level,
          lambda ctx: ("pipeline", "cse", "sink-broadcast", "dce", "layouts", "lds-layout", "lds-alloc"),
          target="any"),
    Stage("thread-ir", "SIMT thread IR", _distribute, lambda ctx: ("defer-sums", "cse", "dce"), target="any",
          entry="distribute"),
    Stage("llvm", "the optimised LLVM module, compiled to assembly and object", _llvm, target="native"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


@dataclass(frozen=True)
class Emit:
    """What ``--emit NAME`` writes: ``show`` applied to the result of ``stage``; ``backend``: the
    LLVM backend it exists for (None: any)."""

    name: str
    stage: str
    show: Callable[[Any, CompileContext], str | bytes]
    doc: str
    backend: str | None = None


def _ast_text(_: Any, ctx: CompileContext) -> str:
    return ast.dump(ctx.program.ast) + "\n"


EMITS: dict[str, Emit] = {e.name: e for e in (
    Emit("ast", "tile-ir", _ast_text, "the typed AST"),
    Emit("tile-ir", "tile-ir", lambda k, c: print_op(k), "tile IR as sema builds it, before any pass"),
    Emit("ir", "ir", lambda k, c: print_op(k), "tile IR after the passes"),
    Emit("layout-ir", "layout-ir", lambda k, c: print_op(k), "tile IR with thread layouts and LDS offsets"),
    Emit("thread-ir", "thread-ir", lambda k, c: print_op(k), "SIMT thread IR"),
    Emit("llvm", "llvm", lambda a, c: a.llvm_ir, "LLVM IR (optimised)"),
    Emit("asm", "llvm", lambda a, c: a.asm, "AMDGPU assembly or PTX"),
    Emit("ptx", "llvm", lambda a, c: a.asm, "PTX", backend="nvptx"),
    Emit("obj", "llvm", lambda a, c: a.object, "AMDGPU relocatable object", backend="amdgpu"),
    Emit("hsaco", "llvm", lambda a, c: a.binary, "linked AMDGPU code object (needs ld.lld)", backend="amdgpu"),
    Emit("cubin", "llvm", lambda a, c: a.cubin(), "NVIDIA cubin (needs ptxas)", backend="nvptx"),
    Emit("meta", "llvm", lambda a, c: a.meta_json(), "launch metadata JSON"),
)}


# ------------------------------------------------------------------------------------------ runner

def resolve_target(target: str | Target | None, stage: Stage) -> Target | None:
    """The target record a stage runs for; raises TdslError for a name that cannot be used."""
    if stage.target is None:
        return None
    if target is None:
        raise TdslError(None, f"stage '{stage.name}' needs a target")
    if isinstance(target, str):
        try:
            target = get_target(target)
        except UnknownTargetError as e:
            raise TdslError(None, str(e)) from None
    if stage.target == "native" and not target.native:
        raise TdslError(None, f"cannot compile natively for '{target.name}' "
                              f"(native targets: {', '.join(NATIVE_TARGETS)})")
    return target


def run_until(program: Any, stage: str, target: str | Target | None = None,
              options: Options | None = None) -> Any:
    """Run the stages of ``program`` up to and including ``stage`` for ``target``; return that
    stage's result (a kernel op, or the compiled :class:`~tiledsl.compile.Artifact` for ``llvm``).
    Results are cached on the program: callers must not mutate them."""
    return run_with_context(program, stage, target, options)[0]


def run_with_context(program: Any, stage: str, target: str | Target | None = None,
                     options: Options | None = None) -> tuple[Any, CompileContext]:
    """:func:`run_until`, and the context the stages ran with (its ``thread`` context, timings)."""
    if stage not in STAGE_NAMES:
        raise ValueError(f"unknown stage '{stage}' (stages: {', '.join(STAGE_NAMES)})")
    options = options or Options()
    chain = STAGES[:STAGE_NAMES.index(stage) + 1]
    record = resolve_target(target, chain[-1])
    if stage == "llvm" and options.print_ir is None:
        # Native code comes from the compile cache when this source was compiled before, in
        # this process or another (tiledsl.cache); the program's own results come first.
        from tiledsl import cache
        own = program.stage_results.get(("llvm", record.name, options.passes, options.opt))
        key = cache.program_key(program, record, options) if own is None else None
        if key is not None:
            art, ctx = cache.compile_once(key, lambda: _run_chain(program, chain, record, options))
            return art, ctx or CompileContext(program, record, options, stage=stage)
    return _run_chain(program, chain, record, options)


def _run_chain(program: Any, chain: tuple[Stage, ...], record: Target | None, options: Options
               ) -> tuple[Any, CompileContext]:
    ctx = CompileContext(program, record, options)
    cache: dict[tuple, tuple[Any, Any]] = program.stage_results
    result: Any = None
    for st in chain:
        ctx.stage = st.name
        ctx.target = record if st.target else None
        key = (st.name, record.name if st.target else None, options.passes, options.opt if st.name == "llvm" else 0)
        if st.name == "llvm" and options.strided:
            key += (options.strided,)
        hit = cache.get(key) if options.print_ir is None else None
        if hit is not None:
            result, ctx.thread = hit
            continue
        if st.target == "native" and ctx.backend is None:
            ctx.backend = backend_for(record)
        result = _run_stage(st, result, ctx)
        cache[key] = (result, ctx.thread)
    return result, ctx


def backend_for(target: Target) -> Any:
    """The LLVM backend (a ``GpuTarget``) of a native target record."""
    if target.backend == "amdgpu":
        from tiledsl.backend_amdgpu import AmdgpuTarget
        return AmdgpuTarget(target)
    if target.backend == "nvptx":
        from tiledsl.backend_nvptx import NvptxTarget
        return NvptxTarget(target)
    raise TdslError(None, f"'{target.name}' has no LLVM backend")


def _run_stage(stage: Stage, previous: Any, ctx: CompileContext) -> Any:
    start = time.perf_counter()
    with _guard(ctx, stage.name, getattr(previous, "loc", None)):
        result = stage.enter(previous, ctx)
    if isinstance(result, Op):
        _check(result, ctx, stage.name, stage.entry)
        for name in stage.passes(ctx):
            p = PASSES.get(name)
            if p is None:
                raise ValueError(f"unknown pass '{name}' (known: {', '.join(sorted(PASSES))})")
            with _guard(ctx, f"{stage.name}/{name}", result.loc):
                p.run(result, ctx)
            _check(result, ctx, stage.name, name)
    elapsed = time.perf_counter() - start
    ctx.timings[stage.name] = elapsed
    budget = ctx.options.stage_budget_s
    if budget is not None and elapsed > budget:
        raise StageBudgetExceeded(stage.name, TimeoutError(f"took {elapsed:.1f} s (budget {budget:.1f} s)"),
                                  getattr(result, "loc", None), _target_name(ctx), ctx.program.source)
    return result


def _check(kernel: Op, ctx: CompileContext, stage: str, after: str | None) -> None:
    """Verify ``kernel`` after a pass, keep it within the op budget, print it if asked (not after
    a stage's copy of the previous result, ``after`` None)."""
    with _guard(ctx, f"{stage}/{after}", kernel.loc):
        verify_tree(kernel)
    count = sum(1 for _ in kernel.walk())
    if count > ctx.options.max_ops:
        raise TdslError(kernel.loc, f"the kernel grew to {count} ops in stage '{stage}' (after {after}); "
                                    f"the limit is {ctx.options.max_ops}",
                        ["use fewer pipeline stages, smaller tiles or fewer unrolled loops"],
                        source=ctx.program.source)
    if ctx.options.print_ir is not None and after is not None:
        ctx.options.print_ir(stage, after, _target_name(ctx), print_op(kernel))


class StageBudgetExceeded(InternalCompilerError):
    """A stage took longer than ``Options.stage_budget_s``."""


def _target_name(ctx: CompileContext) -> str | None:
    return ctx.target.name if ctx.target is not None else None


@contextlib.contextmanager
def _guard(ctx: CompileContext, where: str, loc: Loc | None) -> Iterator[None]:
    """The runner's error translation (see the module docstring)."""
    ctx.loc = loc
    try:
        yield
    except TdslError as e:
        e.source = e.source or ctx.program.source
        raise
    except InternalCompilerError as e:
        e.source = e.source or ctx.program.source
        raise
    except LayoutError as e:
        raise TdslError(ctx.loc, f"no thread layout fits on {_target_name(ctx)}: {e}",
                        source=ctx.program.source) from None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:
        raise InternalCompilerError(where, e, ctx.loc, _target_name(ctx), ctx.program.source) from e


def internal_errors(stage: str, program: Any, target: str | None = None) -> contextlib.AbstractContextManager:
    """Error translation for work outside the stages (the interpreters, the launcher): the same
    rules as the runner's."""
    ctx = CompileContext(program, get_target(target) if target else None, Options())
    return _guard(ctx, stage, None)


__all__ = ["DEFAULT_TILE_PASSES", "EMITS", "PASSES", "STAGES", "STAGE_NAMES", "TILE_PASSES", "CompileContext", "Emit",
           "Options", "Pass", "Stage", "StageBudgetExceeded", "VerifyError", "backend_for", "internal_errors",
           "register_pass", "resolve_target", "run_until", "run_with_context"]
