"""Built-in functions, constants and layout kinds of the language.

Each built-in is one function ``(sema, call) -> value`` in the BUILTINS table, so a
new built-in touches one place here plus its IR op.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tiledsl.diagnostics import TdslError
from tiledsl.frontend import ast
from tiledsl.interp.numerics import from_bits, round_to, to_bits, to_python, wrap_int
from tiledsl.ir import ops
from tiledsl.ir.core import Value
from tiledsl.ir.types import DTYPE_BYTES, DTYPES, FLOAT_DTYPES, INT_DTYPES, TileType, int_range, scalar

if TYPE_CHECKING:
    from tiledsl.frontend.sema import Sema

CONSTANTS = {"LOG2E": math.log2(math.e), "LN2": math.log(2.0), "PI": math.pi}
BUILTINS: dict[str, Callable[[Sema, ast.Call], Any]] = {}


def builtin(*names: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for n in names:
            BUILTINS[n] = fn
        return fn
    return deco


def _args(s: Sema, e: ast.Call, n: int | tuple[int, int], kw: tuple[str, ...] = ()) -> list[ast.Expr]:
    lo, hi = (n, n) if isinstance(n, int) else n
    for k in e.kwargs:
        if k not in kw:
            raise TdslError(e.kwargs[k].loc, f"{e.func}() has no argument '{k}'")
    if not lo <= len(e.args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise TdslError(e.loc, f"{e.func}() takes {want} arguments, got {len(e.args)}")
    return e.args


def _tile(s: Sema, v: Any, loc: Any, what: str) -> Value:
    v = s.materialize(v, loc)
    if not isinstance(v.type, TileType):
        raise TdslError(loc, f"{what} must be a tile, got {v.type}")
    return v


@builtin("__cast__")
def _cast(s: Sema, e: ast.Call) -> Any:
    (x,) = _args(s, e, 1)
    v = s.expr(x)
    from tiledsl.frontend.sema import Static
    if isinstance(v, Static):
        return Static(_static_cast(v.value, e.func, x.loc), e.func, weak=False)
    v = _tile(s, v, x.loc, "a cast operand")
    if v.type.dtype == e.func:
        return v
    return s.emit(ops.CastOp([v], [TileType(e.func, v.type.shape)], loc=e.loc)).result


def _static_cast(val: float | bool, dtype: str, loc: Any) -> int | float | bool:
    """A compile-time cast, as the run-time one (``numerics.round_to``), except that a float out of
    an integer dtype's range is a mistake here rather than a saturation."""
    if dtype in INT_DTYPES:
        if isinstance(val, float):
            lo, hi = int_range(dtype)
            if not math.isfinite(val) or not lo <= math.trunc(val) <= hi:
                raise TdslError(loc, f"{dtype}({val}) is out of the range of {dtype}")
            return math.trunc(val)
        return wrap_int(int(val), dtype)
    if dtype == "i1":
        return bool(val)
    if dtype in ("f16", "bf16", "f8e4m3", "f8e5m2"):
        # An integer goes to f32 in one rounding (as at run time), not through a Python float.
        exact = isinstance(val, int) and not isinstance(val, bool)
        f32 = np.asarray([val], dtype=np.int64 if exact else np.float64).astype(np.float32)
        return float(to_python(round_to(f32, dtype), dtype))
    return float(val)


