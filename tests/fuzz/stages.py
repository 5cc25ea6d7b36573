"""Run one program through every stage and say what each stage did.

    outcomes = run_stages(source, params, arrays, scalars, oracle)

Stages, in order: ``load`` (parse and check), ``block`` (the block interpreter, compared with
the oracle when there is one), ``thread:T`` for each thread target (the thread interpreter,
compared with the block level), ``host:T`` (the thread IR of T lowered to LLVM and run on the
CPU, compared with the block level), ``compile:T`` for each native target (LLVM, then the code
object or PTX, through ``run_until`` with the compiler's stage budget). Each stage ends ``ok``, ``rejected`` (a located TdslError: the program is
refused, which the language allows) or ``fail``: any other exception (internal compiler
errors included), an unlocated TdslError, a failed interpreter check where the block level
was clean, an answer outside the oracle's bound, or a stage over its time budget.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import tiledsl
from tiledsl.diagnostics import InternalCompilerError
from tiledsl.stages import Options, StageBudgetExceeded, run_until

from .model import RV, agree

THREAD_TARGETS = ("gfx942", "gfx1100", "sm_90", "sm_90a", "generic")
#: The thread IR of these targets lowered to LLVM and run on the CPU (tests/llvm/host_simt.py).
HOST_TARGETS = ("generic",)
COMPILE_TARGETS = ("gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a")
STAGE_BUDGET_S = 20.0
#: The compiler's own budgets for a stage (tiledsl.stages.Options): over the time, an internal
#: error (StageBudgetExceeded, reported here as a timeout); over the op count, a located error.
OPTIONS = Options(stage_budget_s=STAGE_BUDGET_S)


class StageTimeout(Exception):
    """A stage ran past its budget."""


@dataclass
class Outcome:
    stage: str                 # load | block | thread:T | compile:T
    status: str                # ok | rejected | fail
    kind: str = ""             # for fail: crash | unlocated | timeout | report | mismatch | oracle
    detail: str = ""
    exc: BaseException | None = None
    seconds: float = 0.0

    @property
    def target(self) -> str | None:
        return self.stage.split(":", 1)[1] if ":" in self.stage else None

    def __str__(self) -> str:
        head = f"{self.stage}: {self.status}"
        if self.kind:
            head += f" ({self.kind})"
        return f"{head}: {self.detail}" if self.detail else head


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Raise StageTimeout in the body after ``seconds`` (SIGALRM; in the main thread only —
    elsewhere the caller checks the elapsed time afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise StageTimeout(f"over the {seconds:.0f} s budget")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def describe(exc: BaseException) -> str:
    """The exception and where it was raised (the innermost tiledsl frames)."""
    cause = exc.cause if isinstance(exc, InternalCompilerError) else exc
    frames = [f for f in traceback.extract_tb(cause.__traceback__) if "/tiledsl/" in f.filename]
    where = " <- ".join(f"{f.filename.split('/tiledsl/')[-1]}:{f.lineno} {f.name}" for f in frames[::-1][:3])
    text = str(cause).strip().splitlines()
    head = f"{type(cause).__name__}: {text[0] if text else ''}"
    if isinstance(exc, InternalCompilerError):
        head = f"internal compiler error in {exc.stage}: {head}"
    return f"{head}  [{where}]" if where else head


def attempt(stage: str, fn: Callable[[], Any], source: str) -> tuple[Any, Outcome]:
    """Run one stage; an exception becomes its outcome."""
    start = time.perf_counter()
    try:
        with budget(STAGE_BUDGET_S):
            result = fn()
    except tiledsl.TdslError as e:
        took = time.perf_counter() - start
        lines = source.split("\n")
        if e.loc is None:
            return None, Outcome(stage, "fail", "unlocated", f"TdslError without a location: {e.message}", e, took)
        if e.loc.file == "<string>" and not 1 <= e.loc.line <= len(lines):
            return None, Outcome(stage, "fail", "unlocated", f"TdslError at {e.loc}, outside the source", e, took)
        return None, Outcome(stage, "rejected", "", f"{e.loc.line}:{e.loc.col}: {e.message}", e, took)
    except (StageTimeout, StageBudgetExceeded) as e:
        return None, Outcome(stage, "fail", "timeout", describe(e), e, time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 — any other exception is the finding
        timeout = isinstance(e, InternalCompilerError) and isinstance(e.cause, StageTimeout)
        return None, Outcome(stage, "fail", "timeout" if timeout else "crash", describe(e), e,
                             time.perf_counter() - start)
    took = time.perf_counter() - start
    if took > STAGE_BUDGET_S:
        return None, Outcome(stage, "fail", "timeout", f"took {took:.1f} s", None, took)
    return result, Outcome(stage, "ok", seconds=took)


def _copies(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: a.copy() for n, a in arrays.items()}


def _disagreement(name: str, got: np.ndarray, want: RV, dtype: str) -> str | None:
    ok = agree(got, want, dtype)
    if ok.all():
        return None
    bad = np.argwhere(~ok)
    first = tuple(int(x) for x in bad[0])
    return (f"'{name}' differs at {len(bad)} of {ok.size} elements; first {list(first)}: got {got[first]!r}, "
            f"want {want.v[first]!r} ± {want.e[first]:.3g}")


NORMWISE_TOLERANCE = {"f32": 1e-4, "f16": 4e-3, "bf16": 3e-2, "f8e4m3": 0.13, "f8e5m2": 0.25,
                      "i32": 0.0, "i8": 0.0, "u8": 0.0, "i16": 0.0, "u32": 0.0, "i64": 0.0}


def _normwise_disagreement(name: str, got: np.ndarray, want: np.ndarray, dtype: str) -> str | None:
    """Without an oracle: the same non-finite positions and ‖got − want‖ / ‖want‖ within a
    tolerance of the dtype (reductions may sum in another order)."""
    finite = np.isfinite(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if not np.array_equal(finite, np.isfinite(got)) or not same[~finite].all():
        bad = np.argwhere(~same & ~(finite & np.isfinite(got)))
        first = tuple(int(x) for x in bad[0])
        return f"'{name}' non-finite elements differ; first {list(first)}: got {got[first]!r}, want {want[first]!r}"
    diff = float(np.linalg.norm(got[finite] - want[finite]))
    scale = max(float(np.linalg.norm(want[finite])), 1e-30)
    if diff > NORMWISE_TOLERANCE[dtype] * scale:
        return f"'{name}' differs: |got - want| / |want| = {diff / scale:.3g}"
    return None


def run_stages(source: str, params: dict[str, int], arrays: dict[str, np.ndarray], scalars: dict[str, Any],
               outputs: dict[str, str], oracle: dict[str, RV] | None = None,
               variants: dict[str, dict[str, RV]] | None = None,
               thread_targets: tuple[str, ...] = THREAD_TARGETS,
               compile_targets: tuple[str, ...] = COMPILE_TARGETS, lenient: bool = False,
               host_targets: tuple[str, ...] = HOST_TARGETS) -> list[Outcome]:
    """Every stage's outcome for one program (``outputs``: out tensor name → dtype). After a
    stage that fails or rejects the program, the stages that need its result are skipped.
    ``variants`` are oracles of known wrong semantics: a block level that disagrees with the
    oracle but agrees with one says so in its outcome ("matches NAME").

    ``lenient`` is for programs that may be wrong (mutants): a failed check of the block
    level ends its stage ``rejected``, and the thread level then only has to run; LDS races
    it reports are the program's (a mutant may have lost a ``sync``)."""
    prog, load = attempt("load", lambda: tiledsl.load(source, params=params), source)
    outcomes = [load]
    if load.status != "ok":
        return outcomes
    block_args = _copies(arrays)
    report, block = attempt("block", lambda: prog.interpret(**block_args, **scalars), source)
    outcomes.append(block)
    if block.status != "ok":
        return outcomes
    block_ok = report.ok
    if not block_ok:
        block.status, block.kind, block.detail = "fail", "report", f"block level not ok: {report}"
        if not lenient:
            return outcomes
        block.status, block.kind = "rejected", ""
    # The bound of the block level's answer: the oracle's, centred on the block level's value.
    expected: dict[str, RV] = {}
    for name, dtype in outputs.items():
        got = block_args[name].astype(np.float64)
        if oracle is not None:
            msg = _disagreement(name, got, oracle[name], dtype)
            if msg is not None and block.status == "ok":
                block.status, block.kind, block.detail = "fail", "oracle", f"block level vs oracle: {msg}"
                for vname, variant in (variants or {}).items():
                    if all(_disagreement(n, block_args[n].astype(np.float64), variant[n], d) is None
                           for n, d in outputs.items()):
                        block.detail += f" (matches {vname})"
            expected[name] = RV(got, 2 * oracle[name].e)
    for target in thread_targets:
        args = _copies(arrays)
        rep, out = attempt(f"thread:{target}", lambda t=target, a=args: prog.interpret(
            level="thread", target=t, shuffle_blocks=True, nan_fill=True, seed=1, **a, **scalars), source)
        outcomes.append(out)
        if out.status != "ok" or not block_ok:
            continue
        if lenient and all(e.kind == "lds-race" for e in rep.errors):
            continue
        if not rep.ok:
            out.status, out.kind, out.detail = "fail", "report", f"thread level not ok: {rep}"
            continue
        for name, dtype in outputs.items():
            got = args[name].astype(np.float64)
            msg = (_disagreement(name, got, expected[name], dtype) if oracle is not None
                   else _normwise_disagreement(name, got, block_args[name].astype(np.float64), dtype))
            if msg is not None:
                out.status, out.kind, out.detail = "fail", "mismatch", f"thread vs block level: {msg}"
                break
    for like in host_targets if block_ok and not lenient else ():
        args = _copies(arrays)
        ran, out = attempt(f"host:{like}", lambda t=like, a=args: _run_host(prog, t, a, scalars), source)
        if ran is False:
            continue                            # a scalar the host runner cannot pass
        outcomes.append(out)
        if out.status == "ok":
            for name, dtype in outputs.items():
                got = args[name].astype(np.float64)
                msg = (_disagreement(name, got, expected[name], dtype) if oracle is not None
                       else _normwise_disagreement(name, got, block_args[name].astype(np.float64), dtype))
                if msg is not None:
                    out.status, out.kind, out.detail = "fail", "mismatch", f"lowered code vs block level: {msg}"
                    break
    for target in compile_targets:
        _, out = attempt(f"compile:{target}", lambda t=target: _compile(prog, t), source)
        outcomes.append(out)
    return outcomes


