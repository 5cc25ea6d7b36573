"""The LLVM compile pipeline (parse → verify → optimise → emit), and running it in a child.

The stage order is docs/targets/llvm-pipeline.md §3.1-§3.2: the triple and data layout are set on the parsed
module *before* the O3 pipeline, which would otherwise optimise with 64-bit pointers
everywhere; codegen would fill the data layout in, but only after the optimiser ran.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import tempfile
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from tiledsl.llvm.llvm_init import binding, initialize

T = TypeVar("T")


class CompileError(RuntimeError):
    """LLVM rejected a module: it did not parse, verify, or lower."""


class LlvmAbort(CompileError):
    """LLVM ended the (child) process, e.g. "Cannot select" for an unsupported intrinsic."""


def compile_text(
    tm: binding.TargetMachine, triple: str, text: str, opt: int, *, emit_object: bool, slp: bool = False
) -> tuple[str, str, bytes | None]:
    """Compile textual LLVM IR with ``tm``; return (optimised IR, asm, object or None). ``slp``: run
    the SLP vectorizer (off in llvmlite's default tuning options)."""
    initialize()
    try:
        mod = binding.parse_assembly(text)
    except RuntimeError as e:
        raise CompileError(f"LLVM could not parse the module: {e}") from None
    mod.triple = triple
    mod.data_layout = str(tm.target_data)
    try:
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"LLVM verifier: {e}") from None
    if opt > 0:
        pto = binding.create_pipeline_tuning_options(speed_level=opt)
        pto.slp_vectorization = slp
        pb = binding.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    llvm_ir = str(mod)
    # Codegen rewrites the module it runs on (e.g. AMDGPU lowers LDS globals), so each
    # emission gets its own copy of the optimised module.
    try:
        asm = tm.emit_assembly(mod.clone())
        obj = tm.emit_object(mod.clone()) if emit_object else None
    except RuntimeError as e:
        raise CompileError(f"LLVM code generation: {e}") from None
    return llvm_ir, asm, obj


def run_in_child(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a forked child and return its result or raise its exception.

    LLVM reports some errors with ``report_fatal_error`` or an assertion (this is an
    assertions-enabled build), which ends the process; in a child that only ends the child, and
    its stderr becomes the LlvmAbort message. The result travels back pickled through a pipe.
    """
    if not hasattr(os, "fork"):
        raise OSError("safe compilation needs os.fork (POSIX)")
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # child: never return into the caller's stack
            os.close(read_fd)
            os.dup2(err.fileno(), 2)
            # A Python stack dump of the aborting child (pytest enables faulthandler) would only
            # bury LLVM's own message, which is what the parent reports.
            faulthandler.disable()
            try:
                payload = pickle.dumps(("ok", fn(*args)))
            except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                payload = _pickled_error(e)
            with os.fdopen(write_fd, "wb") as w:
                w.write(payload)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as r:
            data = r.read()
        _, status = os.waitpid(pid, 0)
        if data:
            kind, value = pickle.loads(data)
            if kind == "ok":
                return value
            raise value
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    reason = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
    raise LlvmAbort(f"LLVM aborted the compile ({reason}): {message[-2000:] or 'no message'}")


def _pickled_error(e: BaseException) -> bytes:
    try:
        return pickle.dumps(("error", e))
    except Exception:  # noqa: BLE001 - an unpicklable exception still has a message
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        return pickle.dumps(("error", CompileError(text)))
