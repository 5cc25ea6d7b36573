"""Tile IR: block-level SSA ops on tiles.

One small class per op, each with its own verifier. The vocabulary follows the
seed design: ``fill`` (blockwise_fill), ``reduce_*`` (blockwise_reduction), ``dot``
(accel gemm), ``copy``/``load``/``store``, element-wise ops, ``sync``; plus
structured ``for``/``if`` with loop-carried values.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tiledsl.diagnostics import Loc
from tiledsl.ir.core import Block, Op, Value, VerifyError, register
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.ir.types import (
    DTYPE_BYTES,
    FLOAT_DTYPES,
    INT_DTYPES,
    LdsType,
    RegsType,
    TensorType,
    TileType,
    Type,
    int_range,
)

#: The operand dtypes of ``dot``.
DOT_DTYPES = ("f16", "bf16", "f32")
#: The dtypes of slice starts and indices of global tensors.
INDEX_DTYPES = ("i32", "i64")


def _tile(op: Op, v: Value, what: str) -> TileType:
    if not isinstance(v.type, TileType):
        raise VerifyError(op, f"{what} must be a register tile, got {v.type}")
    return v.type


def _values(op: Op, v: Value, what: str) -> TileType | RegsType:
    """A tile (tile IR, or a uniform scalar) or a register vector (thread IR)."""
    if not isinstance(v.type, (TileType, RegsType)):
        raise VerifyError(op, f"{what} must be a tile or registers, got {v.type}")
    return v.type


def _same_shape(op: Op, a: TileType, b: TileType, what: str) -> None:
    if a.shape != b.shape:
        raise VerifyError(op, f"{what}: shapes [{a.shape}] and [{b.shape}] differ")


class _Fixed(Op):
    """An op with a fixed number of operands and results."""

    num_operands: ClassVar[int | None] = None
    num_results: ClassVar[int | None] = 1

    def verify(self) -> None:
        super().verify()
        if self.num_operands is not None and len(self.operands) != self.num_operands:
            raise VerifyError(self, f"expects {self.num_operands} operands, has {len(self.operands)}")
        if self.num_results is not None and len(self.results) != self.num_results:
            raise VerifyError(self, f"expects {self.num_results} results, has {len(self.results)}")


# ---------------------------------------------------------------- kernel structure

@register
class KernelOp(Op):
    """The kernel. Region 0 computes the grid extents from the dims (ends in
    ``yield``); region 1 is the body, whose arguments are the kernel parameters.

    attrs: ``sym_name``, ``block`` (size), ``block_unit`` ("waves"|"threads"),
    ``params`` (compile-time values by name), ``grid_names``, and ``block_loc``: where the
    source declares the block size (the target-dependent checks of it report there).
    """

    name = "kernel"
    num_regions = 2

    def verify(self) -> None:
        super().verify()
        if not isinstance(self.attrs.get("block_loc", Loc("", 0, 0)), Loc):
            raise VerifyError(self, "block_loc must be a source location")
        grid, body = self.regions
        if not grid.ops or not isinstance(grid.terminator, YieldOp):
            raise VerifyError(self, "grid region must end in yield")
        for v in grid.terminator.operands:
            if not (isinstance(v.type, TileType) and v.type.shape == () and v.type.dtype == "i32"):
                raise VerifyError(self, "grid extents must be i32 scalars")
        for a in body.args:
            if not isinstance(a.type, (TensorType, TileType)):
                raise VerifyError(self, f"kernel parameter of type {a.type}")

    @property
    def grid(self) -> Block:
        return self.regions[0]

    @property
    def body(self) -> Block:
        return self.regions[1]


@register
class DimOp(_Fixed):
    """The runtime size of a named dim (``N``), read from the tensor shapes."""

    name = "dim"
    num_operands = 0
    pure = cse = True


@register
class BlockIdOp(_Fixed):
    """This block's coordinate along grid axis ``axis``."""

    name = "block_id"
    num_operands = 0
    pure = cse = True


@register
class ScalarArgOp(_Fixed):
    """The value of the i32 scalar kernel parameter ``name``, in the grid region (whose extents
    may depend on it: ``grid (cdiv(max_seqlen, BM))``); the body reads its block arguments."""

    name = "scalar_arg"
    num_operands = 0
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if self.result.type != TileType("i32") or not isinstance(self.attrs.get("name"), str):
            raise VerifyError(self, "scalar_arg() {name = ...} : i32")