def _run_host(prog: tiledsl.Program, like: str, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> bool:
    """The thread IR of ``like`` lowered to LLVM, JIT-compiled for the CPU and run on every
    block, writing ``arrays`` in place; False (nothing run) where a scalar is not f32/i32 or a
    tensor's dtype is one the host runner does not pass (f8, i8, ...)."""
    import sys
    from pathlib import Path
    host_dir = str(Path(__file__).resolve().parents[1] / "llvm")
    if host_dir not in sys.path:
        sys.path.insert(0, host_dir)
    from host_simt import HostKernel, HostSimtTarget

    from tiledsl.llvm.lower import lower_kernel
    from tiledsl.stages import run_with_context

    if any(p.dtype not in ("f32", "i32") for p in prog.scalar_params) or \
            any(p.dtype not in ("f32", "f16", "bf16", "i32") for p in prog.tensor_params):
        return False
    bound, _ = prog.bind_shapes(arrays)
    kernel, ctx = run_with_context(bound, "thread-ir", like, OPTIONS)
    bf16 = {p.name for p in prog.tensor_params if p.dtype == "bf16"}
    host = {n: (np.ascontiguousarray(a.astype(np.float32)).view(np.uint32) >> 16).astype(np.uint16) if n in bf16
            else np.ascontiguousarray(a) for n, a in arrays.items()}
    HostKernel(lower_kernel(kernel, ctx.thread, HostSimtTarget(like)))(host, scalars)
    for n in bf16:
        arrays[n][...] = (host[n].astype(np.uint32) << 16).view(np.float32)
    for n, a in host.items():
        if n not in bf16:
            arrays[n][...] = a
    return True


def _compile(prog: tiledsl.Program, target: str) -> None:
    """Every stage to LLVM and the code object or PTX, within the compiler's own budgets."""
    art = run_until(prog, "llvm", target, OPTIONS)
    assert art.llvm_ir and art.binary
    if not art.is_amd and shutil.which("ptxas"):
        art.cubin()
