"""tiledsl: a tile-level language for GPU kernels.

    prog = tiledsl.load("examples/attention.tdsl", params={"BM": 64})
    report = prog.interpret(Q=q, K=k, V=v, O=o, scale=0.125)

The names below are imported on first use (PEP 562), so that ``tiledsl.compiled`` can answer from
the compile cache without importing the compiler (NumPy, lark, llvmlite): a cache hit in a new
process takes a few tens of milliseconds.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LAZY = {
    "ArgumentError": "tiledsl.diagnostics", "InternalCompilerError": "tiledsl.diagnostics",
    "Loc": "tiledsl.diagnostics", "TdslError": "tiledsl.diagnostics",
    "InterpError": "tiledsl.interp.report", "Report": "tiledsl.interp.report",
    "Module": "tiledsl.program", "Program": "tiledsl.program", "load": "tiledsl.program",
    "compiled": "tiledsl.cache",
}

__all__ = ["ArgumentError", "InternalCompilerError", "InterpError", "Loc", "Module", "Program", "Report",
           "TdslError", "compiled", "load"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tiledsl' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
