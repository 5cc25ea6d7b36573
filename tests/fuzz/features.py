"""What a program uses: the constructs (FEATURES) that known bugs hang on.

``features_of`` reads them from a generated program's model; ``ir_features`` from the tile
IR of any program (mutated examples, reproducers), so that failures of programs given as text
are triaged the same way. The generator avoids features by name (``programs(avoid=...)``).
"""

from __future__ import annotations

import math
from typing import Any

import tiledsl
from tiledsl.frontend import ast
from tiledsl.ir import ops
from tiledsl.ir.core import Op, Value

from .model import (
    Assign,
    Binary,
    Cast,
    Dot,
    Expand,
    Expr,
    For,
    If,
    Kernel,
    LdsDecl,
    LdsRead,
    LdsWrite,
    Load,
    Reduce,
    Stmt,
    Store,
    Transpose,
    Unary,
    Var,
    Where,
)

# Constructs a program may use, recorded in Generated.features; ``avoid`` takes these names.
FEATURES = {
    "min_reduce": "min(x, axis=k)",
    "reduce_npow2": "a reduction over an axis whose length is not a power of two",
    "reduce_width1": "a reduction over an axis of length 1",
    "full_reduce": "a reduction whose result has one element (to a scalar, or rowsum of a one-row tile)",
    "width1": "a tile with a dim of 1 (outside reductions)",
    "scalar_load": "a single-element load (lo = Off[i])",
    "scalar_store": "a single-element store (Y[i, j] <- x)",
    "row_broadcast": "a one-row or one-column tile broadcast against a larger tile",
    "reduce_bcast_width": "a row (column) reduction broadcast against a tile of another width (height)",
    "reduce_mix": "an element-wise op on a reduction and a 1-D value from another reduction or none "
                  "(rowsum(x) + colsum(y), rowsum(x) + V[...])",
    "huge_block": "a block of more than 16 waves (over 1024 threads with 64-lane waves)",
    "atomic": "an out tensor updated with atomic_add/max/min (once per element, onto the identity)",
    "until": "a load slice cut at a run-time bound (X[a : +BM until b])",
    "gather": "a load whose first axis is gathered by an index tile (X[idx, a : +BN])",
    "dot": "dot()",
    "small_dot": "a dot with a dim below 16",
    "f32_dot": "a dot of f32 operands",
    "dot_transposed_reg": "a dot operand that is the transpose of a register tile (not of an LDS tile)",
    "dot_staged": "a dot no 16x16x16 instruction tiles (or of f32) with a register operand, staged through LDS",
    "if_in_for": "an if inside a for loop that updates loop-carried values",
    "pipeline": "a pipelined loop",
    "lds": "an LDS tile",
}


def _stmts(body: list[Stmt], loops: int = 0) -> list[tuple[Stmt, int]]:
    """Every statement with the number of loops around it."""
    out = []
    for s in body:
        out.append((s, loops))
        if isinstance(s, For):
            out += _stmts(s.body, loops + 1)
        elif isinstance(s, If):
            out += _stmts(s.then, loops) + _stmts(s.orelse, loops)
    return out


def _exprs(s: Stmt) -> list[Expr]:
    """The expressions of a statement that make register values (a copy into LDS makes none)."""
    roots: list[Expr] = []
    if isinstance(s, LdsWrite) and isinstance(s.value, Load) and s.value.pad is None:
        roots = [e for i in s.value.indices for e in i.exprs()]
    elif isinstance(s, (Assign, Store, LdsWrite)):
        roots = [s.value] + ([i.start for i in s.indices if i.start is not None] if isinstance(s, Store) else [])
    elif isinstance(s, For):
        roots = [s.lo, s.hi, s.step]
    elif isinstance(s, If):
        roots = [s.cond]
    return [e for r in roots for e in r.walk()]


def expanded(e: Expr) -> bool:
    """Made with x[:, _] / x[_, :] (possibly through element-wise ops with scalars)."""
    if isinstance(e, Expand):
        return True
    if isinstance(e, (Binary, Where, Unary, Cast)):
        tiles = [c for c in e.children() if c.ty.rank == e.ty.rank and c.ty.rank > 0]
        return bool(tiles) and all(c.ty.shape == e.ty.shape and expanded(c) for c in tiles)
    return False


def reduce_origins(e: Expr, var_origins: dict[str, set[tuple[int, int]]]) -> set[tuple[int, int]]:
    """(axis, length of the reduced axis) of the reductions a 1-D value comes from (through
    element-wise ops and variables)."""
    if e.ty.rank != 1:
        return set()
    if isinstance(e, Reduce):
        return {(e.axis, e.x.ty.shape[e.axis])}
    if isinstance(e, Var):
        return var_origins.get(e.name, set())
    if isinstance(e, (Unary, Binary, Where, Cast)):
        return set().union(*(reduce_origins(c, var_origins) for c in e.children()))
    return set()


def _in_lds(e: Expr) -> bool:
    return isinstance(e, LdsRead) or (isinstance(e, Transpose) and isinstance(e.x, LdsRead))


