"""The typed AST of a .tdsl program.

Plain dataclasses with a source location each. Sema fills ``Expr.ty`` with the
type it checked, so ``tdslc compile --emit ast`` prints a typed tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tiledsl.diagnostics import Loc


@dataclass
class Node:
    loc: Loc


@dataclass
class Expr(Node):
    # Filled by sema: the type of the value (a string, for printing).
    ty: str | None = field(default=None, init=False, compare=False)


@dataclass
class IntLit(Expr):
    value: int


@dataclass
class FloatLit(Expr):
    value: float


@dataclass
class Name(Expr):
    id: str


@dataclass
class Neg(Expr):
    operand: Expr


@dataclass
class Not(Expr):
    operand: Expr


@dataclass
class Invert(Expr):
    """``~x``: the bits of an integer flipped."""

    operand: Expr


@dataclass
class BinOp(Expr):
    op: str          # + - * / // % < <= > >= == != and or & | ^ << >>
    lhs: Expr
    rhs: Expr


@dataclass
class Call(Expr):
    func: str
    args: list[Expr]
    kwargs: dict[str, Expr]


@dataclass
class Transpose(Expr):
    operand: Expr


@dataclass
class Index:
    """One entry of a subscript: ``e`` | ``e : +E`` | ``:`` | ``_``, the first two optionally
    followed by ``until B`` (a run-time bound: indices from B on are masked)."""

    kind: str        # "scalar" | "extent" | "full" | "newaxis"
    loc: Loc
    start: Expr | None = None
    extent: Expr | None = None
    bound: Expr | None = None


@dataclass
class Subscript(Expr):
    base: Expr
    indices: list[Index]
    pad: Expr | None = None


@dataclass
class LayoutExpr(Node):
    kind: str                     # a layout kind (mma, blocked, ...) or a declared layout's name
    args: list[Any] | None        # None for a reference to a declared layout
    kwargs: dict[str, Any]


@dataclass
class Stmt(Node):
    pass


@dataclass
class LdsDecl(Stmt):
    name: str
    dtype: str                      # a dtype or a dtype parameter, as written
    shape: list[Expr]
    dtype_loc: Loc | None = None


@dataclass
class LayoutDecl(Stmt):
    name: str
    layout: LayoutExpr


@dataclass
class Assign(Stmt):
    name: str
    value: Expr
    layout: LayoutExpr | None = None


@dataclass
class AssignMany(Stmt):
    """``a, b = f(...)``: the values of a built-in that gives several (``argmax``: value, index)."""

    names: list[str]
    name_locs: list[Loc]
    value: Expr


@dataclass
class Copy(Stmt):
    """``target <- value``: into an LDS tile or a slice of a global tensor."""

    target: str
    indices: list[Index] | None
    value: Expr
    target_loc: Loc


@dataclass
class For(Stmt):
    var: str
    lo: Expr
    hi: Expr
    step: Expr | None
    body: list[Stmt]
    stages: Expr | None = None      # ``pipeline S``: LDS buffers per pipelined copy


@dataclass
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]


@dataclass
class Sync(Stmt):
    pass


@dataclass
class CallStmt(Stmt):
    """A call whose value is not used (``atomic_add(Y[i : +BM], v)``)."""

    call: Call


@dataclass
class TensorParam(Node):
    name: str
    dtype: str                      # a dtype or a dtype parameter, as written (a Program resolves it)
    dims: list[str | int]
    out: bool
    dtype_loc: Loc | None = None


@dataclass
class ScalarParam(Node):
    name: str
    dtype: str
    dtype_loc: Loc | None = None


@dataclass
class ConstDecl(Node):
    name: str
    default: Expr | None


@dataclass
class ParamDecl(Node):
    name: str
    default: Expr


@dataclass
class DtypeDecl(Node):
    """``dtype T in (f16, bf16) = f16``: a dtype parameter. ``choices`` None: any dtype."""

    name: str
    choices: list[Name] | None
    default: Name


@dataclass
class Grid(Node):
    extents: list[Expr]
    names: list[str]


@dataclass
class BlockSize(Node):
    count: Expr
    unit: str        # "waves" | "threads"


@dataclass
class Kernel(Node):
    name: str
    params: list[TensorParam | ScalarParam]
    consts: list[ConstDecl]
    tile_params: list[ParamDecl]
    grid: Grid | None
    block: BlockSize | None
    body: list[Stmt]
    dtype_params: list[DtypeDecl] = field(default_factory=list)


def dump(node: Any, indent: int = 0) -> str:
    """The AST as an indented tree with locations and (after sema) types."""
    pad = "  " * indent
    if isinstance(node, list):
        return "\n".join(dump(n, indent) for n in node)
    if not isinstance(node, (Node, Index)):
        return f"{pad}{node!r}"
    head = f"{pad}{type(node).__name__}"
    scalars, children = [], []
    for f in fields(node):
        if f.name in ("loc", "ty", "target_loc", "dtype_loc"):
            continue
        v = getattr(node, f.name)
        if isinstance(v, (Node, Index)) or (isinstance(v, list) and v and isinstance(v[0], (Node, Index))) or isinstance(v, dict) and v:
            children.append((f.name, v))
        elif v is not None and v != [] and v != {}:
            scalars.append(f"{f.name}={v!r}")
    head += " " + " ".join(scalars) if scalars else ""
    head += f"  @{node.loc.line}:{node.loc.col}"
    if isinstance(node, Expr) and node.ty:
        head += f"  : {node.ty}"
    lines = [head]
    for name, v in children:
        lines.append(f"{pad}  .{name}")
        if isinstance(v, dict):
            for k, item in v.items():
                lines.append(f"{pad}    {k} =")
                lines.append(dump(item, indent + 3))
        else:
            lines.append(dump(v, indent + 2))
    return "\n".join(lines)