@builtin("bitcast")
def _bitcast(s: Sema, e: ast.Call) -> Any:
    x, t = _args(s, e, 2)
    dst = s.dtype_name(t.id) if isinstance(t, ast.Name) else None
    if dst is None:
        raise TdslError(t.loc, "bitcast() takes a dtype as its second argument, e.g. bitcast(x, u32)")
    v = s.expr(x)
    from tiledsl.frontend.sema import Static
    if isinstance(v, Static) and v.weak:
        raise TdslError(x.loc, f"bitcast() of {v.value}, which has no dtype yet",
                        [f"give it one first, e.g. bitcast(f32({v.value}), {dst})"])
    src = v.dtype if isinstance(v, Static) else _tile(s, v, x.loc, "the operand of bitcast()").type.dtype
    if "i1" in (src, dst) or DTYPE_BYTES[src] != DTYPE_BYTES[dst]:
        same = [d for d in DTYPES if d != "i1" and src != "i1" and DTYPE_BYTES[d] == DTYPE_BYTES[src] and d != src]
        raise TdslError(e.loc, f"bitcast() of {src} to {dst}: the sizes differ "
                               f"({DTYPE_BYTES[src]} and {DTYPE_BYTES[dst]} bytes)",
                        [f"{src} has the size of {', '.join(same)}"] if same else
                        ["booleans have no bit pattern to reinterpret"] if "i1" in (src, dst) else [])
    t.ty = "dtype"
    if isinstance(v, Static):
        bits = to_bits(round_to(np.asarray(v.value), src), src)
        return Static(to_python(from_bits(bits, dst), dst), dst, weak=False)
    if src == dst:
        return v
    return s.emit(ops.BitcastOp([v], [TileType(dst, v.type.shape)], loc=e.loc)).result


@builtin("fill")
def _fill(s: Sema, e: ast.Call) -> Value:
    value, ty = _args(s, e, 2)
    is_type = isinstance(ty, ast.Subscript) and isinstance(ty.base, ast.Name)
    dtype = s.dtype_name(ty.base.id) if is_type else None
    if dtype is None:
        raise TdslError(ty.loc, "fill() needs a tile type as its second argument, e.g. f32[BM, D]")
    shape = []
    for i in ty.indices:
        if i.kind != "scalar":
            raise TdslError(i.loc, "a tile type lists its dims: f32[BM, D]")
        d = s.static_int(i.start, "a tile dim", allow_sym=True)
        if isinstance(d, int) and d < 1:
            raise TdslError(i.start.loc, f"tile dims must be positive, got {d}")
        shape.append(d)
    v = s.expr(value)
    from tiledsl.frontend.sema import Static
    if isinstance(v, Static):
        if dtype in INT_DTYPES and isinstance(v.value, float) and not v.value.is_integer():
            raise TdslError(value.loc, f"cannot fill an {dtype} tile with {v.value}")
        sv = s.const(v.value, dtype, value.loc)
    else:
        sv = _tile(s, v, value.loc, "the fill value")
        if sv.type.shape != ():
            raise TdslError(value.loc, f"the fill value must be a scalar, got {sv.type}")
        if sv.type.dtype != dtype:
            raise TdslError(value.loc, f"the fill value is {sv.type.dtype} but the tile is {dtype}",
                            [f"cast it: {dtype}(...)"])
    ty.ty = f"{dtype}[{','.join(map(str, shape))}]"
    return s.emit(ops.FillOp([sv], [TileType(dtype, tuple(shape))], loc=e.loc)).result


@builtin("iota")
def _iota(s: Sema, e: ast.Call) -> Value:
    (n,) = _args(s, e, 1)
    size = s.static_int(n, "the length of iota()", allow_sym=True)
    if isinstance(size, int) and size < 1:
        raise TdslError(n.loc, f"iota() needs a positive length, got {size}")
    return s.emit(ops.IotaOp([], [TileType("i32", (size,))], loc=e.loc)).result


@builtin("arange")
def _arange(s: Sema, e: ast.Call) -> Value:
    lo_e, hi_e = _args(s, e, 2)
    lo, hi = s.static_int(lo_e, "the start of arange()"), s.static_int(hi_e, "the end of arange()")
    if hi <= lo:
        raise TdslError(e.loc, f"arange({lo}, {hi}) is empty")
    iota = s.emit(ops.IotaOp([], [TileType("i32", (hi - lo,))], loc=e.loc)).result
    if lo == 0:
        return iota
    from tiledsl.frontend.sema import Static
    return s.binary("+", iota, Static(lo, "i32"), e.loc)


def _unary(name: str, pyfn: Callable[[float], float]) -> None:
    @builtin(name)
    def handler(s: Sema, e: ast.Call) -> Any:
        (x,) = _args(s, e, 1)
        v = s.expr(x)
        from tiledsl.frontend.sema import Static
        if isinstance(v, Static):
            try:
                return Static(pyfn(float(v.value)), v.dtype if v.dtype in FLOAT_DTYPES else "f32", v.weak)
            except (ValueError, OverflowError, ZeroDivisionError):
                raise TdslError(e.loc, f"{name}({v.value}) is not defined") from None
        return s.unary(name, _tile(s, v, x.loc, f"the operand of {name}()"), e.loc)