def fits_16x16x16(m: int, n: int, k: int, waves: int) -> bool:
    """Whether a 16x16x16 matrix instruction (every matrix target has one, or a divisor of it)
    tiles an m x n x k dot over ``waves`` waves split as wm x wn."""
    return k % 16 == 0 and any(m % (16 * wm) == 0 and n % (16 * (waves // wm)) == 0
                               for wm in range(1, waves + 1) if waves % wm == 0)


def _mixed(parts: list[set[tuple[int, int]]]) -> bool:
    """The 1-D operands of one element-wise op come from different reductions, or some from a
    reduction and some from none (a load, a fill): their layouts then disagree."""
    return any(parts) and any(p != parts[0] for p in parts)


def features_of(kernel: Kernel) -> set[str]:
    """The FEATURES a program uses."""
    found: set[str] = set()
    stmts = _stmts(kernel.body)
    origins: dict[str, set[tuple[int, int]]] = {}
    for _ in range(3):                    # loop-carried values: a few rounds reach the fixpoint
        for s, _ in stmts:
            if isinstance(s, Assign):
                origins.setdefault(s.name, set()).update(reduce_origins(s.value, origins))
    for s, loops in stmts:
        if isinstance(s, If) and loops:
            found.add("if_in_for")
        if isinstance(s, For) and s.pipeline > 1:
            found.add("pipeline")
        if isinstance(s, LdsDecl):
            found.add("lds")
        if isinstance(s, Store) and s.atomic:
            found.add("atomic")
        if isinstance(s, Store) and all(i.start is not None and i.extent is None for i in s.indices):
            found.add("scalar_store")
        for e in _exprs(s):
            if e.ty.rank and 1 in e.ty.shape and not expanded(e):
                found.add("width1")
            if isinstance(e, Reduce):
                n = e.x.ty.shape[e.axis]
                found |= {"min_reduce"} if e.kind == "min" else set()
                found |= {"reduce_npow2"} if not is_pow2(n) else set()
                found |= {"reduce_width1"} if n == 1 else set()
                found |= {"full_reduce"} if math.prod(e.ty.shape) == 1 else set()
            if isinstance(e, Load) and all(i.start is not None and i.extent is None and not i.gather
                                           for i in e.indices):
                found.add("scalar_load")
            if isinstance(e, Load) and any(i.gather for i in e.indices):
                found.add("gather")
            if isinstance(e, Load) and any(i.until is not None for i in e.indices):
                found.add("until")
            if isinstance(e, Dot):
                found.add("dot")
                if min(*e.a.ty.shape, e.b.ty.shape[1]) < 16:
                    found.add("small_dot")
                if e.a.ty.dtype == "f32":
                    found.add("f32_dot")
                if any(isinstance(x, Transpose) and not isinstance(x.x, LdsRead) for x in (e.a, e.b)):
                    found.add("dot_transposed_reg")
                if not _in_lds(e.a) or not _in_lds(e.b):
                    m, k = e.a.ty.shape
                    if e.a.ty.dtype == "f32" or not fits_16x16x16(m, e.b.ty.shape[1], k, kernel.waves):
                        found.add("dot_staged")
            if isinstance(e, (Binary, Where)):
                for c in e.children():
                    if c.ty.rank == e.ty.rank and c.ty.shape != e.ty.shape and not expanded(c):
                        found.add("row_broadcast")
                    if isinstance(c, Expand) and c.ty.rank == e.ty.rank and c.ty.shape != e.ty.shape:
                        full = e.ty.shape[c.axis]
                        if reduce_origins(c.x, origins) - {(c.axis, full)}:
                            found.add("reduce_bcast_width")
                if e.ty.rank == 1 and _mixed([reduce_origins(c, origins) for c in e.children() if c.ty.rank == 1]):
                    found.add("reduce_mix")
    return found


def is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


# ---------------------------------------------------------------- from the tile IR

def _derived(op: Op, seen: dict[int, bool]) -> bool:
    """A value made by expand_dims (through element-wise ops with scalars and constants)."""
    if isinstance(op, ops.ExpandDimsOp):
        return True
    if isinstance(op, ops.ElementwiseOp):
        tiles = [v for v in op.operands if not _uniform(v)]
        return bool(tiles) and all(seen.get(id(v), False) for v in tiles)
    return False


def _uniform(v: Value) -> bool:
    """A scalar, or a scalar broadcast to a tile."""
    t = v.type
    if getattr(t, "shape", None) == ():
        return True
    return isinstance(v.owner, ops.BroadcastOp) and v.owner.operands[0].type.shape == ()


def _carried_groups(kernel: ops.KernelOp) -> list[list[Value]]:
    """Values that are one variable across a loop or an if (init, block argument, yield, result)."""
    groups = []
    for op in kernel.walk():
        if isinstance(op, ops.ForOp):
            body = op.regions[0]
            term = body.ops[-1]
            for i, r in enumerate(op.results):
                groups.append([r, op.operands[3 + i], body.args[1 + i], term.operands[i]])
        elif isinstance(op, ops.IfOp):
            for i, r in enumerate(op.results):
                groups.append([r, *(reg.ops[-1].operands[i] for reg in op.regions)])
    return groups


def _ir_origins(kernel: ops.KernelOp) -> dict[int, set[tuple[int, int]]]:
    origins: dict[int, set[tuple[int, int]]] = {}
    all_ops = list(kernel.walk())
    groups = _carried_groups(kernel)
    for _ in range(4):
        for op in all_ops:
            if not op.results or getattr(op.results[0].type, "shape", None) is None:
                continue
            r = op.results[0]
            if len(r.type.shape) != 1:
                continue
            if isinstance(op, ops.ReduceOp):
                x = op.operands[0]
                origins[id(r)] = {(op.attrs["axis"], x.type.shape[op.attrs["axis"]])}
            elif isinstance(op, (ops.ElementwiseOp, ops.BroadcastOp)):
                for v in op.operands:
                    origins.setdefault(id(r), set()).update(origins.get(id(v), set()))
        for group in groups:
            merged = set().union(*(origins.get(id(v), set()) for v in group))
            for v in group:
                origins[id(v)] = set(merged)
    return origins


def _has_min_reduction(node: Any) -> bool:
    if isinstance(node, ast.Call) and node.func == "min" and "axis" in node.kwargs:
        return True
    if isinstance(node, list):
        return any(_has_min_reduction(x) for x in node)
    if isinstance(node, dict):
        return any(_has_min_reduction(x) for x in node.values())
    if hasattr(node, "__dataclass_fields__"):
        return any(_has_min_reduction(getattr(node, f)) for f in node.__dataclass_fields__ if f != "loc")
    return False


def ir_features(prog: tiledsl.Program) -> set[str]:
    """The FEATURES of a loaded program, from its tile IR (and its AST for min reductions,
    which the tile IR does not tell from sums)."""
    kernel = prog.tile_ir()
    waves = kernel.attrs["block"] if kernel.attrs.get("block_unit") == "waves" else 1
    found: set[str] = {"min_reduce"} if _has_min_reduction(prog.ast) else set()
    if waves > 16:
        found.add("huge_block")
    origins = _ir_origins(kernel)
    derived: dict[int, bool] = {}
    for op in kernel.walk():
        for r in op.results:
            derived[id(r)] = _derived(op, derived)
            shape = getattr(r.type, "shape", None)
            if shape and 1 in shape and not derived[id(r)] and not _uniform(r) and not isinstance(op, ops.LdsAllocOp):
                found.add("width1")
        if isinstance(op, ops.IfOp) and _inside(op, ops.ForOp):
            found.add("if_in_for")
        if isinstance(op, ops.ForOp) and op.attrs.get("pipeline", 1) > 1:
            found.add("pipeline")
        if isinstance(op, ops.LdsAllocOp):
            found.add("lds")
        if isinstance(op, ops.ReduceOp):
            n = op.operands[0].type.shape[op.attrs["axis"]]
            found |= set() if is_pow2(n) else {"reduce_npow2"}
            found |= {"reduce_width1"} if n == 1 else set()
            found |= {"full_reduce"} if math.prod(op.result.type.shape) == 1 else set()
        if isinstance(op, ops.LoadOp) and op.result.type.shape == ():
            found.add("scalar_load")
        if isinstance(op, ops.StoreOp) and op.operands[-1].type.shape == ():
            found.add("scalar_store")
        if isinstance(op, ops.DotOp):
            found |= _dot_features(op, waves)
        if isinstance(op, ops.BroadcastOp):
            x = op.operands[0]
            if x.type.shape and not derived.get(id(x), False):
                found.add("row_broadcast")
            if isinstance(x.owner, ops.ExpandDimsOp):
                axis = x.owner.attrs["axis"]
                if origins.get(id(x.owner.operands[0]), set()) - {(axis, op.result.type.shape[axis])}:
                    found.add("reduce_bcast_width")
        if isinstance(op, ops.ElementwiseOp) and len(op.result.type.shape) == 1 \
                and _mixed([origins.get(id(v), set()) for v in op.operands if not _uniform(v)]):
            found.add("reduce_mix")
    return found


def _inside(op: Op, kind: type) -> bool:
    block = op.parent
    while block is not None and block.parent is not None:
        if isinstance(block.parent, kind):
            return True
        block = block.parent.parent
    return False


def _dot_features(op: Op, waves: int) -> set[str]:
    a, b = op.operands[0], op.operands[1]
    (m, k), n = a.type.shape, b.type.shape[1]
    found = {"dot"}
    if min(m, n, k) < 16:
        found.add("small_dot")
    if a.type.dtype == "f32":
        found.add("f32_dot")

    def in_lds(v: Value) -> bool:
        owner = v.owner
        if isinstance(owner, ops.TransposeOp):
            owner = owner.operands[0].owner
        return isinstance(owner, ops.LdsReadOp)

    if any(isinstance(v.owner, ops.TransposeOp) and not in_lds(v) for v in (a, b)):
        found.add("dot_transposed_reg")
    if not (in_lds(a) and in_lds(b)) and (a.type.dtype == "f32" or not fits_16x16x16(m, n, k, waves)):
        found.add("dot_staged")
    return found
