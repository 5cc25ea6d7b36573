"""Semantic analysis: the AST → tile IR, with shape, dtype and level checks.

Compile-time scalars (``param``/``const`` values, literals and arithmetic on them)
are folded here as :class:`Static`; everything that exists at run time becomes an
IR value. Every user mistake is a located :class:`TdslError`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.diagnostics import Diagnostic, Loc, TdslError
from tiledsl.frontend import ast, limits
from tiledsl.frontend.builtins import BUILTINS, CONSTANTS, LAYOUT_KINDS, check_layout
from tiledsl.interp.numerics import shift_left, shift_right, wrap_int
from tiledsl.ir import ops
from tiledsl.ir.core import Block, Op, Value
from tiledsl.ir.types import (
    DTYPE_BYTES,
    DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    UNSIGNED_DTYPES,
    Dim,
    LdsType,
    Sym,
    TensorType,
    TileType,
    int_range,
    scalar,
)


@dataclass
class Static:
    """A compile-time scalar. ``weak`` literals take the dtype of what they meet."""

    value: int | float | bool
    dtype: str
    weak: bool = True

    def __str__(self) -> str:
        return f"static {self.dtype} = {self.value}"


@dataclass
class Unbound:
    """A ``const`` with no value yet: usable as a symbolic tile dim only."""

    name: str


@dataclass
class TensorRef:
    value: Value
    param: ast.TensorParam


@dataclass
class LdsRef:
    value: Value
    decl: ast.LdsDecl


@dataclass
class LayoutRef:
    text: str


@dataclass
class DtypeRef:
    """A dtype parameter (``dtype T = f16``) and the dtype it is bound to."""

    name: str
    dtype: str


@dataclass
class Poisoned:
    """A name whose statement failed: a use of it is not reported again (it would only repeat
    the first error), and the statement that uses it is skipped."""

    name: str


class _Cascade(TdslError):
    """A statement used a :class:`Poisoned` name: dropped by :meth:`Sema.stmts`, never shown."""

    def __init__(self, name: str) -> None:
        super().__init__(None, f"'{name}' is poisoned by an earlier error")


class _Stop(TdslError):
    """Every error collected so far, raised where checking cannot go on (MAX_ERRORS reached, or a
    header whose mistakes the rest would trip over): passed through, not collected again."""


#: The most errors one kernel reports before sema stops (clang's ``-ferror-limit`` default).
MAX_ERRORS = 20

SemaValue = Any  # Static | Value | Unbound | TensorRef | LdsRef | LayoutRef | DtypeRef | Poisoned

_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod",
           "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne", "and": "and", "or": "or",
           "&": "bitand", "|": "bitor", "^": "bitxor", "<<": "shl", ">>": "shr"}
_CMP = {"<", "<=", ">", ">=", "==", "!="}
_BIT = {"&", "|", "^", "<<", ">>"}
#: Compile-time integers without a dtype of their own (literals, params) are exact and may be as
#: large as an i64 or a u32; they must fit the dtype they meet.
_WEAK_INT_RANGE = (-2**63, 2**63 - 1)


def _type_str(v: SemaValue) -> str:
    if isinstance(v, (Value, LdsRef)):
        return str(v.value.type if isinstance(v, LdsRef) else v.type)
    return str(v)


class Sema:
    """Builds one kernel op from a kernel AST and compile-time parameter values."""

    def __init__(self, kernel: ast.Kernel, params: dict[str, int | float]) -> None:
        self.k = kernel
        self.overrides = dict(params)
        self.scopes: list[dict[str, SemaValue]] = [{}]
        self.blocks: list[Block] = []
        self.assign_locs: dict[str, Loc] = {}
        self.runtime_dims: dict[str, tuple[str, int]] = {}
        self.params: dict[str, int | float] = {}
        #: The dtype parameters' values (kept out of ``params``: the IR has only the dtypes themselves).
        self.dtypes: dict[str, str] = {}
        self.block_size: tuple[int, str] | None = None
        self.grid_scalars: dict[str, ast.ScalarParam] = {}      # while building the grid region
        #: The errors found so far: a failed statement is recorded and checking goes on with the
        #: next one (the names it defines poisoned), so one run reports every independent mistake.
        self.errors: list[TdslError] = []

    # ------------------------------------------------------------ helpers
    def err(self, loc: Loc | None, msg: str, *notes: str) -> TdslError:
        return TdslError(loc, msg, list(notes))

    def emit(self, op: Op) -> Op:
        limits.check_result_sizes(op, self.params)
        self.blocks[-1].append(op)
        return op

    def lookup(self, name: str, loc: Loc) -> SemaValue:
        for scope in reversed(self.scopes):
            if name in scope:
                if isinstance(scope[name], Poisoned):
                    raise _Cascade(name)
                return scope[name]
        if name in CONSTANTS:
            return Static(CONSTANTS[name], "f32")
        if name in self.runtime_dims:
            if not self.blocks:      # a header's compile-time expression (the block size): no body yet
                raise self.err(loc, f"'{name}' is a tensor dim, known only at run time; this must be a "
                                    f"compile-time integer", "use a param or a const")
            return self.emit(ops.DimOp([], [scalar("i32")], {"name": name}, loc=loc, hints=[name])).result
        if name in self.grid_scalars:
            return self.grid_scalar(self.grid_scalars[name], loc)
        raise self.err(loc, f"'{name}' is not defined")

    def grid_scalar(self, p: ast.ScalarParam, loc: Loc) -> Value:
        """A scalar parameter read by the grid's extents (the body reads its block argument)."""
        if p.dtype != "i32":
            raise self.err(loc, f"the grid can use i32 scalar parameters only; '{p.name}' is {p.dtype}")
        # No name hint: the printer would then rename the body's argument of that name.
        return self.emit(ops.ScalarArgOp([], [scalar("i32")], {"name": p.name}, loc=loc)).result

    def bind(self, name: str, v: SemaValue) -> None:
        self.scopes[-1][name] = v

    def const(self, value: float | bool, dtype: str, loc: Loc) -> Value:
        if dtype in INT_DTYPES:
            if isinstance(value, float) and not value.is_integer():
                raise self.err(loc, f"float value {value} used where an {dtype} is needed")
            lo, hi = int_range(dtype)
            if not lo <= int(value) <= hi:
                raise self.err(loc, f"integer {int(value)} does not fit in {dtype} ([{lo}, {hi}])",
                               f"cast explicitly to wrap it: {dtype}(...) of a wider integer")
        py = bool(value) if dtype == "i1" else int(value) if dtype in INT_DTYPES else float(value)
        return self.emit(ops.ConstOp([], [scalar(dtype)], {"value": py}, loc=loc)).result

    def materialize(self, v: SemaValue, loc: Loc, dtype: str | None = None) -> Value:
        """A run-time value for ``v``; weak statics take ``dtype``."""
        if isinstance(v, Value):
            return v
        if isinstance(v, Poisoned):
            raise _Cascade(v.name)
        if isinstance(v, Static):
            want = dtype if (dtype and v.weak) else v.dtype
            if want in INT_DTYPES and isinstance(v.value, float):
                raise self.err(loc, f"float value {v.value} used where an {want} is needed")
            return self.const(v.value, want, loc)
        if isinstance(v, LdsRef):
            t = v.value.type
            return self.emit(ops.LdsReadOp([v.value], [TileType(t.dtype, t.shape)], loc=loc)).result
        raise self.err(loc, f"{self.describe(v)} is not a value here")

    def describe(self, v: SemaValue) -> str:
        if isinstance(v, TensorRef):
            return f"tensor '{v.param.name}' (index it: {v.param.name}[...])"
        if isinstance(v, LayoutRef):
            return "a layout"
        if isinstance(v, Unbound):
            return f"const '{v.name}' (it has no value: pass -D {v.name}=...)"
        if isinstance(v, DtypeRef):
            return "a dtype parameter"
        return _type_str(v)

    def static_int(self, e: ast.Expr, what: str, allow_sym: bool = False) -> Dim:
        v = self.expr(e)
        if isinstance(v, Unbound) and allow_sym:
            return Sym(v.name)
        if isinstance(v, Static) and v.dtype == "i32" and not isinstance(v.value, bool):
            return int(v.value)
        if isinstance(v, Static) and isinstance(v.value, float) and v.value.is_integer() and v.weak:
            return int(v.value)
        if isinstance(v, Value) and isinstance(v.type, TileType) and v.type.shape == ():
            raise self.err(e.loc, f"{what} must be a compile-time integer, but this is a run-time value",
                           "tile shapes are fixed when the kernel is compiled; use a param or a const")
        if isinstance(v, Unbound):
            raise self.err(e.loc, f"{what} uses const '{v.name}', which has no value here",
                           f"pass -D {v.name}=... (or params={{'{v.name}': ...}})")
        raise self.err(e.loc, f"{what} must be a compile-time integer, got {self.describe(v)}")

    # ------------------------------------------------------------ kernel
    def check_tune_space(self) -> None:
        """``tune NAME in (...)`` names a ``param`` of the kernel, once, with distinct values."""
        tiles = {p.name for p in self.k.tile_params}
        seen: dict[str, Loc] = {}
        for axis in self.k.tune_space:
            if axis.name not in tiles:
                what = "a const" if axis.name in {c.name for c in self.k.consts} else "not a param of the kernel"
                raise self.err(axis.loc, f"'{axis.name}' cannot be tuned: it is {what}",
                               f"tune takes the kernel's params: {', '.join(sorted(tiles)) or 'none'}")
            if axis.name in seen:
                raise self.err(axis.loc, f"'{axis.name}' is tuned twice (first at {seen[axis.name]})")
            if len(set(axis.values)) != len(axis.values):
                raise self.err(axis.loc, f"the values of '{axis.name}' repeat: {axis.values}")
            seen[axis.name] = axis.loc

    def build(self) -> ops.KernelOp:
        """The kernel op; raises one TdslError holding every error found (up to MAX_ERRORS)."""
        try:
            kernel = self.build_kernel()
        except _Stop:
            raise
        except _Cascade:
            kernel = None       # only after an error already recorded
            assert self.errors, "a poisoned name without an error"
        except TdslError as e:
            self.errors.append(e)
            kernel = None
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise self.collected() from None
        assert kernel is not None
        return kernel

    def collected(self, cls: type[TdslError] = TdslError) -> TdslError:
        """One error holding the diagnostics of every error recorded, in source order."""
        first = self.errors[0]
        out = cls(first.loc, first.message, source=first.source)
        out.diagnostics = [d for e in self.errors for d in e.diagnostics]
        return out

    def record(self, e: TdslError) -> None:
        """Record a statement's error; stop at MAX_ERRORS."""
        self.errors.append(e)
        if len(self.errors) >= MAX_ERRORS:
            stop = self.collected(_Stop)
            stop.diagnostics.append(Diagnostic(None, f"too many errors ({MAX_ERRORS}), stopping here"))
            raise stop

    def build_kernel(self) -> ops.KernelOp:
        k = self.k
        known = {c.name for c in k.consts} | {p.name for p in k.tile_params}
        for name in self.overrides:
            if name not in known and name not in {d.name for d in k.dtype_params}:
                declared = known | {d.name for d in k.dtype_params}
                raise self.err(k.loc, f"unknown parameter '{name}'",
                               f"the kernel declares: {', '.join(sorted(declared)) or 'none'}")
        seen: dict[str, Loc] = {}
        for p in [*k.params, *k.dtype_params, *k.consts, *k.tile_params]:   # independent: report all
            if p.name in seen:
                self.record(self.err(p.loc, f"'{p.name}' is declared twice (first at {seen[p.name]})"))
            elif p.name in BUILTINS or p.name in DTYPES or p.name in CONSTANTS:
                self.record(self.err(p.loc, f"'{p.name}' is a built-in name"))
            seen.setdefault(p.name, p.loc)
        if self.errors:         # the rest of the header would trip over the same names
            raise self.collected(_Stop)
        self.check_tune_space()
        for d in k.dtype_params:
            self.bind_dtype(d)
        params = [dataclasses.replace(p, dtype=self.dtype_of(p.dtype, p.dtype_loc or p.loc))
                  for p in k.params]
        for c in k.consts:
            if c.name in self.overrides:
                self.bind_param(c.name, self.overrides[c.name], c.loc)
            elif c.default is not None:
                self.bind_param(c.name, self.static_scalar(c.default), c.loc)
            else:
                self.bind(c.name, Unbound(c.name))
        for p in k.tile_params:
            value = self.overrides[p.name] if p.name in self.overrides else self.static_scalar(p.default)
            self.bind_param(p.name, value, p.loc)
        arg_types: list[Any] = []
        for p in params:
            if isinstance(p, ast.TensorParam):
                if p.dtype == "i1":
                    raise self.err(p.loc, "tensors of i1 are not supported")
                for axis, d in enumerate(p.dims):
                    if isinstance(d, str) and d not in self.params and not self.is_unbound(d):
                        if d in seen and d not in known:
                            raise self.err(p.loc, f"dim '{d}' has the name of a parameter")
                        self.runtime_dims.setdefault(d, (p.name, axis))
                arg_types.append(TensorType(p.dtype, tuple(p.dims), p.out))
            else:
                arg_types.append(scalar(p.dtype))
        if k.grid is None:
            raise self.err(k.loc, "the kernel has no grid: add e.g. 'grid (cdiv(N, BM)) as (bm)'")
        if k.block is None:
            raise self.err(k.loc, "the kernel has no block size: add e.g. 'block 4 waves'")
        block_size = self.static_int(k.block.count, "the block size")
        if not isinstance(block_size, int) or block_size < 1:
            raise self.err(k.block.loc, "the block size must be a positive integer")
        limits.check_block_size(block_size, k.block.unit, k.block.loc)
        self.block_size = (block_size, k.block.unit)
        grid_block = Block()
        self.blocks.append(grid_block)
        if not 1 <= len(k.grid.extents) <= 3:
            raise self.err(k.grid.loc, "a grid has 1 to 3 dims")
        if len(k.grid.names) != len(k.grid.extents):
            raise self.err(k.grid.loc, f"the grid has {len(k.grid.extents)} extents but "
                                       f"{len(k.grid.names)} coordinate names")
        extents = []
        self.grid_scalars = {p.name: p for p in k.params if isinstance(p, ast.ScalarParam)}
        for e in k.grid.extents:
            v = self.expr(e)
            if isinstance(v, Static) and (v.dtype != "i32" or isinstance(v.value, bool)):
                raise self.err(e.loc, "a grid extent must be an integer")
            if isinstance(v, Static) and v.value < 0:
                raise self.err(e.loc, f"a grid extent must not be negative, got {v.value}")
            if isinstance(v, Value) and v.type != scalar("i32"):
                raise self.err(e.loc, f"a grid extent must be an i32 scalar, got {v.type}")
            extents.append(self.materialize(v, e.loc, "i32"))
        self.emit(ops.YieldOp(extents, [], loc=k.grid.loc))
        self.grid_scalars = {}
        self.blocks.pop()

        body = Block(arg_types, [p.name for p in params])
        self.blocks.append(body)
        self.scopes.append({})
        for p, a in zip(params, body.args):
            self.bind(p.name, TensorRef(a, p) if isinstance(p, ast.TensorParam) else a)
        for axis, name in enumerate(k.grid.names):
            if name in seen:
                raise self.err(k.grid.loc, f"grid coordinate '{name}' has the name of a parameter")
            bid = self.emit(ops.BlockIdOp([], [scalar("i32")], {"axis": axis}, loc=k.grid.loc, hints=[name]))
            self.bind(name, bid.result)
        self.stmts(k.body)
        self.blocks.pop()
        attrs = {"sym_name": k.name, "block": block_size, "block_unit": k.block.unit,
                 "params": dict(self.params), "grid_names": list(k.grid.names), "block_loc": k.block.loc}
        return ops.KernelOp([], [], attrs, [grid_block, body], loc=k.loc)

    def bind_dtype(self, d: ast.DtypeDecl) -> None:
        """Check a ``dtype`` declaration and bind its parameter: to the value given for it
        (``-D T=bf16``, ``params={"T": "bf16"}``) or to its default."""
        choices: list[str] = []
        for c in d.choices or []:
            if c.id in choices:
                raise self.err(c.loc, f"'{c.id}' is listed twice")
            choices.append(self.known_dtype(c))
        allowed = choices or list(DTYPES)
        default = self.known_dtype(d.default)
        if default not in allowed:
            raise self.err(d.default.loc,
                           f"the default {default} is not one of {d.name}'s dtypes ({', '.join(choices)})")
        value = self.overrides.get(d.name, default)
        if not isinstance(value, str) or value not in DTYPES:
            raise self.err(d.loc, f"dtype parameter '{d.name}' must be a dtype, got {value!r}",
                           f"dtypes: {', '.join(DTYPES)}")
        if value not in allowed:
            raise self.err(d.loc, f"{d.name}={value} is not allowed: {d.name} is one of {', '.join(choices)}")
        self.dtypes[d.name] = value
        self.bind(d.name, DtypeRef(d.name, value))

    def known_dtype(self, name: ast.Name) -> str:
        if name.id not in DTYPES:
            raise self.err(name.loc, f"unknown dtype '{name.id}'", f"dtypes: {', '.join(DTYPES)}")
        return name.id

    def dtype_name(self, name: str) -> str | None:
        """The dtype ``name`` stands for where a dtype is written: itself if it is a dtype, the
        value of a dtype parameter; None for any other name."""
        if name in DTYPES:
            return name
        v = self.lookup_quiet(name)
        return v.dtype if isinstance(v, DtypeRef) else None

    def dtype_of(self, name: str, loc: Loc) -> str:
        """:meth:`dtype_name`, or a located error for a name that is not a dtype."""
        dtype = self.dtype_name(name)
        if dtype is None:
            own = [d.name for d in self.k.dtype_params]
            raise self.err(loc, f"unknown dtype '{name}'", f"dtypes: {', '.join(DTYPES)}"
                           + (f"; this kernel's dtype parameters: {', '.join(own)}" if own else
                              "; a dtype parameter is declared in the header, e.g. 'dtype T = f16'"))
        return dtype

    def bind_param(self, name: str, value: Any, loc: Loc) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.err(loc, f"parameter '{name}' must be a number, got {value!r}")
        self.params[name] = value
        self.bind(name, Static(value, "i32" if isinstance(value, int) else "f32", weak=True))

    def static_scalar(self, e: ast.Expr) -> int | float:
        v = self.expr(e)
        if not isinstance(v, Static):
            raise self.err(e.loc, f"a parameter's value must be known at compile time, got {self.describe(v)}")
        return v.value

    def block_waves(self) -> int | None:
        """The block size in waves, where the source gives it in waves."""
        if self.block_size is not None and self.block_size[1] == "waves":
            return self.block_size[0]
        return None

    def is_unbound(self, name: str) -> bool:
        return any(isinstance(s.get(name), Unbound) for s in self.scopes)

    # ------------------------------------------------------------ statements
    def stmts(self, body: list[ast.Stmt]) -> None:
        """Check and build each statement; one that fails is recorded and skipped, and the names
        it would define are poisoned, so that the next statements are checked without repeating
        its error."""
        for s in body:
            scopes, blocks = len(self.scopes), len(self.blocks)
            try:
                getattr(self, "stmt_" + type(s).__name__)(s)
            except _Stop:
                raise
            except TdslError as e:
                del self.scopes[scopes:], self.blocks[blocks:]
                if not isinstance(e, _Cascade):
                    self.record(e)
                for name in self.defined_names(s):
                    self.bind(name, Poisoned(name))

    def defined_names(self, s: ast.Stmt) -> list[str]:
        """The names a statement binds in its scope."""
        if isinstance(s, (ast.LdsDecl, ast.LayoutDecl, ast.Assign)):
            return [s.name]
        return self.assigned_names([s])

    def check_fresh(self, name: str, loc: Loc, what: str) -> None:
        for scope in self.scopes:
            if name in scope:
                raise self.err(loc, f"{what} '{name}' is already defined")
        if name in BUILTINS or name in DTYPES or name in CONSTANTS:
            raise self.err(loc, f"'{name}' is a built-in name")

    def stmt_LdsDecl(self, s: ast.LdsDecl) -> None:
        self.check_fresh(s.name, s.loc, "LDS tile")
        dtype = self.dtype_of(s.dtype, s.dtype_loc or s.loc)
        shape = tuple(self.static_int(e, "an LDS tile dim", allow_sym=True) for e in s.shape)
        for d, e in zip(shape, s.shape):
            if isinstance(d, int) and d < 1:
                raise self.err(e.loc, f"LDS tile dims must be positive, got {d}")
        op = self.emit(ops.LdsAllocOp([], [LdsType(dtype, shape)], loc=s.loc, hints=[s.name]))
        self.bind(s.name, LdsRef(op.result, s))

    def stmt_LayoutDecl(self, s: ast.LayoutDecl) -> None:
        self.check_fresh(s.name, s.loc, "layout")
        self.bind(s.name, LayoutRef(self.layout_text(s.layout)))

    def layout_text(self, e: ast.LayoutExpr) -> str:
        if e.args is None:
            v = self.lookup(e.kind, e.loc) if any(e.kind in sc for sc in self.scopes) else None
            if isinstance(v, LayoutRef):
                return v.text
            if e.kind in LAYOUT_KINDS:
                return check_layout(self, e, [], {})
            raise self.err(e.loc, f"'{e.kind}' is not a layout",
                           f"declare it with 'layout {e.kind} = ...' or use one of {', '.join(LAYOUT_KINDS)}")
        if e.kind not in LAYOUT_KINDS:
            raise self.err(e.loc, f"unknown layout kind '{e.kind}'", f"known kinds: {', '.join(LAYOUT_KINDS)}")
        return check_layout(self, e, e.args, e.kwargs)

    def stmt_Assign(self, s: ast.Assign) -> None:
        existing = None
        for scope in reversed(self.scopes):
            if s.name in scope:
                existing = scope[s.name]
                break
        if isinstance(existing, (TensorRef, LdsRef, LayoutRef, Unbound, DtypeRef)) or (
                isinstance(existing, Static) and s.name in self.params):
            raise self.err(s.loc, f"cannot assign to {self.describe(existing)} '{s.name}'",
                           "LDS tiles and tensors are written with '<-'")
        if s.name in BUILTINS or s.name in DTYPES or s.name in CONSTANTS:
            raise self.err(s.loc, f"'{s.name}' is a built-in name")
        v = self.expr(s.value)
        if isinstance(v, LdsRef):
            v = self.materialize(v, s.value.loc)
        if not isinstance(v, (Static, Value)):
            raise self.err(s.value.loc, f"cannot assign {self.describe(v)} to a variable")
        if s.layout is not None:
            text = self.layout_text(s.layout)
            v = self.materialize(v, s.value.loc)
            if not isinstance(v.type, TileType) or v.type.rank == 0:
                raise self.err(s.layout.loc, "a layout annotates a tile, not a scalar")
            from tiledsl.frontend.builtins import check_layout_rank
            check_layout_rank(self, s.layout, text, v.type.rank)
            if v.type.layout is not None and v.type.layout != text:
                raise self.err(s.layout.loc, f"this value already has layout {v.type.layout}")
            v.type = TileType(v.type.dtype, v.type.shape, text)
        self.assign_locs[s.name] = s.loc
        self.bind(s.name, v)

    def stmt_AssignMany(self, s: ast.AssignMany) -> None:
        from tiledsl.frontend.builtins import MULTI_BUILTINS
        e = s.value
        if not (isinstance(e, ast.Call) and e.func in MULTI_BUILTINS):
            raise self.err(e.loc, f"only {', '.join(f'{n}()' for n in MULTI_BUILTINS)} give several values",
                           "assign one value: x = ...")
        for name, loc in zip(s.names, s.name_locs):
            existing = self.lookup_quiet(name)
            if isinstance(existing, (TensorRef, LdsRef, LayoutRef, Unbound)) or (
                    isinstance(existing, Static) and name in self.params):
                raise self.err(loc, f"cannot assign to {self.describe(existing)} '{name}'")
            if name in BUILTINS or name in DTYPES or name in CONSTANTS:
                raise self.err(loc, f"'{name}' is a built-in name")
        if len(set(s.names)) != len(s.names):
            raise self.err(s.loc, "a name is assigned twice")
        values = MULTI_BUILTINS[e.func](self, e)
        if len(values) != len(s.names):
            raise self.err(s.loc, f"{e.func}() gives {len(values)} values, not {len(s.names)}")
        for name, loc, v in zip(s.names, s.name_locs, values):
            self.assign_locs[name] = loc
            self.bind(name, v)

    def stmt_Sync(self, s: ast.Sync) -> None:
        self.emit(ops.SyncOp([], [], loc=s.loc))

    def stmt_CallStmt(self, s: ast.CallStmt) -> None:
        from tiledsl.frontend.builtins import STATEMENTS
        e = s.call
        if e.func in STATEMENTS:
            STATEMENTS[e.func](self, e)
            return
        if e.func in BUILTINS or e.func in DTYPES:
            raise self.err(e.loc, f"the value of {e.func}() is not used",
                           "assign it to a name: x = ..., or write it: Y[...] <- ...")
        raise self.err(e.loc, f"unknown function '{e.func}'")

    def stmt_Copy(self, s: ast.Copy) -> None:
        target = self.lookup(s.target, s.target_loc)
        if isinstance(target, LdsRef):
            if s.indices is not None:
                raise self.err(s.target_loc, "LDS tiles are written whole: drop the subscript")
            buf: LdsType = target.value.type
            src = s.value
            if isinstance(src, ast.Subscript) and isinstance(src.base, ast.Name) and isinstance(
                    self.lookup_quiet(src.base.id), TensorRef):
                tref = self.lookup_quiet(src.base.id)
                starts, attrs, shape = self.slice(tref, src.indices, src.loc)
                if tref.param.dtype != buf.dtype:
                    raise self.err(s.loc, f"cannot copy {tref.param.dtype} tensor '{tref.param.name}' into "
                                          f"{buf.dtype} LDS tile '{s.target}'",
                                   "load it into registers, cast, then write: lds <- f16(X[...])")
                self.check_shape(s.loc, shape, buf.shape, f"LDS tile '{s.target}'")
                pad = self.pad_value(src, buf.dtype)
                src.ty = f"{buf.dtype}[{','.join(map(str, shape))}]"
                self.emit(ops.CopyOp([tref.value, *starts, target.value], [],
                                     {**attrs, "pad": pad}, loc=s.loc))
                return
            v = self.tile_of(self.expr(src), src.loc, buf.dtype, buf.shape)
            if v.type.dtype != buf.dtype:
                raise self.err(src.loc, f"cannot write {v.type} into {buf.dtype} LDS tile '{s.target}'",
                               f"cast it: {buf.dtype}(...)")
            self.check_shape(s.loc, v.type.shape, buf.shape, f"LDS tile '{s.target}'")
            self.emit(ops.LdsWriteOp([target.value, v], [], loc=s.loc))
            return
        if isinstance(target, TensorRef):
            if s.indices is None:
                raise self.err(s.target_loc, f"write a slice of '{s.target}': {s.target}[...] <- value")
            if not target.param.out:
                raise self.err(s.target_loc, f"'{s.target}' is an input; only 'out' tensors can be written",
                               f"declare it as 'out {s.target}: ...'")
            starts, attrs, shape = self.slice(target, s.indices, s.loc)
            v = self.tile_of(self.expr(s.value), s.value.loc, target.param.dtype, shape)
            if v.type.dtype != target.param.dtype:
                raise self.err(s.value.loc, f"cannot store {v.type} into {target.param.dtype} tensor "
                                            f"'{s.target}'", f"cast it: {target.param.dtype}(...)")
            self.check_shape(s.loc, v.type.shape, shape, f"the slice of '{s.target}'")
            self.emit(ops.StoreOp([target.value, *starts, v], [], attrs, loc=s.loc))
            return
        raise self.err(s.target_loc, f"'{s.target}' is not an LDS tile or a tensor; use '=' for variables")

    def lookup_quiet(self, name: str) -> SemaValue | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def check_shape(self, loc: Loc, got: tuple, want: tuple, what: str) -> None:
        if tuple(got) != tuple(want):
            g = ",".join(map(str, got))
            w = ",".join(map(str, want))
            raise self.err(loc, f"shape mismatch: the value is [{g}] but {what} is [{w}]")

    def tile_of(self, v: SemaValue, loc: Loc, dtype: str, shape: tuple) -> Value:
        """``v`` as a tile of ``shape``; scalars are broadcast (fill)."""
        val = self.materialize(v, loc, dtype)
        if isinstance(val.type, TileType) and val.type.shape == () and shape:
            return self.emit(ops.FillOp([val], [TileType(val.type.dtype, tuple(shape))], loc=loc)).result
        if not isinstance(val.type, TileType):
            raise self.err(loc, f"{val.type} is not a tile")
        return val

    def pad_value(self, sub: ast.Subscript, dtype: str) -> float | int:
        if sub.pad is None:
            return 0 if dtype in INT_DTYPES else 0.0
        v = self.expr(sub.pad)
        if not isinstance(v, Static):
            raise self.err(sub.pad.loc, "the pad value must be a compile-time constant")
        if dtype in INT_DTYPES:
            if isinstance(v.value, float) and not v.value.is_integer():
                raise self.err(sub.pad.loc, f"an {dtype} tensor needs an integer pad value")
            lo, hi = int_range(dtype)
            if not lo <= int(v.value) <= hi:
                raise self.err(sub.pad.loc, f"the pad value {int(v.value)} does not fit in {dtype} ([{lo}, {hi}])")
            return int(v.value)
        return float(v.value)

    # ------------------------------------------------------------ control flow
    def assigned_names(self, body: list[ast.Stmt]) -> list[str]:
        out: list[str] = []
        for s in body:
            if isinstance(s, ast.Assign):
                out.append(s.name)
            elif isinstance(s, ast.AssignMany):
                out.extend(s.names)
            elif isinstance(s, ast.For):
                out.extend(n for n in self.assigned_names(s.body) if n != s.var)
            elif isinstance(s, ast.If):
                out.extend(self.assigned_names(s.then) + self.assigned_names(s.orelse))
        return list(dict.fromkeys(out))

    def carried(self, body: list[ast.Stmt], exclude: str | None = None) -> list[str]:
        names = []
        for n in self.assigned_names(body):
            if n == exclude:
                continue
            v = self.lookup_quiet(n)
            if isinstance(v, (Value, Static)) and n not in self.params:
                names.append(n)
        return names

    def scalar_i32(self, e: ast.Expr, what: str, allow_i64: bool = False) -> Value:
        """An i32 scalar (or, with ``allow_i64``, an i64 one: a slice start or an index)."""
        return self.i32_scalar_of(self.expr(e), e, what, allow_i64)

    def i32_scalar_of(self, v: SemaValue, e: ast.Expr, what: str, allow_i64: bool = False) -> Value:
        want = "an i32 or i64" if allow_i64 else "an i32"
        if isinstance(v, Static) and (v.dtype not in INT_DTYPES or isinstance(v.value, bool)):
            raise self.err(e.loc, f"{what} must be an integer, got {v}")
        if isinstance(v, Static) and not v.weak and v.dtype not in (("i32", "i64") if allow_i64 else ("i32",)):
            raise self.err(e.loc, f"{what} must be {want} scalar, got {v}", "cast it: i32(...)")
        if isinstance(v, Value) and v.type not in ((scalar("i32"), scalar("i64")) if allow_i64 else (scalar("i32"),)):
            raise self.err(e.loc, f"{what} must be {want} scalar, got {v.type}",
                           *(["cast it: i32(...)"] if getattr(v.type, "dtype", None) in INT_DTYPES else []))
        if isinstance(v, LdsRef):
            raise self.err(e.loc, f"{what} must be {want} scalar, got the LDS tile {v.value.type}")
        wide = isinstance(v, Value) and v.type == scalar("i64") or isinstance(v, Static) and v.dtype == "i64"
        e.ty = "i64" if wide else "i32"
        return self.materialize(v, e.loc, e.ty)

    def stmt_For(self, s: ast.For) -> None:
        lo = self.scalar_i32(s.lo, "the loop start")
        hi = self.scalar_i32(s.hi, "the loop end")
        if s.step is not None:
            sv = self.expr(s.step)
            if isinstance(sv, Static) and isinstance(sv.value, int) and sv.value <= 0:
                raise self.err(s.step.loc, f"the loop step must be positive, got {sv.value}")
        step = self.scalar_i32(s.step, "the loop step") if s.step is not None else self.const(1, "i32", s.loc)
        attrs = self.pipeline_attrs(s)
        names = self.carried(s.body, exclude=s.var)
        inits = [self.materialize(self.lookup_quiet(n), s.loc) for n in names]
        body = Block([scalar("i32"), *[v.type for v in inits]], [s.var, *names])
        self.blocks.append(body)
        self.scopes.append({s.var: body.args[0]})
        for n, a in zip(names, body.args[1:]):
            self.bind(n, a)
        self.stmts(s.body)
        nexts = self.region_results(names, [v.type for v in inits], s.loc, "loop")
        self.emit(ops.YieldOp(nexts, [], loc=s.loc))
        self.scopes.pop()
        self.blocks.pop()
        op = self.emit(ops.ForOp([lo, hi, step, *inits], [v.type for v in inits], attrs, regions=[body], loc=s.loc,
                                 hints=names))
        for n, r in zip(names, op.results):
            self.rebind(n, r)

    def pipeline_attrs(self, s: ast.For) -> dict[str, Any]:
        """``pipeline S``: S compile-time buffers per pipelined copy (the ``pipeline`` pass
        checks what the loop copies); 1 is an ordinary loop."""
        if s.stages is None:
            return {}
        stages = self.static_int(s.stages, "the number of pipeline stages")
        if not isinstance(stages, int) or stages < 1:
            raise self.err(s.stages.loc, f"the number of pipeline stages must be at least 1, got {stages}")
        limits.check_stages(stages, s.stages.loc)
        return {"pipeline": stages} if stages > 1 else {}

    def region_results(self, names: list[str], types: list[Any], loc: Loc, what: str) -> list[Value]:
        out = []
        for n, t in zip(names, types):
            v = self.materialize(self.lookup_quiet(n), self.assign_locs.get(n, loc), t.dtype)
            if v.type.without_layout() != t.without_layout():
                raise self.err(self.assign_locs.get(n, loc),
                               f"'{n}' changes type inside the {what}: {t} before, {v.type} here",
                               "a value carried through a loop or an if keeps one type")
            out.append(v)
        return out

    def rebind(self, name: str, v: Value) -> None:
        """After a region: the outer binding of a carried name becomes the op result."""
        self.bind(name, v)

    def stmt_If(self, s: ast.If) -> None:
        c = self.expr(s.cond)
        if isinstance(c, Static):
            cond = self.const(bool(c.value), "i1", s.cond.loc)
        else:
            c = self.materialize(c, s.cond.loc)
            if not (isinstance(c.type, TileType) and c.type.shape == ()):
                raise self.err(s.cond.loc, f"an 'if' condition must be a uniform scalar, got {c.type}",
                               "for a per-element choice use where(cond, a, b)")
            if c.type.dtype == "i1":
                cond = c
            elif c.type.dtype in INT_DTYPES:
                zero = self.const(0, c.type.dtype, s.cond.loc)
                cond = self.emit(ops.COMPARE_OPS["ne"]([c, zero], [scalar("i1")], loc=s.cond.loc)).result
            else:
                raise self.err(s.cond.loc, f"an 'if' condition must be i1 or i32, got {c.type}")
        s.cond.ty = "i1"
        names = self.carried(s.then + s.orelse)
        types = [self.materialize(self.lookup_quiet(n), s.loc).type for n in names]
        regions = []
        for branch in (s.then, s.orelse):
            block = Block()
            self.blocks.append(block)
            self.scopes.append({})
            self.stmts(branch)
            self.emit(ops.YieldOp(self.region_results(names, types, s.loc, "if"), [], loc=s.loc))
            self.scopes.pop()
            self.blocks.pop()
            regions.append(block)
        op = self.emit(ops.IfOp([cond], types, regions=regions, loc=s.loc, hints=names))
        for n, r in zip(names, op.results):
            self.rebind(n, r)

    # ------------------------------------------------------------ expressions
    def expr(self, e: ast.Expr) -> SemaValue:
        v = getattr(self, "expr_" + type(e).__name__)(e)
        if isinstance(v, Value):
            e.ty = str(v.type)
        elif isinstance(v, Static):
            e.ty = str(v)
        return v

    def expr_IntLit(self, e: ast.IntLit) -> Static:
        if e.value > _WEAK_INT_RANGE[1]:
            raise self.err(e.loc, f"integer {e.value} does not fit in i64")
        return Static(e.value, "i32")

    def expr_FloatLit(self, e: ast.FloatLit) -> Static:
        return Static(e.value, "f32")

    def expr_Name(self, e: ast.Name) -> SemaValue:
        if self.dtype_name(e.id) is not None:
            raise self.err(e.loc, f"'{e.id}' is a dtype, not a value",
                           f"cast with {e.id}(x) or give a tile type as in fill(0, {e.id}[M, N])")
        return self.lookup(e.id, e.loc)

    def expr_Neg(self, e: ast.Neg) -> SemaValue:
        v = self.expr(e.operand)
        if isinstance(v, Static):
            if v.dtype == "i1":
                raise self.err(e.loc, "cannot negate a boolean")
            return Static(self.wrap_static(-v.value, v), v.dtype, v.weak)
        return self.unary("neg", self.materialize(v, e.loc), e.loc)

    def expr_Invert(self, e: ast.Invert) -> SemaValue:
        v = self.expr(e.operand)
        if isinstance(v, Static):
            if v.dtype not in INT_DTYPES or isinstance(v.value, (bool, float)):
                raise self.err(e.loc, f"'~' needs an integer, got {v}", *_bool_note(v.dtype))
            return Static(self.wrap_static(~v.value, v), v.dtype, v.weak)
        v = self.materialize(v, e.loc)
        if not isinstance(v.type, TileType) or v.type.dtype not in INT_DTYPES:
            raise self.err(e.loc, f"'~' needs an integer tile, got {self.describe(v)}", *_bool_note(
                getattr(v.type, "dtype", None)))
        return self.unary("bitnot", v, e.loc)

    def wrap_static(self, value: Any, v: Static) -> Any:
        """An integer result of a compile-time ``v`` op: wrapped to ``v``'s dtype when it has one
        (as at run time); exact when weak."""
        if v.weak or v.dtype not in INT_DTYPES or isinstance(value, (bool, float)):
            return value
        return wrap_int(value, v.dtype)

    def expr_Not(self, e: ast.Not) -> SemaValue:
        v = self.expr(e.operand)
        if isinstance(v, Static):
            return Static(not v.value, "i1")
        v = self.materialize(v, e.loc)
        if v.type.dtype != "i1":
            raise self.err(e.loc, f"'not' needs a boolean, got {v.type}")
        return self.unary("not", v, e.loc)

    def unary(self, name: str, v: Value, loc: Loc) -> Value:
        op_cls = ops.UNARY_OPS[name]
        if not isinstance(v.type, TileType):
            raise self.err(loc, f"{name} needs a tile, got {v.type}")
        if op_cls.operand_dtypes and v.type.dtype not in op_cls.operand_dtypes:
            raise self.err(loc, f"{name} does not take {v.type.dtype} (got {v.type})",
                           *(["cast it first, e.g. f32(x)"] if v.type.dtype in INT_DTYPES else []))
        return self.emit(op_cls([v], [v.type.without_layout()], loc=loc)).result

    def expr_BinOp(self, e: ast.BinOp) -> SemaValue:
        a, b = self.expr(e.lhs), self.expr(e.rhs)
        return self.binary(e.op, a, b, e.loc)

    def binary(self, op: str, a: SemaValue, b: SemaValue, loc: Loc) -> SemaValue:
        if isinstance(a, LdsRef):
            a = self.materialize(a, loc)
        if isinstance(b, LdsRef):
            b = self.materialize(b, loc)
        for v in (a, b):
            if not isinstance(v, (Static, Value)) or (isinstance(v, Value) and not isinstance(v.type, TileType)):
                raise self.err(loc, f"'{op}' cannot take {self.describe(v)}")
        if isinstance(a, Static) and isinstance(b, Static):
            return self.fold(op, a, b, loc)
        dtype = self.common_dtype(op, a, b, loc)
        av, bv = self.materialize(a, loc, dtype), self.materialize(b, loc, dtype)
        shape = self.broadcast_shape(av.type.shape, bv.type.shape, loc, op)
        av, bv = self.broadcast(av, shape, loc), self.broadcast(bv, shape, loc)
        name = _BINOPS[op]
        if op in ("and", "or"):
            if dtype != "i1":
                raise self.err(loc, f"'{op}' needs booleans, got {dtype}")
            cls = ops.BINARY_OPS[name]
        elif op in _CMP:
            cls = ops.COMPARE_OPS[name]
        else:
            cls = ops.BINARY_OPS[name]
            if dtype == "i1":
                raise self.err(loc, f"'{op}' does not take booleans", *_bool_note("i1") if op in _BIT else ())
            if op == "/" and dtype in INT_DTYPES:
                raise self.err(loc, "'/' on integers: use '//' (floor division) or cdiv(a, b)")
            if op in ("//", "%") and dtype not in INT_DTYPES:
                raise self.err(loc, f"'{op}' is for integers; got {dtype}")
            if op in _BIT and dtype not in INT_DTYPES:
                raise self.err(loc, f"'{op}' is for integers; got {dtype}",
                               f"to see the bits of a float, bitcast it: bitcast(x, {_same_size_int(dtype)})")
        rtype = TileType("i1" if op in _CMP else dtype, shape)
        return self.emit(cls([av, bv], [rtype], loc=loc)).result

    def fold(self, op: str, a: Static, b: Static, loc: Loc) -> Static:
        x, y = a.value, b.value
        is_int = a.dtype in INT_DTYPES and b.dtype in INT_DTYPES
        if op == "/" and is_int:
            raise self.err(loc, "'/' on integers: use '//' (floor division) or cdiv(a, b)")
        if op in _BIT:
            return self.fold_bits(op, a, b, loc)
        if op in ("//", "%") and y == 0:
            raise self.err(loc, "division by zero")
        if op == "/" and y == 0:
            r: Any = math.copysign(math.inf, x) if x != 0 else math.nan
        else:
            r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
                 "//": lambda: x // y, "%": lambda: x % y, "<": lambda: x < y, "<=": lambda: x <= y,
                 ">": lambda: x > y, ">=": lambda: x >= y, "==": lambda: x == y, "!=": lambda: x != y,
                 "and": lambda: bool(x) and bool(y), "or": lambda: bool(x) or bool(y)}[op]()
        if op in _CMP or op in ("and", "or"):
            return Static(bool(r), "i1")
        if is_int:
            return self.int_result(op, int(r), a, b, loc)
        dtype = a.dtype if not a.weak else b.dtype if not b.weak else "f32"
        if dtype in INT_DTYPES:
            dtype = "f32"
        return Static(float(r), dtype, a.weak and b.weak)

    def int_result(self, op: str, r: int, a: Static, b: Static, loc: Loc) -> Static:
        """The integer result ``r`` of ``a op b`` (compile-time integers): wrapped to their dtype
        where one has one (as the op wraps at run time), else exact and checked against overflow."""
        strong = [v for v in (a, b) if not v.weak]
        if not strong:
            if not _WEAK_INT_RANGE[0] <= r <= _WEAK_INT_RANGE[1]:
                raise self.err(loc, f"integer overflow in a compile-time expression ({r})")
            return Static(r, "i32")
        dtype = strong[0].dtype
        if any(v.dtype != dtype for v in strong):
            raise self.err(loc, f"'{op}' of {a.dtype} and {b.dtype}: dtypes differ", "cast one side explicitly")
        for v in (a, b):
            lo, hi = int_range(dtype)
            if v.weak and not lo <= v.value <= hi:
                raise self.err(loc, f"integer {v.value} does not fit in {dtype} ([{lo}, {hi}])")
        return Static(wrap_int(r, dtype), dtype, weak=False)

    def fold_bits(self, op: str, a: Static, b: Static, loc: Loc) -> Static:
        """``& | ^ << >>`` of compile-time integers: exact (shift counts 0 to 63) when neither has a
        dtype, else with the run-time op's rules in the dtype."""
        for v in (a, b):
            if v.dtype not in INT_DTYPES or isinstance(v.value, (bool, float)):
                raise self.err(loc, f"'{op}' is for integers; got {v}", *_bool_note(v.dtype))
        x, y = int(a.value), int(b.value)
        if a.weak and b.weak and op in ("<<", ">>") and not 0 <= y < 64:
            raise self.err(loc, f"shift count {y} is out of range (0 to 63)")
        if op in ("<<", ">>") and not (a.weak and b.weak):
            probe = self.int_result(op, 0, a, b, loc)       # the dtype, and the weak side fits it
            fn = shift_left if op == "<<" else shift_right
            return Static(int(fn(np.asarray(x), np.asarray(wrap_int(y, probe.dtype)), probe.dtype)), probe.dtype,
                          weak=False)
        r = {"&": lambda: x & y, "|": lambda: x | y, "^": lambda: x ^ y, "<<": lambda: x << y,
             ">>": lambda: x >> y}[op]()
        return self.int_result(op, r, a, b, loc)

    def common_dtype(self, op: str, a: SemaValue, b: SemaValue, loc: Loc) -> str:
        for v in (a, b):
            if not isinstance(v, (Static, Value, LdsRef)) or (
                    isinstance(v, Value) and not isinstance(v.type, TileType)):
                raise self.err(loc, f"'{op}' cannot take {self.describe(v)}")
        ta = a.value.type.dtype if isinstance(a, LdsRef) else a.type.dtype if isinstance(a, Value) else None
        tb = b.value.type.dtype if isinstance(b, LdsRef) else b.type.dtype if isinstance(b, Value) else None
        if ta and tb:
            if ta != tb:
                raise self.err(loc, f"'{op}' of {_type_str(a)} and {_type_str(b)}: dtypes differ",
                               f"cast one side explicitly, e.g. {ta}(...) or {tb}(...)")
            return ta
        if not ta and not tb:
            # Two compile-time scalars (e.g. where(c, f16(1), 2.0)): the strong one decides.
            strong = {v.dtype for v in (a, b) if not v.weak}
            if len(strong) > 1:
                raise self.err(loc, f"'{op}' of {a.dtype} and {b.dtype}: dtypes differ",
                               "cast one side explicitly")
            if strong:
                return strong.pop()
            return "f32" if isinstance(a.value, float) or isinstance(b.value, float) else "i32"
        tile, st = (ta, b) if ta else (tb, a)
        if st.weak:
            if tile in INT_DTYPES and isinstance(st.value, float) and not float(st.value).is_integer():
                raise self.err(loc, f"float constant {st.value} combined with an {tile} tile",
                               "cast the tile: f32(...)")
            if tile == "i1" and op not in ("and", "or", "==", "!="):
                raise self.err(loc, f"'{op}' does not take booleans")
            return tile
        if st.dtype != tile:
            raise self.err(loc, f"'{op}' of {tile} and {st.dtype}: dtypes differ", "cast one side explicitly")
        return tile

    def broadcast_shape(self, sa: tuple, sb: tuple, loc: Loc, op: str) -> tuple:
        if not sa:
            return sb
        if not sb:
            return sa
        if len(sa) != len(sb):
            raise self.err(loc, f"'{op}' of shapes [{','.join(map(str, sa))}] and [{','.join(map(str, sb))}]: "
                                "ranks differ", "say which axis broadcasts: x[:, _] or x[_, :]")
        out = []
        for x, y in zip(sa, sb):
            if x == y or y == 1:
                out.append(x)
            elif x == 1:
                out.append(y)
            else:
                raise self.err(loc, f"'{op}' of shapes [{','.join(map(str, sa))}] and "
                                    f"[{','.join(map(str, sb))}]: dims {x} and {y} do not match")
        return tuple(out)

    def broadcast(self, v: Value, shape: tuple, loc: Loc) -> Value:
        if v.type.shape == tuple(shape):
            return v
        return self.emit(ops.BroadcastOp([v], [TileType(v.type.dtype, tuple(shape))], loc=loc)).result

    def expr_Transpose(self, e: ast.Transpose) -> Value:
        v = self.materialize(self.expr(e.operand), e.loc)
        if not isinstance(v.type, TileType) or v.type.rank != 2:
            raise self.err(e.loc, f"transpose needs a 2-D tile, got {v.type}")
        t = v.type
        return self.emit(ops.TransposeOp([v], [TileType(t.dtype, (t.shape[1], t.shape[0]))], loc=e.loc)).result

    def expr_Subscript(self, e: ast.Subscript) -> SemaValue:
        if isinstance(e.base, ast.Name) and self.dtype_name(e.base.id) is not None:
            raise self.err(e.loc, f"a tile type ({e.base.id}[...]) is not a value",
                           f"to make a tile write fill(0, {e.base.id}[...])")
        base = self.expr(e.base)
        if isinstance(base, TensorRef):
            starts, attrs, shape = self.slice(base, e.indices, e.loc)
            pad = self.pad_value(e, base.param.dtype)
            return self.emit(ops.LoadOp([base.value, *starts], [TileType(base.param.dtype, shape)],
                                        {**attrs, "pad": pad}, loc=e.loc)).result
        if e.pad is not None:
            raise self.err(e.pad.loc, "'pad' applies to slices of global tensors only")
        if isinstance(base, LdsRef):
            if all(i.kind == "full" for i in e.indices) and len(e.indices) == len(base.value.type.shape):
                return self.materialize(base, e.loc)
            raise self.err(e.loc, "LDS tiles are read whole; sub-slices of LDS are not supported")
        v = self.materialize(base, e.loc)
        if not isinstance(v.type, TileType):
            raise self.err(e.loc, f"cannot index {v.type}")
        kept = [i for i in e.indices if i.kind != "newaxis"]
        if any(i.kind != "full" for i in kept):
            bad = next(i for i in kept if i.kind != "full")
            raise self.err(bad.loc, "register tiles can be indexed only with ':' and '_' (new axis)")
        if len(kept) != v.type.rank:
            raise self.err(e.loc, f"{v.type} has {v.type.rank} dims but the subscript keeps {len(kept)}")
        shape = list(v.type.shape)
        for axis, i in enumerate(e.indices):
            if i.kind == "newaxis":
                shape.insert(axis, 1)
                v = self.emit(ops.ExpandDimsOp([v], [TileType(v.type.dtype, tuple(shape))], {"axis": axis},
                                               loc=i.loc)).result
        return v

    def slice(self, t: TensorRef, indices: list[ast.Index], loc: Loc) -> tuple[list[Value], dict[str, Any], tuple]:
        """The addressing operands (a start, an index or an index tile per dim, then the bounds),
        the attributes (``extents``: 0 = dropped dim; ``gather``, ``bounded`` where used) and the
        tile shape of a global slice."""
        p = t.param
        if len(indices) != len(p.dims):
            raise self.err(loc, f"'{p.name}' has {len(p.dims)} dims but the subscript has {len(indices)}")
        starts, extents, gather, bounded, bounds = [], [], [], [], []
        for axis, (i, d) in enumerate(zip(indices, p.dims)):
            if i.kind == "newaxis":
                raise self.err(i.loc, "'_' (new axis) applies to register tiles, not to tensor slices")
            if i.kind == "scalar":
                v = self.expr(i.start)
                if isinstance(v, LdsRef):
                    v = self.materialize(v, i.start.loc)
                if isinstance(v, Value) and isinstance(v.type, TileType) and v.type.rank > 0:
                    starts.append(self.index_tile(v, i.start, gather, starts))
                    extents.append(0 if gather else v.type.shape[0])
                    gather.append(axis)
                else:
                    if i.bound is not None:
                        raise self.err(i.bound.loc, "'until' cuts a slice (start : +EXTENT until BOUND) or masks "
                                                    "an index tile; a scalar index is not masked",
                                       "an index outside its dim is an out-of-bounds error")
                    starts.append(self.i32_scalar_of(v, i.start, "an index", allow_i64=True))
                    extents.append(0)
            elif i.kind == "extent":
                starts.append(self.scalar_i32(i.start, "a slice start", allow_i64=True))
                ext = self.static_int(i.extent, "a slice extent", allow_sym=True)
                if isinstance(ext, int) and ext < 1:
                    raise self.err(i.extent.loc, f"a slice extent must be positive, got {ext}")
                extents.append(ext)
            else:
                starts.append(self.const(0, "i32", i.loc))
                extents.append(self.full_extent(d, p, i.loc))
            if i.bound is not None:
                bounded.append(axis)
                bounds.append(self.scalar_i32(i.bound, "the bound after 'until'"))
        attrs: dict[str, Any] = {"extents": extents}
        if gather:
            attrs["gather"] = gather
        if bounded:
            attrs["bounded"] = bounded
        return [*starts, *bounds], attrs, tuple(e for e in extents if e != 0)

    def index_tile(self, v: Value, e: ast.Expr, gather: list[int], starts: list[Value]) -> Value:
        """An index tile of a gather: a 1-D i32 tile, as long as the others of the subscript."""
        if v.type.dtype != "i32" or v.type.rank != 1:
            raise self.err(e.loc, f"an index tile must be a 1-D i32 tile, got {v.type}",
                           "a gather takes one i32[L] tile per indexed dim; its rows come from the tile's values")
        if gather:
            first = starts[gather[0]].type.shape[0]
            if v.type.shape[0] != first:
                raise self.err(e.loc, f"index tiles of one subscript must have one length: {v.type} here, "
                                      f"i32[{first}] before")
        return v

    def full_extent(self, d: str | int, p: ast.TensorParam, loc: Loc) -> Dim:
        if isinstance(d, int):
            return d
        v = self.lookup_quiet(d)
        if isinstance(v, Static) and d in self.params:
            return int(v.value)
        if isinstance(v, Unbound):
            return Sym(d)
        raise self.err(loc, f"':' over dim '{d}' of '{p.name}' makes a tile whose shape is not compile-time",
                       f"'{d}' is a run-time size; take a fixed-size piece with start :+ EXTENT, "
                       f"or declare 'const {d}'")

    def expr_Call(self, e: ast.Call) -> SemaValue:
        dtype = self.dtype_name(e.func)
        if dtype is not None:
            # A cast; to a dtype parameter, the cast to its value.
            return BUILTINS["__cast__"](self, e if dtype == e.func else dataclasses.replace(e, func=dtype))
        if e.func not in BUILTINS or e.func.startswith("__"):
            v = self.lookup_quiet(e.func)
            if v is not None:
                raise self.err(e.loc, f"'{e.func}' is not a function")
            raise self.err(e.loc, f"unknown function '{e.func}'")
        return BUILTINS[e.func](self, e)


def _bool_note(dtype: str | None) -> tuple[str, ...]:
    return ("for booleans use 'and', 'or' and 'not'",) if dtype == "i1" else ()


def _same_size_int(dtype: str) -> str:
    """An unsigned (else signed) integer dtype of ``dtype``'s size, for messages."""
    size = DTYPE_BYTES.get(dtype, 4)
    return next((d for d in (*UNSIGNED_DTYPES, *INT_DTYPES) if DTYPE_BYTES[d] == size), "u32")


def build_kernel(kernel: ast.Kernel, params: dict[str, int | float]) -> ops.KernelOp:
    """Check a kernel AST and build its tile IR (raises TdslError)."""
    return Sema(kernel, params).build()


__all__ = ["FLOAT_DTYPES", "Sema", "Static", "build_kernel"]
