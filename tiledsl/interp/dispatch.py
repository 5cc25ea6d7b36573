"""What both interpreters share: a table from op name to handler, and the loop that
runs a block of ops through it (one handler per op, filed beside the interpreter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tiledsl.ir import ops
from tiledsl.ir.core import Block

Handler = Callable[[Any, Any, list[Any]], list[Any] | None]


def handler_table() -> tuple[dict[str, Handler], Callable[..., Callable[[Handler], Handler]]]:
    """A fresh handler table and the decorator that files a handler under op names."""
    table: dict[str, Handler] = {}

    def handles(*names: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            for n in names:
                table[n] = fn
            return fn
        return deco
    return table, handles


class OpInterpreter:
    """Runs blocks of ops with ``handlers``; values live in ``env`` by value identity."""

    handlers: dict[str, Handler]
    level: str = "block"

    def __init__(self) -> None:
        self.env: dict[int, Any] = {}

    def run_block(self, block: Block, args: list[Any]) -> list[Any]:
        """Bind the block's arguments, run its ops, return what its ``yield`` yields."""
        for a, v in zip(block.args, args):
            self.env[id(a)] = v
        for op in block.ops:
            if isinstance(op, ops.YieldOp):
                return [self.env[id(v)] for v in op.operands]
            handler = self.handlers.get(op.name)
            if handler is None:
                raise NotImplementedError(f"the {self.level} interpreter has no handler for '{op.name}'")
            outs = handler(self, op, [self.env[id(v)] for v in op.operands])
            for r, v in zip(op.results, outs or []):
                self.env[id(r)] = v
        return []