_unary("exp", math.exp)
_unary("exp2", lambda x: 2.0 ** x)
_unary("sqrt", math.sqrt)
_unary("rsqrt", lambda x: 1.0 / math.sqrt(x))
_unary("log2", math.log2)


# ------------------------------------------------------------------ math functions

def _static_math(s: Sema, e: ast.Call, name: str, vals: list[Any]) -> Any:
    """``name`` of compile-time operands, folded with the float64 function that defines the op
    (``numerics.MATH64``): log(0) is -inf, not an error, as at run time."""
    from tiledsl.frontend.sema import Static
    from tiledsl.interp.numerics import MATH64
    if any(v.dtype == "i1" for v in vals):
        raise TdslError(e.loc, f"{name}() does not take booleans")
    with np.errstate(all="ignore"):
        r = float(MATH64[name](*(np.float64(v.value) for v in vals)))
    strong = [v.dtype for v in vals if not v.weak and v.dtype in FLOAT_DTYPES]
    return Static(r, strong[0] if strong else "f32", all(v.weak for v in vals))


def _math_unary(name: str) -> None:
    @builtin(name)
    def handler(s: Sema, e: ast.Call) -> Any:
        (x,) = _args(s, e, 1)
        v = s.expr(x)
        from tiledsl.frontend.sema import Static
        if isinstance(v, Static):
            if v.dtype == "i1":
                raise TdslError(e.loc, f"{name}() does not take booleans")
            if name in ("isnan", "isinf"):
                return Static(bool(getattr(math, name)(float(v.value))), "i1")
            return _static_math(s, e, name, [v])
        v = _tile(s, v, x.loc, f"the operand of {name}()")
        cls = ops.UNARY_OPS[name]
        _check_dtype(e, name, v.type.dtype, cls.operand_dtypes)
        return s.emit(cls([v], [TileType(cls.result_dtype or v.type.dtype, v.type.shape)], loc=e.loc)).result


for _name in (*ops.MATH_UNARY, "isnan", "isinf"):
    _math_unary(_name)


def _check_dtype(e: ast.Call, name: str, dtype: str, allowed: tuple[str, ...]) -> None:
    if dtype == "i1":
        raise TdslError(e.loc, f"{name}() does not take booleans")
    if dtype not in allowed:
        raise TdslError(e.loc, f"{name}() takes {', '.join(allowed)}, got {dtype}", ["cast it first, e.g. f32(x)"])


def _elementwise_call(s: Sema, e: ast.Call, name: str, vals: list[Any], locs: list[Any]) -> Value:
    """An element-wise op of several operands, at least one of them run-time: weak literals take the
    tiles' dtype, shapes broadcast."""
    cls = ops.BINARY_OPS.get(name) or ops.ClampOp
    tile = next(v for v in vals if not _is_static(v))
    dtype = ""
    for v in vals:
        dtype = s.common_dtype(name, tile, v, e.loc)
    _check_dtype(e, name, dtype, cls.operand_dtypes)
    vs = [s.materialize(v, loc, dtype) for v, loc in zip(vals, locs)]
    for v, loc in zip(vs, locs):
        if not isinstance(v.type, TileType):
            raise TdslError(loc, f"{name}() takes tiles, got {v.type}")
    shape: tuple = ()
    for v in vs:
        shape = s.broadcast_shape(shape, v.type.shape, e.loc, name)
    vs = [s.broadcast(v, shape, e.loc) for v in vs]
    return s.emit(cls(vs, [TileType(dtype, shape)], loc=e.loc)).result


def _is_static(v: Any) -> bool:
    from tiledsl.frontend.sema import Static
    return isinstance(v, Static)


@builtin("pow")
def _pow(s: Sema, e: ast.Call) -> Any:
    args = _args(s, e, 2)
    vals = [s.expr(a) for a in args]
    if all(_is_static(v) for v in vals):
        return _static_math(s, e, "pow", vals)
    return _elementwise_call(s, e, "pow", vals, [a.loc for a in args])


