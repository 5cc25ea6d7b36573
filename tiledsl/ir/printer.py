"""The one text form of the IR (tile IR and thread IR share it).

    %r = name(%a, %b) {key = value, ...} ({ ^(%x: type): ... }) : type loc("file":line:col)

Generic on purpose: a new op needs no printer or parser code, and
print → parse → print is the identity (tested for every example after every pass).
"""

from __future__ import annotations

import math
from typing import Any

from tiledsl.diagnostics import Loc
from tiledsl.ir.core import Block, Op, Value
from tiledsl.ir.types import Sym


def format_attr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_attr(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {format_attr(x)}" for k, x in v.items()) + "}"
    if v is None:
        return "none"
    if isinstance(v, Sym):
        return v.text
    if isinstance(v, Loc):
        return f"loc({format_attr(v.file)}:{v.line}:{v.col})"
    raise TypeError(f"cannot print attribute {v!r}")


class Printer:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def name(self, v: Value) -> str:
        key = id(v)
        if key not in self.names:
            if v.hint:
                base, n = v.hint, 0
                cand = base
                while cand in self.used:
                    n += 1
                    cand = f"{base}_{n}"
            else:
                cand = str(self.counter)
                self.counter += 1
                while cand in self.used:
                    cand = str(self.counter)
                    self.counter += 1
            self.used.add(cand)
            self.names[key] = cand
        return "%" + self.names[key]

    def op(self, op: Op, indent: int) -> list[str]:
        pad = "  " * indent
        head = ""
        if op.results:
            head = ", ".join(self.name(r) for r in op.results) + " = "
        head += f"{op.name}(" + ", ".join(self.operand(v) for v in op.operands) + ")"
        if op.attrs:
            head += " {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in op.attrs.items()) + "}"
        lines = [pad + head]
        if op.regions:
            lines[-1] += " ("
            for i, r in enumerate(op.regions):
                lines[-1] += "{"
                lines.extend(self.block(r, indent + 1))
                lines.append(pad + "}" + ("," if i + 1 < len(op.regions) else ""))
                if i + 1 < len(op.regions):
                    lines[-1] += " "
            lines[-1] += ")"
        tail = ""
        if len(op.results) == 1:
            tail += f" : {op.results[0].type}"
        elif op.results:
            tail += " : (" + ", ".join(str(r.type) for r in op.results) + ")"
        if op.loc is not None:
            tail += f' loc("{op.loc.file}":{op.loc.line}:{op.loc.col})'
        lines[-1] += tail
        return lines

    def operand(self, v: Value) -> str:
        if id(v) not in self.names:
            return "%<undefined>"
        return self.name(v)

    def block(self, b: Block, indent: int) -> list[str]:
        pad = "  " * (indent - 1)
        args = ", ".join(f"{self.name(a)}: {a.type}" for a in b.args)
        lines = [f"{pad}^({args}):"]
        for op in b.ops:
            lines.extend(self.op(op, indent))
        return lines


def print_op(op: Op) -> str:
    """The text of an op (a whole kernel, usually), ending in a newline."""
    return "\n".join(Printer().op(op, 0)) + "\n"