@register
class ConstOp(_Fixed):
    """A scalar constant; ``value`` is a Python int, float or bool."""

    name = "const"
    num_operands = 0
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        t = _tile(self, self.result, "const")
        if t.shape != ():
            raise VerifyError(self, "const must be a scalar")
        value = self.attrs.get("value")
        if not isinstance(value, (int, float, bool)):
            raise VerifyError(self, "const needs a numeric value")
        if t.dtype in INT_DTYPES and not (isinstance(value, int) and not isinstance(value, bool)
                                          and int_range(t.dtype)[0] <= value <= int_range(t.dtype)[1]):
            raise VerifyError(self, f"an {t.dtype} const must be an integer in range, not {value!r}")


@register
class FillOp(_Fixed):
    """A tile with every element equal to a scalar operand."""

    name = "fill"
    num_operands = 1
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        s = _tile(self, self.operands[0], "fill value")
        t = _tile(self, self.result, "fill result")
        if s.shape != () or s.dtype != t.dtype:
            raise VerifyError(self, "fill value must be a scalar of the result dtype")


@register
class IotaOp(_Fixed):
    """``i32[n]`` holding 0, 1, ..., n-1."""

    name = "iota"
    num_operands = 0
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        t = _tile(self, self.result, "iota")
        if t.dtype != "i32" or t.rank != 1:
            raise VerifyError(self, "iota yields a 1-D i32 tile")


# ---------------------------------------------------------------- element-wise

class ElementwiseOp(_Fixed):
    """Operands and result share one shape; the result dtype is checked per op."""

    pure = cse = True
    operand_dtypes: ClassVar[tuple[str, ...] | None] = None
    result_dtype: ClassVar[str | None] = None     # None: same as the first operand

    def verify(self) -> None:
        super().verify()
        r = _values(self, self.result, "result")
        tiles = [_values(self, v, "operand") for v in self.operands]
        for t in tiles:
            if type(t) is not type(r):
                raise VerifyError(self, f"mixes {t} and {r}")
            _same_shape(self, t, r, self.name)
        self.verify_dtypes(tiles, r)

    def verify_dtypes(self, tiles: list[TileType], r: TileType) -> None:
        if len({t.dtype for t in tiles}) > 1:
            raise VerifyError(self, f"operand dtypes differ: {[t.dtype for t in tiles]}")
        if self.operand_dtypes is not None and tiles[0].dtype not in self.operand_dtypes:
            raise VerifyError(self, f"does not take {tiles[0].dtype}")
        want = self.result_dtype or tiles[0].dtype
        if r.dtype != want:
            raise VerifyError(self, f"result dtype {r.dtype}, expected {want}")


def _elementwise(name: str, arity: int, operand_dtypes: tuple[str, ...] | None = None,
                 result_dtype: str | None = None) -> type[ElementwiseOp]:
    cls = type(f"{name.title().replace('_', '')}Op", (ElementwiseOp,), {
        "name": name, "num_operands": arity, "operand_dtypes": operand_dtypes, "result_dtype": result_dtype,
        "__doc__": f"Element-wise ``{name}``.",
    })
    return register(cls)


