"""Named passes over the IR and the manager that runs them.

Each pass is one module with a ``run(kernel) -> bool`` (True when it changed
something) and is registered here by name. The manager verifies the IR after every
pass and can print it after each one (``tdslc compile --print-after-all``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tiledsl.ir.core import Op, verify_tree
from tiledsl.ir.passes import cse, dce, dot_acc, fold, pipeline, sink_broadcast, split_tail
from tiledsl.ir.printer import print_op


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Op], bool]
    doc: str


PASSES: dict[str, Pass] = {}


def register_pass(name: str, run: Callable[[Op], bool], doc: str) -> None:
    PASSES[name] = Pass(name, run, doc)


register_pass("fold", fold.run, "constant folding, and `if` on a constant condition replaced by its branch")
register_pass("cse", cse.run, "common subexpression elimination of pure ops, scoped by region")
register_pass("sink-broadcast", sink_broadcast.run,
              "push broadcasts through element-wise ops so only x[:, _] broadcasts remain")
register_pass("pipeline", pipeline.run,
              "software-pipeline the LDS copies of `for ... pipeline S` loops (async copies, S buffers); "
              "the thread level runs it for targets with asynchronous copies")
register_pass("dot-acc", dot_acc.run, "x + dot(a, b) becomes dot(a, b, x): the product accumulates into x")
register_pass("dce", dce.run, "dead code elimination of pure ops whose results are unused")
register_pass("split-tail", split_tail.run,
              "split a loop whose body masks against a bound into full tiles without the masks and the rest")

DEFAULT_PIPELINE = ("fold", "cse", "dot-acc", "split-tail", "cse", "dce")


@dataclass
class PassManager:
    """Runs passes in order, verifying after each; records the IR text after each
    pass when ``record`` is set."""

    names: tuple[str, ...] = DEFAULT_PIPELINE
    record: bool = False
    snapshots: list[tuple[str, str]] = field(default_factory=list)

    def run(self, kernel: Op) -> Op:
        for name in self.names:
            if name not in PASSES:
                raise KeyError(f"unknown pass '{name}' (known: {', '.join(sorted(PASSES))})")
            PASSES[name].run(kernel)
            verify_tree(kernel)
            if self.record:
                self.snapshots.append((name, print_op(kernel)))
        return kernel
