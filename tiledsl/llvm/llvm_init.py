"""The one place where tiledsl imports and initialises llvmlite.

Import ``ir`` (llvmlite.ir) and ``binding`` (llvmlite.binding) from here, never from llvmlite
directly, so that the import order below holds for the whole package.

Pointer spelling: opaque pointers (``ptr addrspace(3)``), decided here and not by the user's
environment. LLVM 22 only has opaque pointers; it still *parses* llvmlite's default typed spelling
(``[256 x float] addrspace(3)*``) but prints ``ptr`` back (docs/targets/llvm-pipeline.md
§2.1), so typed text would make our own ``--emit llvm`` output disagree with LLVM's and
let llvmlite infer load/GEP element types from a pointee that LLVM ignores. Two measures make
the choice hold whatever happened before tiledsl was imported:

1. llvmlite reads ``LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS`` once, when the top-level
   ``llvmlite`` package is first imported. If we are first, we set it to ``0`` for that import
   only and restore the user's value afterwards (so child processes see their own setting).
2. If llvmlite was already imported in typed mode (e.g. by numba), the target modules still
   never create a typed pointer: every pointer type is ``ir.PointerType(addrspace=N)``, LDS
   globals get an opaque ``.type``, and loads/GEPs always pass the element type explicitly.
   The text is then identical in both modes, and ``compile()`` re-prints it through LLVM.
"""

from __future__ import annotations

import os
import sys

_TYPED_POINTERS_ENV = "LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"


def _import_llvmlite_with_opaque_pointers() -> None:
    if "llvmlite" in sys.modules:
        return
    previous = os.environ.get(_TYPED_POINTERS_ENV)
    os.environ[_TYPED_POINTERS_ENV] = "0"
    try:
        import llvmlite  # noqa: F401  (reads the variable at import time)
    finally:
        if previous is None:
            del os.environ[_TYPED_POINTERS_ENV]
        else:
            os.environ[_TYPED_POINTERS_ENV] = previous


_import_llvmlite_with_opaque_pointers()

import llvmlite
from llvmlite import binding, ir

#: True when llvmlite.ir prints every pointer as ``ptr``; False only when another library imported
#: llvmlite in typed mode before tiledsl (see the module docstring, point 2).
OPAQUE_POINTER_TEXT: bool = not llvmlite.ir_layer_typed_pointers_enabled

_initialized = False


def initialize() -> None:
    """Register every LLVM target and asm printer with llvmlite (idempotent).

    All targets, not only AMDGPU and NVPTX: llvmlite offers no per-target initialiser for them,
    and the cost is paid once per process.
    """
    global _initialized
    if not _initialized:
        binding.initialize_all_targets()
        # Shared-memory (addrspace 3) pointers are 32 bits on NVPTX, as Triton and nvcc use them:
        # with 64-bit ones every LDS address is 64-bit arithmetic (add.s64, cvt.u64.u32). The data
        # layout the NVPTX TargetMachine reports then says p3:32:32. No effect on other targets.
        binding.set_option("tiledsl", "-nvptx-short-ptr")
        binding.initialize_all_asmprinters()
        _initialized = True


__all__ = ["OPAQUE_POINTER_TEXT", "binding", "initialize", "ir"]