NUMERIC = (*FLOAT_DTYPES, *INT_DTYPES)
BINARY_OPS = {name: _elementwise(name, 2, NUMERIC) for name in ("add", "sub", "mul", "max", "min")}
BINARY_OPS["div"] = _elementwise("div", 2, FLOAT_DTYPES)
BINARY_OPS["floordiv"] = _elementwise("floordiv", 2, INT_DTYPES)
BINARY_OPS["mod"] = _elementwise("mod", 2, INT_DTYPES)
BINARY_OPS["and"] = _elementwise("and", 2, ("i1",))
BINARY_OPS["or"] = _elementwise("or", 2, ("i1",))
COMPARE_OPS = {name: _elementwise(name, 2, NUMERIC, "i1") for name in ("lt", "le", "gt", "ge", "eq", "ne")}
UNARY_OPS = {name: _elementwise(name, 1, FLOAT_DTYPES) for name in ("exp", "exp2", "sqrt", "rsqrt", "log2")}
UNARY_OPS["neg"] = _elementwise("neg", 1, NUMERIC)
UNARY_OPS["abs"] = _elementwise("abs", 1, NUMERIC)
UNARY_OPS["not"] = _elementwise("not", 1, ("i1",))
# Bit operations on integers (``& | ^ << >> ~``): shifts by a count outside [0, width) shift
# every bit out (``interp.numerics``); ``shr`` is arithmetic on signed dtypes, logical on unsigned.
BIT_OPS = {name: _elementwise(name, 2, INT_DTYPES) for name in ("bitand", "bitor", "bitxor", "shl", "shr")}
BINARY_OPS.update(BIT_OPS)
UNARY_OPS["bitnot"] = _elementwise("bitnot", 1, INT_DTYPES)

# Math functions, defined by ``numerics.MATH64`` (float64, rounded to the dtype); float operands only.
MATH_UNARY = ("tanh", "sigmoid", "erf", "log", "log1p", "sin", "cos", "floor", "ceil", "round")
UNARY_OPS.update({name: _elementwise(name, 1, FLOAT_DTYPES) for name in MATH_UNARY})
UNARY_OPS.update({name: _elementwise(name, 1, FLOAT_DTYPES, "i1") for name in ("isnan", "isinf")})
BINARY_OPS["pow"] = _elementwise("pow", 2, FLOAT_DTYPES)


@register
class SelectOp(ElementwiseOp):
    """``where(cond, a, b)``: a where cond is true, else b."""

    name = "select"
    num_operands = 3

    def verify_dtypes(self, tiles: list[TileType], r: TileType) -> None:
        c, a, b = tiles
        if c.dtype != "i1":
            raise VerifyError(self, "condition must be i1")
        if a.dtype != b.dtype or r.dtype != a.dtype:
            raise VerifyError(self, "branches and result must share a dtype")


@register
class ClampOp(ElementwiseOp):
    """``clamp(x, lo, hi)``: ``min(max(x, lo), hi)`` (maxNum/minNum: a NaN bound is ignored), a NaN
    ``x`` kept NaN, as ``np.clip``."""

    name = "clamp"
    num_operands = 3
    operand_dtypes = NUMERIC


@register
class CastOp(ElementwiseOp):
    """Convert to the result dtype: floats round to nearest even (saturating to fp8), floats to
    integers truncate and saturate, integers wrap (the rules of ``interp.numerics``)."""

    name = "cast"
    num_operands = 1

    def verify_dtypes(self, tiles: list[TileType], r: TileType) -> None:
        pass


@register
class BitcastOp(ElementwiseOp):
    """The same bits read as the result dtype, of the same size (``bitcast(x, u32)``)."""

    name = "bitcast"
    num_operands = 1

    def verify_dtypes(self, tiles: list[TileType], r: TileType) -> None:
        src = tiles[0].dtype
        if "i1" in (src, r.dtype) or DTYPE_BYTES[src] != DTYPE_BYTES[r.dtype]:
            raise VerifyError(self, f"cannot bitcast {src} to {r.dtype}: the sizes differ")


# ---------------------------------------------------------------- shape ops

@register
class ExpandDimsOp(_Fixed):
    """Insert a size-1 axis at ``axis`` (the ``_`` in ``x[:, _]``)."""

    name = "expand_dims"
    num_operands = 1
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        ax = self.attrs.get("axis")
        if not isinstance(ax, int) or not 0 <= ax <= s.rank:
            raise VerifyError(self, f"bad axis {ax}")
        want = s.shape[:ax] + (1,) + s.shape[ax:]
        if r.shape != want or r.dtype != s.dtype:
            raise VerifyError(self, f"result {r} should be {s.dtype}[{want}]")


@register
class BroadcastOp(_Fixed):
    """Repeat size-1 axes (or a scalar) to the result shape."""

    name = "broadcast"
    num_operands = 1
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        if s.dtype != r.dtype:
            raise VerifyError(self, "broadcast keeps the dtype")
        if s.rank == 0:
            return
        if s.rank != r.rank or any(a != b and a != 1 for a, b in zip(s.shape, r.shape)):
            raise VerifyError(self, f"cannot broadcast {s} to {r}")