@builtin("clamp")
def _clamp(s: Sema, e: ast.Call) -> Any:
    args = _args(s, e, 3)
    vals = [s.expr(a) for a in args]
    if all(_is_static(v) for v in vals):
        from tiledsl.frontend.sema import Static
        if any(v.dtype == "i1" for v in vals):
            raise TdslError(e.loc, "clamp() does not take booleans")
        x, lo, hi = (v.value for v in vals)
        r = x if isinstance(x, float) and math.isnan(x) else _static_minmax(
            "min", _static_minmax("max", x, lo), hi)
        dtypes = {v.dtype for v in vals}
        return Static(r, dtypes.pop() if len(dtypes) == 1 else "f32", all(v.weak for v in vals))
    return _elementwise_call(s, e, "clamp", vals, [a.loc for a in args])


@builtin("abs")
def _abs(s: Sema, e: ast.Call) -> Any:
    (x,) = _args(s, e, 1)
    v = s.expr(x)
    from tiledsl.frontend.sema import Static
    if isinstance(v, Static):
        return Static(abs(v.value), v.dtype, v.weak)
    return s.unary("abs", _tile(s, v, x.loc, "the operand of abs()"), e.loc)


def _static_minmax(kind: str, x: float, y: float) -> float:
    """maxNum/minNum, as the element-wise op computes them: a NaN operand is ignored."""
    if isinstance(x, float) and math.isnan(x):
        return y
    if isinstance(y, float) and math.isnan(y):
        return x
    return max(x, y) if kind == "max" else min(x, y)


def _minmax(kind: str) -> None:
    @builtin(kind)
    def handler(s: Sema, e: ast.Call) -> Any:
        args = _args(s, e, (1, 2), ("axis",))
        if len(args) == 1:
            if "axis" not in e.kwargs:
                raise TdslError(e.loc, f"{kind}(x) reduces: give the axis, {kind}(x, axis=1), "
                                       f"or use row{kind}/col{kind}")
            return _reduce(s, e, kind, args[0], e.kwargs["axis"])
        if "axis" in e.kwargs:
            raise TdslError(e.kwargs["axis"].loc, f"{kind}(a, b) is element-wise and takes no axis")
        a, b = s.expr(args[0]), s.expr(args[1])
        from tiledsl.frontend.sema import Static
        if isinstance(a, Static) and isinstance(b, Static):
            r = _static_minmax(kind, a.value, b.value)
            return Static(r, a.dtype if a.dtype == b.dtype else "f32", a.weak and b.weak)
        dtype = s.common_dtype(kind, a, b, e.loc)
        av, bv = s.materialize(a, e.loc, dtype), s.materialize(b, e.loc, dtype)
        if dtype == "i1":
            raise TdslError(e.loc, f"{kind}() does not take booleans")
        shape = s.broadcast_shape(av.type.shape, bv.type.shape, e.loc, kind)
        av, bv = s.broadcast(av, shape, e.loc), s.broadcast(bv, shape, e.loc)
        return s.emit(ops.BINARY_OPS[kind]([av, bv], [TileType(dtype, shape)], loc=e.loc)).result


_minmax("max")
_minmax("min")


def _reduce(s: Sema, e: ast.Call, kind: str, x: ast.Expr, axis_e: ast.Expr | int) -> Value:
    v = _tile(s, s.expr(x), x.loc, f"the operand of {e.func}()")
    axis = axis_e if isinstance(axis_e, int) else s.static_int(axis_e, "a reduction axis")
    if v.type.rank == 0:
        raise TdslError(e.loc, f"{e.func}() needs a tile, got the scalar {v.type}")
    if not 0 <= axis < v.type.rank:
        raise TdslError(e.loc, f"axis {axis} is out of range for {v.type}")
    return _reduce_value(s, e, kind, v, axis)


def _rowcol(name: str, kind: str, axis: int) -> None:
    @builtin(name)
    def handler(s: Sema, e: ast.Call) -> Value:
        (x,) = _args(s, e, 1)
        v = _tile(s, s.expr(x), x.loc, f"the operand of {name}()")
        if v.type.rank != 2:
            raise TdslError(x.loc, f"{name}() needs a 2-D tile, got {v.type}")
        return _reduce_value(s, e, kind, v, axis)


