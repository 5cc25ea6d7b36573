"""Target-independent LLVM pieces: llvmlite set-up, the GpuTarget interface, the compile pipeline.

Importing this package first imports llvmlite through ``llvm_init`` (opaque pointers).
"""

from tiledsl.llvm.llvm_init import OPAQUE_POINTER_TEXT, binding, initialize, ir
from tiledsl.llvm.pipeline import CompileError, LlvmAbort
from tiledsl.llvm.target_base import (
    MATRIX_INSTRS,
    CompiledModule,
    GpuTarget,
    MatrixInstr,
    UnsupportedOnTarget,
)

__all__ = [
    "MATRIX_INSTRS",
    "OPAQUE_POINTER_TEXT",
    "CompileError",
    "CompiledModule",
    "GpuTarget",
    "LlvmAbort",
    "MatrixInstr",
    "UnsupportedOnTarget",
    "binding",
    "initialize",
    "ir",
]