@register
class TransposeOp(_Fixed):
    """Swap the two axes of a 2-D tile."""

    name = "transpose"
    num_operands = 1
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        if s.rank != 2 or r.shape != (s.shape[1], s.shape[0]) or r.dtype != s.dtype:
            raise VerifyError(self, f"transpose of {s} cannot be {r}")


class ReduceOp(_Fixed):
    """Reduce a tile along ``axis`` (the axis is removed). After layout assignment a
    reduction whose axis spans several waves takes a second operand: the LDS scratch
    tile through which the waves combine their partial results.

    ``kind`` names the combining function: ``sum``, ``max`` or ``min``. Float ``max``/``min``
    are IEEE maxNum/minNum, as the element-wise ``max``/``min``: a NaN element is ignored (the
    result is NaN only when every element is NaN)."""

    kind: str
    combine: str        # the element-wise op (``BINARY_OPS``) that combines two partial results
    num_operands = None
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) not in (1, 2):
            raise VerifyError(self, "reduce takes a tile and an optional LDS scratch")
        if len(self.operands) == 2 and not isinstance(self.operands[1].type, LdsType):
            raise VerifyError(self, "the second operand must be an LDS scratch tile")
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        ax = self.attrs.get("axis")
        if not isinstance(ax, int) or not 0 <= ax < s.rank:
            raise VerifyError(self, f"bad axis {ax}")
        if r.shape != s.shape[:ax] + s.shape[ax + 1:] or r.dtype != s.dtype:
            raise VerifyError(self, f"result {r} does not match a reduction of {s} over axis {ax}")


@register
class ConvertLayoutOp(_Fixed):
    """The same tile in another thread layout (inserted by layout assignment where two
    layouts meet; conversions through LDS are spelled out as LDS ops instead)."""

    name = "convert_layout"
    num_operands = 1
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        if s.without_layout() != r.without_layout():
            raise VerifyError(self, f"converts {s} to {r}: only the layout may change")


@register
class ReduceMaxOp(ReduceOp):
    name = "reduce_max"
    kind = "max"
    combine = "max"


@register
class ReduceMinOp(ReduceOp):
    name = "reduce_min"
    kind = "min"
    combine = "min"


@register
class ReduceSumOp(ReduceOp):
    name = "reduce_sum"
    kind = "sum"
    combine = "add"


REDUCE_OPS: dict[str, type[ReduceOp]] = {cls.kind: cls for cls in (ReduceMaxOp, ReduceMinOp, ReduceSumOp)}


class ArgReduceOp(_Fixed):
    """``values, indices = reduce_argmax(x) {axis}``: along ``axis``, the largest element of each line
    (``reduce_argmin``: the smallest) and its index there (i32). Ties go to the smallest index, as
    NumPy's; a NaN is ignored, as ``max``/``min`` ignore it (maxNum), so the value is the line's
    ``max``; a line of NaNs gives NaN at index 0. After layout assignment a reduction whose axis
    spans several waves takes two more operands, the LDS scratch tiles through which the waves
    combine their (value, index) pairs (values, then indices)."""

    kind: str
    num_operands = None
    num_results = 2
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) not in (1, 3):
            raise VerifyError(self, "takes a tile and optionally two LDS scratch tiles")
        if any(not isinstance(v.type, LdsType) for v in self.operands[1:]):
            raise VerifyError(self, "the scratch operands must be LDS tiles")
        s = _tile(self, self.operands[0], "operand")
        v, i = (_tile(self, r, "result") for r in self.results)
        ax = self.attrs.get("axis")
        if not isinstance(ax, int) or not 0 <= ax < s.rank:
            raise VerifyError(self, f"bad axis {ax}")
        if s.dtype not in NUMERIC:
            raise VerifyError(self, f"does not take {s.dtype}")
        shape = s.shape[:ax] + s.shape[ax + 1:]
        if v.shape != shape or v.dtype != s.dtype or i.shape != shape or i.dtype != "i32":
            raise VerifyError(self, f"results {v}, {i} do not match an arg-reduction of {s} over axis {ax}")