def _reduce_value(s: Sema, e: ast.Call, kind: str, v: Value, axis: int) -> Value:
    if v.type.dtype == "i1":
        raise TdslError(e.loc, f"{e.func}() does not take booleans")
    shape = v.type.shape[:axis] + v.type.shape[axis + 1:]
    cls = ops.REDUCE_OPS[kind]
    return s.emit(cls([v], [TileType(v.type.dtype, shape)], {"axis": axis}, loc=e.loc)).result


_rowcol("rowmax", "max", 1)
_rowcol("rowmin", "min", 1)
_rowcol("rowsum", "sum", 1)
_rowcol("colmax", "max", 0)
_rowcol("colmin", "min", 0)
_rowcol("colsum", "sum", 0)


@builtin("sum")
def _sum(s: Sema, e: ast.Call) -> Value:
    (x,) = _args(s, e, 1, ("axis",))
    if "axis" not in e.kwargs:
        raise TdslError(e.loc, "sum(x) needs an axis: sum(x, axis=1), or use rowsum/colsum")
    return _reduce(s, e, "sum", x, e.kwargs["axis"])


#: Built-ins that give several values, for ``a, b = f(...)``; by name, each ``(sema, call) -> values``.
MULTI_BUILTINS: dict[str, Callable[[Sema, ast.Call], tuple[Value, ...]]] = {}


def _axis_operand(s: Sema, e: ast.Call, default_1d: bool = False) -> tuple[Value, int]:
    """The tile and the compile-time ``axis=`` of a reduction or scan (1-D tiles may leave the axis
    out where ``default_1d``)."""
    (x,) = _args(s, e, 1, ("axis",))
    v = _tile(s, s.expr(x), x.loc, f"the operand of {e.func}()")
    if v.type.rank == 0:
        raise TdslError(e.loc, f"{e.func}() needs a tile, got the scalar {v.type}")
    if "axis" not in e.kwargs:
        if default_1d and v.type.rank == 1:
            return v, 0
        raise TdslError(e.loc, f"{e.func}(x) needs an axis: {e.func}(x, axis={v.type.rank - 1})")
    axis = s.static_int(e.kwargs["axis"], "the axis")
    if not 0 <= axis < v.type.rank:
        raise TdslError(e.kwargs["axis"].loc, f"axis {axis} is out of range for {v.type}")
    if v.type.dtype not in ops.NUMERIC:
        raise TdslError(e.loc, f"{e.func}() does not take {v.type.dtype}")
    return v, axis


def _arg_reduce(kind: str) -> None:
    def both(s: Sema, e: ast.Call) -> tuple[Value, ...]:
        v, axis = _axis_operand(s, e)
        shape = v.type.shape[:axis] + v.type.shape[axis + 1:]
        cls = ops.ARG_REDUCE_OPS[kind]
        return tuple(s.emit(cls([v], [TileType(v.type.dtype, shape), TileType("i32", shape)], {"axis": axis},
                                loc=e.loc)).results)

    MULTI_BUILTINS[kind] = both
    BUILTINS[kind] = lambda s, e: both(s, e)[1]


_arg_reduce("argmax")
_arg_reduce("argmin")


@builtin("cumsum")
def _cumsum(s: Sema, e: ast.Call) -> Value:
    v, axis = _axis_operand(s, e, default_1d=True)
    return s.emit(ops.SCAN_OPS["sum"]([v], [v.type.without_layout()], {"axis": axis}, loc=e.loc)).result


