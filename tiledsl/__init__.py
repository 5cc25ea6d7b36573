"""tiledsl: a tile-level language for GPU kernels.

    prog = tiledsl.load("examples/attention.tdsl", params={"BM": 64})
    report = prog.interpret(Q=q, K=k, V=v, O=o, scale=0.125)
"""

from tiledsl.diagnostics import ArgumentError, InternalCompilerError, Loc, TdslError
from tiledsl.interp.report import InterpError, Report
from tiledsl.program import Module, Program, load

__all__ = ["ArgumentError", "InternalCompilerError", "InterpError", "Loc", "Module", "Program", "Report",
           "TdslError", "load"]
__version__ = "0.1.0"