@register
class ReduceArgmaxOp(ArgReduceOp):
    name = "reduce_argmax"
    kind = "argmax"


@register
class ReduceArgminOp(ArgReduceOp):
    name = "reduce_argmin"
    kind = "argmin"


ARG_REDUCE_OPS: dict[str, type[ArgReduceOp]] = {cls.kind: cls for cls in (ReduceArgmaxOp, ReduceArgminOp)}


class ScanOp(_Fixed):
    """An inclusive scan along ``axis``: ``cumsum`` puts at each position the sum of the line's
    elements up to it (f32 accumulation for floats, rounded once per element; i32 wraps). After
    layout assignment a scan whose axis spans several waves takes an LDS scratch tile, through
    which each wave learns the totals of the waves before it."""

    kind: str
    combine: str        # the element-wise op (``BINARY_OPS``) that combines two partial results
    num_operands = None
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) not in (1, 2):
            raise VerifyError(self, "takes a tile and an optional LDS scratch")
        if len(self.operands) == 2 and not isinstance(self.operands[1].type, LdsType):
            raise VerifyError(self, "the second operand must be an LDS scratch tile")
        s, r = _tile(self, self.operands[0], "operand"), _tile(self, self.result, "result")
        ax = self.attrs.get("axis")
        if not isinstance(ax, int) or not 0 <= ax < s.rank:
            raise VerifyError(self, f"bad axis {ax}")
        if s.dtype not in NUMERIC or r.dtype != s.dtype or r.shape != s.shape:
            raise VerifyError(self, f"result {r} does not match a scan of {s}")


@register
class CumsumOp(ScanOp):
    name = "cumsum"
    kind = "sum"
    combine = "add"


SCAN_OPS: dict[str, type[ScanOp]] = {cls.kind: cls for cls in (CumsumOp,)}


@register
class DotOp(_Fixed):
    """``a[M,K] · b[K,N] (+ acc[M,N])`` with f32 accumulation."""

    name = "dot"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) not in (2, 3):
            raise VerifyError(self, "dot takes a, b and an optional accumulator")
        a, b = _tile(self, self.operands[0], "a"), _tile(self, self.operands[1], "b")
        r = _tile(self, self.result, "result")
        if a.rank != 2 or b.rank != 2 or a.shape[1] != b.shape[0]:
            raise VerifyError(self, f"cannot multiply {a} by {b}")
        if a.dtype != b.dtype or a.dtype not in DOT_DTYPES:
            raise VerifyError(self, f"operands must share one of the dtypes {', '.join(DOT_DTYPES)}")
        if r.dtype != "f32" or r.shape != (a.shape[0], b.shape[1]):
            raise VerifyError(self, f"result must be f32[{a.shape[0]},{b.shape[1]}]")
        if len(self.operands) == 3:
            c = _tile(self, self.operands[2], "acc")
            if c.without_layout() != r.without_layout():
                raise VerifyError(self, "accumulator must have the result's type")


# ---------------------------------------------------------------- memory