@builtin("where")
def _where(s: Sema, e: ast.Call) -> Any:
    c_e, a_e, b_e = _args(s, e, 3)
    c, a, b = s.expr(c_e), s.expr(a_e), s.expr(b_e)
    from tiledsl.frontend.sema import Static
    if isinstance(c, Static):
        return a if c.value else b
    c = _tile(s, c, c_e.loc, "the condition of where()")
    if c.type.dtype != "i1":
        raise TdslError(c_e.loc, f"the condition of where() must be boolean, got {c.type}",
                        ["compare something: where(x > 0, ...)"])
    if isinstance(a, Static) and isinstance(b, Static) and a.weak and b.weak:
        dtype = "f32" if isinstance(a.value, float) or isinstance(b.value, float) else "i32"
    else:
        dtype = s.common_dtype("where", a, b, e.loc)
    av, bv = s.materialize(a, a_e.loc, dtype), s.materialize(b, b_e.loc, dtype)
    shape = s.broadcast_shape(c.type.shape, s.broadcast_shape(av.type.shape, bv.type.shape, e.loc, "where"),
                              e.loc, "where")
    c, av, bv = (s.broadcast(x, shape, e.loc) for x in (c, av, bv))
    return s.emit(ops.SelectOp([c, av, bv], [TileType(dtype, shape)], loc=e.loc)).result


@builtin("dot")
def _dot(s: Sema, e: ast.Call) -> Value:
    args = _args(s, e, (2, 3), ("acc",))
    if len(args) == 3 and "acc" in e.kwargs:
        raise TdslError(e.loc, "dot() got the accumulator twice")
    a = _tile(s, s.expr(args[0]), args[0].loc, "the first operand of dot()")
    b = _tile(s, s.expr(args[1]), args[1].loc, "the second operand of dot()")
    for v, x in ((a, args[0]), (b, args[1])):
        if v.type.rank != 2:
            raise TdslError(x.loc, f"dot() multiplies 2-D tiles, got {v.type}")
    if a.type.shape[1] != b.type.shape[0]:
        raise TdslError(e.loc, f"dot() of {a.type} and {b.type}: inner dims {a.type.shape[1]} and "
                               f"{b.type.shape[0]} differ", ["transpose one operand with x^T if needed"])
    if a.type.dtype != b.type.dtype:
        raise TdslError(e.loc, f"dot() of {a.type.dtype} and {b.type.dtype}: operand dtypes differ",
                        ["cast one operand, e.g. f16(p)"])
    if a.type.dtype not in ops.DOT_DTYPES:
        raise TdslError(e.loc, f"dot() takes f16, bf16 or f32 operands, got {a.type.dtype}")
    rtype = TileType("f32", (a.type.shape[0], b.type.shape[1]))
    operands = [a, b]
    acc_e = args[2] if len(args) == 3 else e.kwargs.get("acc")
    if acc_e is not None:
        acc = _tile(s, s.expr(acc_e), acc_e.loc, "the accumulator of dot()")
        if acc.type.without_layout() != rtype:
            raise TdslError(acc_e.loc, f"the accumulator must be {rtype}, got {acc.type}")
        operands.append(acc)
        rtype = acc.type
    return s.emit(ops.DotOp(operands, [rtype], loc=e.loc)).result


#: Built-ins that may stand alone as a statement (their value, if any, dropped): name -> handler.
STATEMENTS: dict[str, Callable[[Sema, ast.Call], Any]] = {}


def _atomic(kind: str) -> None:
    name = f"atomic_{kind}"
    BUILTINS[name] = lambda s, e: _atomic_update(s, e, kind, want_old=True)
    STATEMENTS[name] = lambda s, e: _atomic_update(s, e, kind, want_old=False)


def _atomic_update(s: Sema, e: ast.Call, kind: str, want_old: bool) -> Value | None:
    """``atomic_KIND(Y[slice], v)``: the slice of an out tensor updated atomically with ``v`` (a
    tile of the slice's shape, or a scalar broadcast to it); as an expression, the old values."""
    from tiledsl.frontend.sema import TensorRef
    target_e, value_e = _args(s, e, 2)
    usage = f"{e.func}(Y[i : +BM], v)"
    if not (isinstance(target_e, ast.Subscript) and isinstance(target_e.base, ast.Name)):
        raise TdslError(target_e.loc, f"{e.func}() updates a slice of an out tensor: {usage}")
    ref = s.lookup(target_e.base.id, target_e.base.loc)
    if not isinstance(ref, TensorRef):
        raise TdslError(target_e.loc, f"{e.func}() updates global tensors; '{target_e.base.id}' is "
                                      f"{s.describe(ref)}", ["atomics on LDS tiles are not supported"])
    p = ref.param
    if target_e.pad is not None:
        raise TdslError(target_e.pad.loc, "'pad' applies to reads; an atomic drops the elements past the end")
    if not p.out:
        raise TdslError(target_e.loc, f"'{p.name}' is an input; only 'out' tensors can be updated",
                        [f"declare it as 'out {p.name}: ...'"])
    cls = ops.ATOMIC_OPS[kind]
    if p.dtype not in cls.dtypes:
        takes = ", ".join(cls.dtypes[:-1]) + " or " + cls.dtypes[-1]
        raise TdslError(e.loc, f"{e.func}() takes {takes} tensors; '{p.name}' is {p.dtype}")
    starts, attrs, shape = s.slice(ref, target_e.indices, target_e.loc)
    if attrs.get("gather") or attrs.get("bounded"):
        raise TdslError(target_e.loc, f"{e.func}() updates a plain slice of '{p.name}' (start : +EXTENT, or a "
                                      f"scalar index, per dim)",
                        ["index tiles and 'until' bounds are not supported in atomics yet"])
    v = s.tile_of(s.expr(value_e), value_e.loc, p.dtype, shape)
    if v.type.dtype != p.dtype:
        raise TdslError(value_e.loc, f"cannot update {p.dtype} tensor '{p.name}' with {v.type}",
                        [f"cast it: {p.dtype}(...)"])
    if not shape and v.type.shape:
        raise TdslError(value_e.loc, f"one element of '{p.name}' takes a scalar, got {v.type}",
                        [f"reduce the tile first, e.g. sum(x, axis=0), or update a slice: {p.name}[i : +N]"])
    s.check_shape(e.loc, v.type.shape, shape, f"the slice of '{p.name}'")
    target_e.ty = f"{p.dtype}[{','.join(map(str, shape))}]"
    result = [TileType(p.dtype, shape)] if want_old else []
    op = s.emit(cls([ref.value, *starts, v], result, {"extents": attrs["extents"]}, loc=e.loc))
    return op.result if want_old else None


for _kind in ops.ATOMIC_OPS:
    _atomic(_kind)


@builtin("transpose")
def _transpose(s: Sema, e: ast.Call) -> Value:
    (x,) = _args(s, e, 1)
    return s.expr_Transpose(ast.Transpose(e.loc, x))


@builtin("cdiv")
def _cdiv(s: Sema, e: ast.Call) -> Any:
    a_e, b_e = _args(s, e, 2)
    from tiledsl.frontend.sema import Static
    a, b = s.expr(a_e), s.expr(b_e)
    if isinstance(b, Static) and b.value == 0:
        raise TdslError(b_e.loc, "cdiv() by zero")
    for v, x in ((a, a_e), (b, b_e)):
        if isinstance(v, Static) and v.dtype != "i32":
            raise TdslError(x.loc, f"cdiv() takes integers, got {v}")
        if isinstance(v, Value) and v.type != scalar("i32"):
            raise TdslError(x.loc, f"cdiv() takes i32 scalars, got {v.type}")
    one = Static(1, "i32")
    return s.binary("//", s.binary("-", s.binary("+", a, b, e.loc), one, e.loc), b, e.loc)


# ------------------------------------------------------------------ layouts

LAYOUT_KINDS = ("blocked", "mma", "dot_operand", "slice", "replicated")
_LAYOUT_KW = {"blocked": ("spt", "order", "waves"), "mma": ("waves", "instr", "swap"),
              "dot_operand": (), "slice": (), "replicated": ()}
_LAYOUT_POS = {"blocked": 0, "mma": 0, "dot_operand": 2, "slice": 2, "replicated": 0}
_LAYOUT_RANK = {"mma": 2, "dot_operand": 2, "slice": 1}


def _int_list(s: Sema, v: Any, what: str, loc: Any) -> list[int]:
    if not isinstance(v, list):
        raise TdslError(loc, f"{what} must be a list of integers, e.g. [4, 1]")
    out = []
    for x in v:
        n = s.static_int(x, what)
        if n < 1 and what != "order":
            raise TdslError(x.loc, f"{what} entries must be positive")
        out.append(n)
    return out