class GlobalAccess(Op):
    """Shared checks of ops that address a slice of a global tensor.

    Operands: the tensor, then one i32 start per tensor dim. ``extents[d]`` is the
    tile extent along dim d, or 0 where a scalar index drops the dim. Elements
    outside the tensor are masked for extent dims (reads give ``pad``, writes are
    dropped); a scalar index out of range is an out-of-bounds access.

    ``gather`` (optional): the dims indexed by an index tile (a gather, or a scatter for a
    store): their operand is an ``i32[L]`` tile instead of a scalar, and element i of the tile's
    gathered axis is at ``idx[i]`` along each of them. The gathered axis sits where the first
    gathered dim is (its extent is L, the other gathered dims' 0). An index outside its dim is an
    out-of-bounds access unless the dim is ``bounded``.

    ``bounded`` (optional): dims cut at a run-time bound, one i32 scalar operand per listed dim
    after the starts: an index at or past the bound is masked as past the tensor's end (an extent
    dim), or an index tile's entry outside [0, min(dim, bound)) is masked (a gathered dim).
    """

    def addressing(self, t: TensorType) -> int:
        """How many operands after the tensor address it: one per dim, one per bound."""
        return len(t.dims) + len(self.attrs.get("bounded", ()))

    def bounds(self) -> list[Value]:
        """The bound operands, in the order of ``bounded``."""
        rank = len(self.operands[0].type.dims)
        return self.operands[1 + rank:1 + rank + len(self.attrs.get("bounded", ()))]

    def gather_axis(self) -> int | None:
        """The tile axis along which the index tiles gather (None: no gather)."""
        gather = self.attrs.get("gather")
        if not gather:
            return None
        return sum(1 for e in self.attrs["extents"][:gather[0]] if e != 0)

    def _check_slice(self, tile_shape: tuple[Any, ...]) -> TensorType:
        t = self.operands[0].type
        if not isinstance(t, TensorType):
            raise VerifyError(self, "first operand must be a tensor")
        extents = self.attrs.get("extents")
        if not isinstance(extents, list) or len(extents) != len(t.dims):
            raise VerifyError(self, "extents must list one entry per tensor dim")
        gather, bounded = self._check_dims("gather", len(t.dims)), self._check_dims("bounded", len(t.dims))
        lengths = set()
        for d, v in enumerate(self.operands[1:1 + len(t.dims)]):
            if d in gather:
                if not (isinstance(v.type, TileType) and v.type.rank == 1 and v.type.dtype == "i32"):
                    raise VerifyError(self, f"the index of gathered dim {d} must be a 1-D i32 tile")
                lengths.add(v.type.shape[0])
            elif not (isinstance(v.type, TileType) and v.type.shape == () and v.type.dtype in INDEX_DTYPES):
                raise VerifyError(self, "slice starts must be i32 or i64 scalars")
        if len(lengths) > 1 or (gather and [extents[d] for d in gather] != [*lengths, *[0] * (len(gather) - 1)]):
            raise VerifyError(self, f"index tiles of lengths {sorted(lengths)} with extents {extents}: the first "
                                    f"gathered dim has the tiles' one length, the others 0")
        if any(extents[d] == 0 and d not in gather for d in bounded):
            raise VerifyError(self, "a bound cuts a slice or an index tile, not a scalar index")
        if len(self.operands) < 1 + self.addressing(t):
            raise VerifyError(self, "missing bound operands")
        for v in self.bounds():
            if not (isinstance(v.type, TileType) and v.type.shape == () and v.type.dtype == "i32"):
                raise VerifyError(self, "bounds must be i32 scalars")
        want = tuple(e for e in extents if e != 0)
        if tuple(tile_shape) != want:
            raise VerifyError(self, f"tile shape {tile_shape} does not match slice extents {want}")
        return t

    def _check_dims(self, key: str, rank: int) -> list[int]:
        dims = self.attrs.get(key, [])
        if not (isinstance(dims, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
                and dims == sorted(set(dims)) and all(0 <= d < rank for d in dims)):
            raise VerifyError(self, f"{key} must list tensor dims in increasing order, got {dims!r}")
        return dims


@register
class LoadOp(GlobalAccess):
    """Read a masked slice of a global tensor into registers."""

    name = "load"
    pure = True

    def verify(self) -> None:
        super().verify()
        r = _tile(self, self.result, "result")
        t = self._check_slice(r.shape)
        if len(self.operands) != 1 + self.addressing(t) or r.dtype != t.dtype:
            raise VerifyError(self, "load operands/dtype mismatch")


@register
class StoreOp(GlobalAccess):
    """Write a register tile to a masked slice of an ``out`` tensor."""

    name = "store"

    def verify(self) -> None:
        super().verify()
        v = _tile(self, self.operands[-1], "stored value")
        t = self._check_slice(v.shape)
        if len(self.operands) != 2 + self.addressing(t) or self.results:
            raise VerifyError(self, "store takes tensor, starts, value and has no result")
        if v.dtype != t.dtype or not t.out:
            raise VerifyError(self, "store needs an out tensor of the value's dtype")


class AtomicOp(GlobalAccess):
    """Update a masked slice of an ``out`` tensor atomically, element by element:
    ``Y[i] = kind(Y[i], v[i])``, relaxed, at device scope (no order with other memory accesses).

    Operands: the tensor, one i32 start per dim, the value (a tile of the slice's shape, or a
    scalar for a slice of one element: every index a scalar), and — added by layout assignment
    where the old values must reach threads that did not make the atomic — an LDS scratch tile.
    The optional result is the old values, of the value's type: each element as it was just
    before this update, in some order of the updates of all blocks (0 where masked off).
    ``kind`` names the combining function (``add``; ``max``/``min`` as maxNum/minNum: a NaN
    operand is ignored)."""

    kind: ClassVar[str]
    #: The tensor dtypes this kind takes.
    dtypes: ClassVar[tuple[str, ...]]

    def verify(self) -> None:
        super().verify()
        t = self.operands[0].type
        if not isinstance(t, TensorType) or not t.out:
            raise VerifyError(self, "an atomic updates an out tensor")
        rank = len(t.dims)
        if len(self.operands) not in (rank + 2, rank + 3):
            raise VerifyError(self, "atomic takes tensor, starts, value and an optional LDS scratch")
        v = _tile(self, self.operands[rank + 1], "value")
        self._check_slice(v.shape)
        if len(self.operands) == rank + 3 and not isinstance(self.operands[-1].type, LdsType):
            raise VerifyError(self, "the operand after the value must be an LDS scratch tile")
        if v.dtype != t.dtype or t.dtype not in self.dtypes:
            raise VerifyError(self, f"atomic {self.kind} of {v.dtype} into a {t.dtype} tensor")
        if len(self.results) > 1 or (self.results and
                                     _tile(self, self.result, "result").without_layout() != v.without_layout()):
            raise VerifyError(self, "the result (old values) has the value's type")

    @property
    def value(self) -> Value:
        return self.operands[len(self.operands[0].type.dims) + 1]

    @property
    def scratch(self) -> Value | None:
        rank = len(self.operands[0].type.dims)
        return self.operands[rank + 2] if len(self.operands) == rank + 3 else None


@register
class AtomicAddOp(AtomicOp):
    name = "atomic_add"
    kind = "add"
    dtypes = ("f16", "bf16", "f32", "i32")


@register
class AtomicMaxOp(AtomicOp):
    name = "atomic_max"
    kind = "max"
    dtypes = ("f32", "i32")


@register
class AtomicMinOp(AtomicOp):
    name = "atomic_min"
    kind = "min"
    dtypes = ("f32", "i32")


ATOMIC_OPS: dict[str, type[AtomicOp]] = {cls.kind: cls for cls in (AtomicAddOp, AtomicMaxOp, AtomicMinOp)}


@register
class CopyOp(GlobalAccess):
    """Cooperative copy of a masked global slice into an LDS tile.

    With ``async = true`` (made by the ``pipeline`` pass) the copy is only *issued*: its
    data may land in the tile at any time until an ``async_wait`` that covers its group.
    """

    name = "copy"

    def verify(self) -> None:
        super().verify()
        buf = self.operands[-1].type
        if not isinstance(buf, LdsType):
            raise VerifyError(self, "copy destination must be an LDS tile")
        t = self._check_slice(buf.shape)
        if len(self.operands) != 2 + self.addressing(t) or buf.dtype != t.dtype or self.results:
            raise VerifyError(self, "copy operands/dtype mismatch")


@register
class LdsAllocOp(_Fixed):
    """Declare an LDS tile. ``order``, ``pad``, ``cores``, ``swizzle`` (its storage layout, ``LdsStorage``) are
    set by the lds-layout pass, ``offset`` (bytes) by LDS allocation."""

    name = "lds_alloc"
    num_operands = 0

    def verify(self) -> None:
        super().verify()
        if not isinstance(self.result.type, LdsType):
            raise VerifyError(self, "lds_alloc yields an LDS tile")
        if "order" not in self.attrs and "pad" not in self.attrs:
            return
        try:
            LdsStorage.of(self)
        except (ValueError, TypeError) as e:
            raise VerifyError(self, str(e)) from None


@register
class LdsReadOp(_Fixed):
    """Read a whole LDS tile into registers."""

    name = "lds_read"
    num_operands = 1
    pure = True

    def verify(self) -> None:
        super().verify()
        b, r = self.operands[0].type, _tile(self, self.result, "result")
        if not isinstance(b, LdsType) or b.shape != r.shape or b.dtype != r.dtype:
            raise VerifyError(self, f"cannot read {b} as {r}")


@register
class LdsWriteOp(_Fixed):
    """Write a register tile into an LDS tile."""

    name = "lds_write"
    num_operands = 2
    num_results = 0

    def verify(self) -> None:
        super().verify()
        b, v = self.operands[0].type, _tile(self, self.operands[1], "value")
        if not isinstance(b, LdsType) or b.shape != v.shape or b.dtype != v.dtype:
            raise VerifyError(self, f"cannot write {v} into {b}")


@register
class SyncOp(_Fixed):
    """Block-wide barrier: LDS writes before it are visible to reads after it."""

    name = "sync"
    num_operands = 0
    num_results = 0


@register
class AsyncCommitOp(_Fixed):
    """Close the group of async copies issued since the last commit (one group per call,
    possibly empty), as ``cp.async.commit_group``. Shared by tile IR and thread IR."""

    name = "async_commit"
    num_operands = 0
    num_results = 0


@register
class AsyncWaitOp(_Fixed):
    """Wait until at most ``pending`` committed groups of async copies are in flight: the
    data of the others is in LDS, for this thread (a ``sync`` after it shows it to the
    block), as ``cp.async.wait_group pending``. Shared by tile IR and thread IR."""

    name = "async_wait"
    num_operands = 0
    num_results = 0

    def verify(self) -> None:
        super().verify()
        n = self.attrs.get("pending")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise VerifyError(self, f"pending must be a non-negative int, got {n!r}")


# ---------------------------------------------------------------- control flow

@register
class YieldOp(Op):
    """Ends a region; its operands are the region's results."""

    name = "yield"


def _check_yield(op: Op, block: Block, types: list[Type]) -> None:
    term = block.terminator
    if not isinstance(term, YieldOp):
        raise VerifyError(op, "region must end in yield")
    got = [v.type for v in term.operands]
    if [_strip(t) for t in got] != [_strip(t) for t in types]:
        raise VerifyError(op, f"yields {[str(t) for t in got]}, expected {[str(t) for t in types]}")


def _strip(t: Type) -> Type:
    return t.without_layout() if isinstance(t, (TileType, RegsType)) else t


@register
class ForOp(Op):
    """``for iv in lo .. hi step s`` with loop-carried values.

    Operands: lo, hi, step, then the initial carried values. The body's arguments
    are iv and the carried values; its yield gives the next carried values; the
    op's results are the values after the last iteration.
    """

    name = "for"
    num_regions = 1

    def verify(self) -> None:
        super().verify()
        if len(self.operands) < 3:
            raise VerifyError(self, "for needs lo, hi, step")
        for v in self.operands[:3]:
            if not (isinstance(v.type, TileType) and v.type.shape == () and v.type.dtype == "i32"):
                raise VerifyError(self, "loop bounds must be i32 scalars")
        inits = [v.type for v in self.operands[3:]]
        body = self.regions[0]
        if [_strip(a.type) for a in body.args] != [_strip(t) for t in [self.operands[0].type, *inits]]:
            raise VerifyError(self, "body arguments must be iv and the carried values")
        if [_strip(r.type) for r in self.results] != [_strip(t) for t in inits]:
            raise VerifyError(self, "results must match the carried values")
        for arg, res in zip(body.args[1:], self.results):
            la, lr = getattr(arg.type, "layout", None), getattr(res.type, "layout", None)
            if la and lr and la != lr:
                raise VerifyError(self, f"carried value has layout {la} in the loop but {lr} after it")
        _check_yield(self, body, inits)


@register
class IfOp(Op):
    """``if cond { then } else { orelse }`` on a uniform i1 scalar; both regions yield
    the op's results."""

    name = "if"
    num_regions = 2

    def verify(self) -> None:
        super().verify()
        if len(self.operands) != 1:
            raise VerifyError(self, "if takes one condition")
        c = self.operands[0].type
        if not (isinstance(c, TileType) and c.shape == () and c.dtype == "i1"):
            raise VerifyError(self, "if condition must be an i1 scalar")
        types = [r.type for r in self.results]
        for r in self.regions:
            _check_yield(self, r, types)