def check_layout(s: Sema, e: ast.LayoutExpr, args: list[Any], kwargs: dict[str, Any]) -> str:
    """Validate a layout expression and return its canonical text (as the layout
    module prints its spec)."""
    from tiledsl.layout import LayoutError, parse_layout_spec
    text = _layout_text(s, e, args, kwargs)
    try:
        return str(parse_layout_spec(text))
    except LayoutError as err:
        raise TdslError(e.loc, f"invalid layout: {err}") from None


def _layout_text(s: Sema, e: ast.LayoutExpr, args: list[Any], kwargs: dict[str, Any]) -> str:
    kind = e.kind
    for k in kwargs:
        if k not in _LAYOUT_KW[kind]:
            raise TdslError(e.loc, f"layout {kind}() has no argument '{k}'",
                            [f"it takes: {', '.join(_LAYOUT_KW[kind]) or 'positional arguments only'}"])
    if len(args) != _LAYOUT_POS[kind]:
        raise TdslError(e.loc, f"layout {kind}() takes {_LAYOUT_POS[kind]} positional arguments, got {len(args)}")
    waves_total = s.block_waves()
    if kind in ("blocked", "mma"):
        parts = []
        if kind == "mma" and "waves" not in kwargs:
            raise TdslError(e.loc, "mma() needs waves=[WM, WN]")
        for key in _LAYOUT_KW[kind]:
            if key not in kwargs:
                continue
            v = kwargs[key]
            if key in ("spt", "order", "waves"):
                lst = _int_list(s, v, key, e.loc)
                if key == "waves":
                    if kind == "mma" and len(lst) != 2:
                        raise TdslError(e.loc, "mma() waves are [WM, WN]")
                    prod = math.prod(lst)
                    if waves_total is not None and prod != waves_total:
                        raise TdslError(e.loc, f"the layout spreads over {prod} waves but the block has "
                                               f"{waves_total}")
                if key == "order" and sorted(lst) != list(range(len(lst))):
                    raise TdslError(e.loc, f"order must be a permutation of 0..{len(lst) - 1}")
                parts.append(f"{key}=[{','.join(map(str, lst))}]")
            elif key == "instr":
                if not isinstance(v, ast.Name):
                    raise TdslError(e.loc, "instr= names a matrix instruction, e.g. mfma_f32_32x32x8_f16")
                parts.append(f"instr={v.id}")
            elif key == "swap":
                if not isinstance(v, bool):
                    raise TdslError(e.loc, "swap= is true or false")
                parts.append(f"swap={'true' if v else 'false'}")
        if kind == "blocked":
            lens = {len(p.split("=")[1].strip("[]").split(",")) for p in parts if "[" in p}
            if len(lens) > 1:
                raise TdslError(e.loc, "spt, order and waves must have one entry per tile dim")
        return f"{kind}({', '.join(parts)})" if parts else kind
    if kind == "replicated":
        return "replicated"
    idx, parent = args
    n = s.static_int(idx, "the operand/dim index") if isinstance(idx, ast.Expr) else idx
    if n not in (0, 1):
        raise TdslError(e.loc, f"{kind}() takes 0 or 1 as its first argument, got {n}")
    if not isinstance(parent, ast.Name):
        raise TdslError(e.loc, f"{kind}() takes a declared layout as its second argument: "
                               f"layout acc = mma(...); layout a = {kind}({n}, acc)")
    ref = s.lookup(parent.id, parent.loc)
    from tiledsl.frontend.sema import LayoutRef
    if not isinstance(ref, LayoutRef):
        raise TdslError(parent.loc, f"'{parent.id}' is not a layout")
    if kind == "dot_operand" and not ref.text.startswith("mma("):
        raise TdslError(parent.loc, "dot_operand() takes an mma layout as its parent")
    return f"{kind}({n}, {ref.text})"


def check_layout_rank(s: Sema, e: ast.LayoutExpr, text: str, rank: int) -> None:
    kind = text.split("(")[0]
    want = _LAYOUT_RANK.get(kind)
    if kind == "blocked" and "[" in text:
        want = len(text.split("[")[1].split("]")[0].split(","))
    if want is not None and want != rank:
        raise TdslError(e.loc, f"layout {text} is for {want}-D tiles, but the value is {rank}-D")
