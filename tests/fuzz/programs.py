"""Hypothesis strategies for well-typed random tiledsl programs.

``programs()`` draws a whole kernel — tensor and scalar parameters with symbolic dims,
``param`` tile sizes, a grid of one to three coordinates, a block of 1 to 8 waves, a body of
element-wise arithmetic, casts, reductions, broadcasts, dots, loops with carried tiles,
``if``s on uniform conditions, single-element loads and LDS tiles — together with run-time
shapes (not multiples of the tiles) and a seed for its inputs. Every program is legal by
construction: types and shapes are tracked while drawing, indices that are not masked stay
in range, LDS is written (between ``sync``s) before it is read, and every element of every
``out`` tensor is written exactly once (each store covers a part of the output that only its
block, and only that iteration of its loop, owns).

``avoid`` leaves out constructs by name (see FEATURES), so that a test can draw from the part
of the language the compiler is known to handle while known bugs are being fixed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from tiledsl.interp.numerics import round_to

from .features import features_of, fits_16x16x16, is_pow2, reduce_origins
from .model import (
    FLOATS,
    RV,
    Assign,
    Binary,
    Cast,
    Dim,
    Dot,
    Expand,
    Expr,
    Fill,
    For,
    GridCoord,
    If,
    Index,
    Iota,
    Kernel,
    LdsDecl,
    LdsRead,
    LdsWrite,
    Lit,
    Load,
    Oracle,
    Param,
    Reduce,
    Size,
    Stmt,
    Store,
    Sync,
    TensorParam,
    Transpose,
    Ty,
    Unary,
    Var,
    Where,
)

TILE_SIZES = (16, 32, 64, 1, 2, 3, 24, 48, 96, 128)
# Sizes that keep the NumPy interpreters fast and a thread's registers (hence LLVM's work on
# unrolled code) modest: per wave, at most 2048 tile elements and 32768 multiply-adds a dot.
MAX_TILE_ELEMENTS = 64 * 64
MAX_DOT_VOLUME = 64 * 64 * 64
LDS_BUDGET = 48 * 1024
DATA_DTYPES = ("f32", "f16", "bf16", "i32")



NO_REDUCTION = (-1, -1)      # a cell whose 1-D expression must not come from a reduction


@dataclass
class Generated:
    """A drawn program: its kernel, load-time parameters, run-time dims and input seed."""

    kernel: Kernel
    params: dict[str, int]
    dims: dict[str, int]
    seed: int
    features: set[str]
    index_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.kernel.source()

    def arguments(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fresh input arrays, ``out`` arrays (NaN / a sentinel) and scalars, from the seed."""
        rng = np.random.default_rng(self.seed)
        arrays: dict[str, np.ndarray] = {}
        for t in self.kernel.tensors:
            shape = tuple(self.dims[d] for d in t.dims)
            if t.out:
                arrays[t.name] = np.full(shape, t.initial(), {"i32": np.int32, "f16": np.float16}.get(t.dtype, np.float32))
            elif t.dtype == "i32":
                lo, hi = self.index_ranges.get(t.name, (-6, 6))
                arrays[t.name] = rng.integers(lo, hi + 1, size=shape).astype(np.int32)
            else:
                x = rng.standard_normal(shape).astype(np.float32)
                arrays[t.name] = x.astype(np.float16) if t.dtype == "f16" else round_to(x, t.dtype)
        scalars: dict[str, Any] = {}
        for name, dtype in self.kernel.scalars:
            scalars[name] = int(rng.integers(-3, 6)) if dtype == "i32" else \
                float(round_to(np.float32([rng.standard_normal()]), dtype)[0])
        return arrays, scalars

    @property
    def outputs(self) -> dict[str, str]:
        """Out tensor name → dtype."""
        return {t.name: t.dtype for t in self.kernel.tensors if t.out}

    def oracle(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any],
               min_reduce_as_sum: bool = False) -> dict[str, RV]:
        """The oracle's outputs for these arguments (raises GeneratorBug for an ill-formed program)."""
        inputs = {t.name: arrays[t.name] for t in self.kernel.tensors if not t.out}
        return Oracle(self.kernel, inputs, scalars, self.dims, min_reduce_as_sum).run()


class Scope:
    """What the program has defined at one nesting level."""

    def __init__(self, kind: str) -> None:
        self.kind = kind                     # top | for | if
        self.vars: dict[str, Ty] = {}        # register values assigned here
        self.ready: set[str] = set()         # LDS tiles written (hence readable) here


@dataclass
class Output:
    tensor: TensorParam
    indices: list[Index]
    ty: Ty
    loop: str | None = None                  # the loop dim whose walk stores it


class Gen:
    """Draws one program; every choice goes through hypothesis (``draw``)."""

    def __init__(self, draw: Callable[..., Any], avoid: frozenset[str]) -> None:
        self.draw = draw
        self.avoid = avoid
        self.tensors: list[TensorParam] = []
        self.scalars: list[tuple[str, str]] = []
        self.params: list[tuple[str, int]] = []
        self.consts: list[tuple[str, int]] = []
        self.overrides: dict[str, int] = {}
        self.dims: dict[str, int] = {}
        self.index_ranges: dict[str, tuple[int, int]] = {}
        self.scopes: list[Scope] = [Scope("top")]
        self.lds: dict[str, Ty] = {}
        self.lds_bytes = 0
        self.pending: list[Stmt] = []              # statements the current one needs first
        self.origins: dict[str, set[tuple[int, int]]] = {}   # var -> reductions it comes from
        self.cells: list[list[tuple[int, int] | None]] = []   # the reduction a 1-D expression keeps to
        self.ranks: list[int] = []
        self.pipeline_stages = 1
        self.pipelined: set[str] = set()
        self.loops: list[tuple[str, str | None, Size | None]] = []    # (var, dim walked, step)
        self.names = itertools.count()
        self.depth_budget = 0

    # ------------------------------------------------------------ choices
    def pick(self, seq: Any) -> Any:
        return self.draw(st.sampled_from(list(seq)))

    def chance(self, p: float) -> bool:
        """True with probability ``p``; shrinks to False."""
        return self.draw(st.integers(0, 99)) >= round(100 * (1 - p))

    def int_in(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def allowed(self, feature: str) -> bool:
        return feature not in self.avoid

    def tile_sizes(self, limit: int = 128) -> list[int]:
        sizes = [s for s in TILE_SIZES if s <= limit]
        if not self.allowed("width1"):
            sizes = [s for s in sizes if s > 1]
        if not self.allowed("reduce_npow2"):
            # A reduction may take any axis: keep every tile dim a power of two.
            sizes = [s for s in sizes if is_pow2(s)]
        return sizes or [2]

    # ------------------------------------------------------------ the kernel
    def kernel(self) -> Generated:
        self.waves = self.pick([4, 1, 2, 8])
        self.max_tile = min(MAX_TILE_ELEMENTS, 2048 * self.waves)
        self.max_dot = min(MAX_DOT_VOLUME, 32768 * self.waves)
        self.setup_grid()
        self.outputs: list[Output] = []
        for _ in range(self.int_in(1, 3)):
            self.outputs.append(self.make_output())
        body: list[Stmt] = []
        self.decls: list[Stmt] = []
        for _ in range(self.int_in(1, 5)):
            self.section(body)
        for out in self.outputs:
            if out.loop is None:
                self.store_section(body, out)
        self.ensure_dims()
        body = self.decls + body
        kernel = Kernel("gen", self.tensors, self.scalars, self.params, self.consts, self.grid, self.waves, body)
        return Generated(kernel, dict(self.overrides), dict(self.dims), self.int_in(0, 2**16), features_of(kernel),
                         dict(self.index_ranges))

    def tile_param(self, name: str, limit: int = 128) -> Size:
        value = self.pick(self.tile_sizes(limit))
        declared = value
        if self.chance(0.15):
            declared = self.pick(TILE_SIZES)
            self.overrides[name] = value
        self.params.append((name, declared))
        return Size(value, name)

    def setup_grid(self) -> None:
        self.bm = self.tile_param("BM")
        self.grid = [GridCoord("i", "M", self.bm)]
        self.dims["M"] = self.run_dim(self.bm.value, self.int_in(1, 3))
        self.bn: Size | None = None
        if self.chance(0.5):
            self.bn = self.tile_param("BN", max(1, self.max_tile // self.bm.value))
            self.grid.append(GridCoord("j", "N", self.bn))
            self.dims["N"] = self.run_dim(self.bn.value, self.int_in(1, 2))
        if self.chance(0.2):
            self.grid.append(GridCoord("z", "Z", None))
            self.dims["Z"] = self.int_in(1, 2)
        self.bk = self.tile_param("BK", max(1, self.max_tile // self.bm.value))
        self.d: Size | None = None
        if self.chance(0.3):
            d = self.pick(self.tile_sizes(max(1, self.max_tile // self.bm.value)))
            if self.chance(0.5):
                self.consts.append(("D", d))
            else:
                self.consts.append(("D", self.pick(TILE_SIZES)))
                self.overrides["D"] = d
            self.d = Size(d, "D")
            self.dims["D"] = d
        for c in self.grid:
            self.scopes[0].vars[c.name] = Ty("i32")

    def run_dim(self, tile: int, blocks: int) -> int:
        """A run-time size of ``blocks`` tiles, the last one partial where the tile allows."""
        return (blocks - 1) * tile + self.int_in(1, tile)

    def axis_sizes(self) -> list[Size]:
        """Sizes a tile axis may have: the tile params (and D), or a literal."""
        sizes = [self.bm, self.bk] + ([self.bn] if self.bn else []) + ([self.d] if self.d else [])
        return sizes

    def literal_size(self) -> Size:
        v = self.pick(self.tile_sizes(32))
        return Size(v, str(v))

    def shape_2d(self) -> tuple[Size, Size]:
        for _ in range(4):
            a = self.pick(self.axis_sizes() + [self.literal_size()])
            b = self.pick(self.axis_sizes() + [self.literal_size()])
            if a.value * b.value <= self.max_tile:
                return a, b
        return self.bm, Size(1, "1") if self.allowed("width1") else Size(2, "2")

    # ------------------------------------------------------------ tensors and dims
    def tensor(self, dtype: str, dims: list[str], out: bool = False) -> TensorParam:
        if not out:
            for t in self.tensors:
                if not t.out and t.dtype == dtype and t.dims == dims and t.name not in self.index_ranges \
                        and self.chance(0.6):
                    return t
        t = TensorParam(self.fresh("Y" if out else "X"), dtype, dims, out)
        self.tensors.append(t)
        return t

    def new_dim(self, prefix: str, size: int) -> str:
        name = self.fresh(prefix)
        self.dims[name] = size
        return name

    def grid_dim(self, c: GridCoord) -> str:
        """A dim whose size is the number of blocks along ``c`` (for per-block outputs)."""
        if c.tile is None:
            return c.dim
        name = f"G{c.name.upper()}"
        self.dims[name] = c.extent(self.dims)
        return name

    def run_dims(self) -> list[str]:
        """Run-time dims an expression may read (the per-block G dims and const D aside)."""
        return [d for d in self.dims if not d.startswith("G") and d != "D"]

    def ensure_dims(self) -> None:
        """A run-time dim used in an expression must be the dim of some tensor."""
        used = {d for t in self.tensors for d in t.dims}
        for name in sorted(self.dims):
            if name not in used and name != "D" and not name.startswith("G"):
                self.tensors.append(TensorParam(self.fresh("U"), "f32", [name]))

    # ------------------------------------------------------------ outputs
    def make_output(self) -> Output:
        """An out tensor and the part of it each block stores: a tile along the grid
        coordinates it slices (a scalar index along the others), plus maybe a dim walked by a
        loop or a narrow dim that one tile covers."""
        dtype = self.pick(["f32", "f16", "bf16", "i32"])
        dims: list[str] = []
        indices: list[Index] = []
        shape: list[Size] = []
        for c in self.grid:
            keep_i = c.name == "i" and not self.allowed("scalar_store")
            sliced = c.tile is not None and len(shape) < 2 and (keep_i or self.chance(0.85 if c.name == "i" else 0.7))
            if sliced:
                dims.append(c.dim)
                indices.append(Index(Binary("*", Var(c.name, Ty("i32")), Param(c.tile.src, c.tile.value),
                                            Ty("i32")), c.tile))
                shape.append(c.tile)
            else:
                dims.append(self.grid_dim(c))
                indices.append(Index(Var(c.name, Ty("i32"))))
        loop = None
        if len(shape) < 2 and self.chance(0.4):
            if self.chance(0.5):
                # A dim walked by a loop that stores one step of it an iteration.
                loop = self.new_dim("K", self.int_in(1, 3 * self.bk.value))
                dims.append(loop)
                indices.append(Index(Var(f"k_{loop}", Ty("i32")), self.bk))
                shape.append(self.bk)
            else:
                # A narrow dim: one tile covers it (the tail of the tile is dropped).
                ext = self.pick(self.axis_sizes())
                if ext.value * math.prod(s.value for s in shape) <= self.max_tile:
                    dims.append(self.new_dim("P", self.int_in(1, ext.value)))
                    indices.append(Index(Lit(0, Ty("i32")), ext))
                    shape.append(ext)
        t = self.tensor(dtype, dims, out=True)
        if self.allowed("atomic") and self.chance(0.2):
            # Each element gets one atomic onto the kind's identity: what a store would leave.
            # max/min on i32 only (on floats maxNum ignores a NaN the oracle would keep).
            t.atomic = self.pick(["add", "max", "min"] if dtype == "i32" else ["add"])
        return Output(t, indices, Ty(dtype, tuple(s.value for s in shape)), loop)

    def store_section(self, body: list[Stmt], out: Output) -> None:
        if self.chance(0.15):
            # Both branches of a uniform if store the same part.
            cond = self.condition()
            branches = []
            for _ in range(2):
                self.scopes.append(Scope("if"))
                branch: list[Stmt] = []
                self.store(branch, out, 2)
                self.scopes.pop()
                branches.append(branch)
            self.put(body, If(cond, *branches))
            return
        self.store(body, out, 3)

    def store(self, body: list[Stmt], out: Output, depth: int) -> None:
        self.put(body, Store(out.tensor.name, out.indices, self.expr(out.ty, depth), out.tensor.atomic))

    def put(self, body: list[Stmt], stmt: Stmt) -> None:
        """Append ``stmt`` after what its expressions need first (LDS copies of dot operands)."""
        body.extend(self.pending)
        self.pending.clear()
        body.append(stmt)

    # ------------------------------------------------------------ scopes
    def env(self) -> dict[str, Ty]:
        out: dict[str, Ty] = {}
        for s in self.scopes:
            out.update(s.vars)
        return out

    def ready(self) -> set[str]:
        return set().union(*(s.ready for s in self.scopes))

    def assignable(self) -> list[tuple[str, Ty]]:
        """Variables a statement may reassign (not grid coordinates, loop variables or scalars)."""
        fixed = {c.name for c in self.grid} | {v for v, _, _ in self.loops} | {n for n, _ in self.scalars}
        return [(n, t) for n, t in self.env().items() if n not in fixed and not n.startswith("lo")]

    def define(self, name: str, ty: Ty) -> None:
        for s in self.scopes:
            if name in s.vars:
                return
        self.scopes[-1].vars[name] = ty

    # ------------------------------------------------------------ statements
    def section(self, body: list[Stmt]) -> None:
        kind = self.pick(["assign", "assign", "loop", "lds", "if", "scalar_load"])
        if kind == "loop" or (kind == "assign" and any(o.loop for o in self.outputs) and self.chance(0.5)):
            self.loop(body)
        elif kind == "lds" and self.allowed("lds"):
            self.lds_section(body)
        elif kind == "if":
            self.if_stmt(body)
        elif kind == "scalar_load" and self.allowed("scalar_load"):
            self.scalar_load(body)
        else:
            self.assign(body)
        for out in self.outputs:
            if out.loop is not None and not any(isinstance(s, For) and s.var == f"k_{out.loop}" for s in body):
                self.loop(body, store=out)

    def assign(self, body: list[Stmt], ty: Ty | None = None) -> None:
        old = self.assignable()
        if old and ty is None and self.chance(0.35):
            name, ty = self.pick(old)
        else:
            name = self.fresh("v")
            ty = ty or self.value_type()
        value = self.expr(ty, self.int_in(1, 3), prefer=name if old and (name, ty) in old else None)
        self.put(body, Assign(name, value))
        self.define(name, ty)
        self.origins.setdefault(name, set()).update(reduce_origins(value, self.origins))

    def value_type(self) -> Ty:
        dtype = self.pick(["f32", "f16", "i32", "f32", "bf16"])
        rank = self.pick([2, 1, 0])
        if rank == 2:
            a, b = self.shape_2d()
            shape: tuple[int, ...] = (a.value, b.value)
        elif rank == 1:
            shape = (self.pick(self.axis_sizes()).value,)
        else:
            shape = ()
        return Ty(dtype, shape)

    def scalar_load(self, body: list[Stmt]) -> None:
        """``lo = Off[i]``: one element of an index tensor (values in 0..2*BK)."""
        c = self.pick(self.grid)
        if self.chance(0.7):
            t = TensorParam(self.fresh("Off"), "i32", [self.grid_dim(c)])
            self.index_ranges[t.name] = (0, 2 * self.bk.value)
            ty = Ty("i32")
        else:
            t = TensorParam(self.fresh("S"), self.pick(FLOATS), [self.grid_dim(c)])
            ty = Ty(t.dtype)
        self.tensors.append(t)
        name = self.fresh("lo")
        body.append(Assign(name, Load(t.name, [Index(Var(c.name, Ty("i32")))], ty)))
        self.define(name, ty)

    def lds_room(self, ty: Ty, buffers: int = 1) -> bool:
        """Whether a tile of ``ty`` (times ``buffers``) keeps the kernel's LDS under LDS_BUDGET,
        so that most programs fit every target (a few past it test the located error)."""
        need = buffers * math.prod(ty.shape) * (2 if ty.dtype in ("f16", "bf16") else 4)
        if self.lds_bytes + need > LDS_BUDGET:
            return False
        self.lds_bytes += need
        return True

    def lds_section(self, body: list[Stmt]) -> None:
        a, b = self.shape_2d()
        dtype = self.pick(DATA_DTYPES)
        ty = Ty(dtype, (a.value, b.value))
        if not self.lds_room(ty):
            self.assign(body)
            return
        name = self.fresh("t")
        self.decls.append(LdsDecl(name, ty, (a, b)))
        self.lds[name] = ty
        self.lds_write(body, name, copy=self.chance(0.6))
        if self.chance(0.5):
            self.assign(body, ty=Ty(self.pick(["f32", dtype]), ty.shape))

    def lds_write(self, body: list[Stmt], name: str, copy: bool) -> None:
        ty = self.lds[name]
        if copy:
            value: Expr = self.load(ty, plain=True)
        else:
            hidden = self.lds.pop(name)           # its own value is not read in its write
            value = self.expr(ty, 2)
            self.lds[name] = hidden
        self.put(body, Sync())
        body.extend([LdsWrite(name, value), Sync()])
        self.scopes[-1].ready.add(name)

    def condition(self) -> Expr:
        """A uniform scalar condition (i1, or an i32 tested against 0)."""
        kind = self.pick(["int", "int", "float", "logic", "raw"])
        if kind == "raw":
            return self.scalar(Ty("i32"), 1)
        if kind == "logic":
            a, b = self.condition(), self.condition()
            a, b = (self.as_bool(a), self.as_bool(b))
            return Binary(self.pick(["and", "or"]), a, b, Ty("i1"))
        ty = Ty("i32") if kind == "int" else Ty(self.pick(FLOATS))
        a = self.scalar(ty, 1)
        b: Expr = self.scalar(ty, 1) if self.chance(0.3) else self.literal(ty)
        return Binary(self.pick(["<", "<=", ">", ">=", "==", "!="]), a, b, Ty("i1"))

    @staticmethod
    def as_bool(c: Expr) -> Expr:
        return c if c.ty.dtype == "i1" else Binary("!=", c, Lit(0, Ty("i32")), Ty("i1"))

    def if_stmt(self, body: list[Stmt]) -> None:
        cond = self.condition()
        branches = []
        for _ in range(2 if self.chance(0.6) else 1):
            self.scopes.append(Scope("if"))
            inner: list[Stmt] = []
            for _ in range(self.int_in(1, 2)):
                self.assign(inner)
            self.scopes.pop()
            branches.append(inner)
        self.put(body, If(cond, branches[0], branches[1] if len(branches) > 1 else []))

    def loop(self, body: list[Stmt], store: Output | None = None) -> None:
        if len(self.loops) >= 2:
            self.assign(body)
            return
        walk = store is not None or self.chance(0.6)
        pipeline = 1
        if store is not None:
            dim: str | None = store.loop
            var = f"k_{dim}"
            lo: Expr = Lit(0, Ty("i32"))
            hi: Expr = Dim(dim)
            step: Expr = Param(self.bk.src, self.bk.value)
        elif walk:
            dim = self.pick([d for d in self.dims if d.startswith("K")] + [None])
            if dim is None:
                dim = self.new_dim("K", self.int_in(1, 3 * self.bk.value))
            var = self.fresh("k")
            lo, hi, step = Lit(0, Ty("i32")), Dim(dim), Param(self.bk.src, self.bk.value)
            if self.chance(0.3):
                lo = self.scalar(Ty("i32"), 1, index=True)
        else:
            dim = None
            var = self.fresh("n")
            lo = Lit(0, Ty("i32"))
            hi = self.pick([Lit(self.int_in(0, 3), Ty("i32")),
                            Binary("+", Var("i", Ty("i32")), Lit(1, Ty("i32")), Ty("i32"))])
            lo_loads = [n for n, t in self.env().items() if n.startswith("lo") and t == Ty("i32")]
            if lo_loads and self.chance(0.5):
                hi = Binary("//", Var(self.pick(lo_loads), Ty("i32")), Lit(2, Ty("i32")), Ty("i32"))
            step = Lit(self.pick([1, 2]), Ty("i32"))
        # Carried values: existing ones, or accumulators made for the loop.
        for _ in range(self.int_in(0 if self.assignable() else 1, 2)):
            if self.chance(0.6) or not self.assignable():
                self.assign(body)
        carried = [nt for nt in self.assignable() if self.chance(0.6)] or self.assignable()[:1]
        self.scopes.append(Scope("for"))
        self.loops.append((var, dim, self.bk if dim else None))
        self.scopes[-1].vars[var] = Ty("i32")
        inner: list[Stmt] = []
        if walk and self.allowed("pipeline") and store is None and len(self.loops) == 1 and self.chance(0.25):
            pipeline = self.pipeline_stages = self.pick([2, 3])
            self.pipelined_copies(inner, dim)
            if not self.pipelined:
                pipeline = 1
        elif walk and self.allowed("lds") and self.chance(0.3):
            self.lds_section(inner)
        for _ in range(self.int_in(0, 2)):
            self.assign(inner, ty=self.value_type())
        if self.allowed("if_in_for") and self.chance(0.3):
            self.if_stmt(inner)
        if self.chance(0.15) and len(self.loops) < 2:
            self.loop(inner)
        for name, ty in carried:
            value = self.expr(ty, self.int_in(1, 3), prefer=name)
            self.put(inner, Assign(name, value))
            self.origins.setdefault(name, set()).update(reduce_origins(value, self.origins))
        if store is not None:
            self.store(inner, store, 3)
        self.loops.pop()
        scope = self.scopes.pop()
        del scope
        for name in list(self.pipelined):
            self.lds.pop(name, None)        # a pipelined tile is not read after its loop
        self.pipelined.clear()
        self.put(body, For(var, lo, hi, step, inner, pipeline))

    def pipelined_copies(self, inner: list[Stmt], dim: str | None) -> None:
        """The copies a pipelined loop issues ahead: fresh tiles, indexed by the loop variable."""
        var = self.loops[-1][0]
        stages = self.pipeline_stages
        for _ in range(self.int_in(1, 2)):
            dtype = self.pick(DATA_DTYPES)
            a = self.pick([self.bm, self.bk])
            b = self.bk
            ty = Ty(dtype, (a.value, b.value))
            if math.prod(ty.shape) > self.max_tile or not self.lds_room(ty, stages):
                continue
            name = self.fresh("p")
            self.lds[name] = ty
            self.pipelined.add(name)
            starts = [self.tile_start(self.bm), Var(var, Ty("i32"))] if a is self.bm else \
                [Var(var, Ty("i32")), Lit(0, Ty("i32"))]
            t = self.tensor(dtype, ["M" if a is self.bm else dim or "M", dim or "M"])
            self.decls.append(LdsDecl(name, ty, (a, b)))
            inner.extend([Sync(), LdsWrite(name, Load(t.name, [Index(s, z) for s, z in zip(starts, (a, b))], ty)),
                          Sync()])
            self.scopes[-1].ready.add(name)

    def tile_start(self, size: Size) -> Expr:
        return Binary("*", Var("i", Ty("i32")), Param(size.src, size.value), Ty("i32")) \
            if size is self.bm else Lit(0, Ty("i32"))

    # ------------------------------------------------------------ expressions
    def expr(self, ty: Ty, depth: int, prefer: str | None = None, origin: tuple[int, int] | None = None) -> Expr:
        """A run-time (non-static) expression of type ``ty``. A 1-D expression (not inside
        another) opens a cell: with reduce_bcast_width / reduce_mix avoided, its 1-D parts then
        all come from one kind of reduction (``origin``, or the first one drawn), or all from
        none (NO_REDUCTION: loads, fills, iota)."""
        if ty.rank == 0:
            return self.scalar(ty, depth)
        opens = ty.rank == 1 and (not self.ranks or self.ranks[-1] != 1 or origin is not None)
        self.ranks.append(ty.rank)
        if opens:
            if origin is None and prefer is not None:
                mine = self.origins.get(prefer, set())
                origin = next(iter(mine)) if len(mine) == 1 else NO_REDUCTION
            self.cells.append([origin])
        try:
            return self.any_expr(ty, depth, prefer)
        finally:
            self.ranks.pop()
            if opens:
                self.cells.pop()

    @property
    def reductions_kept_apart(self) -> bool:
        return not (self.allowed("reduce_bcast_width") and self.allowed("reduce_mix"))

    def cell(self, ty: Ty) -> list[Any] | None:
        """The cell a 1-D expression keeps to (None where reductions need not be kept apart)."""
        if ty.rank != 1 or not self.reductions_kept_apart or not self.cells:
            return None
        return self.cells[-1]

    def fits_cell(self, name: str, ty: Ty) -> bool:
        """Whether a 1-D variable's reductions (or none) agree with the current cell."""
        cell = self.cell(ty)
        if cell is None:
            return True
        mine = self.origins.get(name, set())
        if len(mine) > 1:
            return False
        return cell[0] in (None, next(iter(mine)) if mine else NO_REDUCTION)

    def var(self, name: str, ty: Ty) -> Var:
        cell = self.cell(ty)
        if cell is not None and cell[0] is None:
            mine = self.origins.get(name, set())
            cell[0] = next(iter(mine)) if len(mine) == 1 else NO_REDUCTION
        return Var(name, ty)

    def plain(self, ty: Ty, make: Callable[[], Expr | None]) -> Expr | None:
        """A 1-D leaf from no reduction (a load, a fill, iota): only where the cell allows one."""
        cell = self.cell(ty)
        if cell is not None:
            if cell[0] not in (None, NO_REDUCTION):
                return None
            cell[0] = NO_REDUCTION
        return make()

    def any_expr(self, ty: Ty, depth: int, prefer: str | None) -> Expr:
        options: list[tuple[int, Callable[[], Expr | None]]] = []
        env = self.env()
        same = [n for n, t in env.items() if t == ty and self.fits_cell(n, ty)]
        if prefer is not None:
            options.append((6, lambda: self.var(prefer, ty)))
        if same:
            options.append((5, lambda: self.var(self.pick(same), ty)))
        lds_same = [n for n in self.ready() if self.lds.get(n) == ty]
        if lds_same:
            options.append((4, lambda: LdsRead(self.pick(lds_same), ty)))
        if ty.dtype != "i1":
            options.append((3, lambda: self.plain(ty, lambda: self.load(ty))))
            options.append((1, lambda: self.plain(ty, lambda: self.fill(ty))))
        if ty.dtype == "i32" and ty.rank == 1:
            options.append((1, lambda: self.plain(ty, lambda: self.iota(ty))))
        cell = self.cell(ty)
        if depth <= 0 and cell is not None and cell[0] not in (None, NO_REDUCTION):
            options.append((4, lambda: self.reduce(ty, depth)))     # the leaf such a cell can always have
        if depth > 0:
            if ty.dtype in FLOATS:
                options.append((3, lambda: self.unary(ty, depth)))
            options.append((6, lambda: self.binary(ty, depth)))
            options.append((2, lambda: self.where(ty, depth)))
            options.append((2, lambda: self.cast(ty, depth)))
            if ty.rank == 1:
                options.append((4, lambda: self.reduce(ty, depth)))
            if ty.rank == 2:
                options.append((1, lambda: self.transpose(ty, depth)))
                if ty.dtype == "f32" and self.allowed("dot"):
                    options.append((6, lambda: self.dot(ty, depth)))
        for _ in range(20):
            weights = [w for w, _ in options]
            i = self.draw(st.integers(0, sum(weights) - 1))
            for w, fn in options:
                if i < w:
                    break
                i -= w
            e = fn()
            if e is not None:
                return e
        return self.fill(ty)        # a cell nothing else fits: the program may end up rejected

    def literal(self, ty: Ty) -> Lit:
        if ty.dtype == "i32":
            return Lit(self.pick([1, 2, 0, 3, -1, 7]), Ty("i32"))
        return Lit(self.pick([1.0, 0.5, 2.0, 0.0, -1.5, 0.125, 3.0]), Ty(ty.dtype))

    def scalar(self, ty: Ty, depth: int, index: bool = False) -> Expr:
        """A run-time scalar of dtype ``ty.dtype``; ``index`` keeps it a small exact integer."""
        env = self.env()
        same = [n for n, t in env.items() if t == ty and (not index or n in self.index_names())]
        options: list[Callable[[], Expr | None]] = []
        if same:
            options += [lambda: Var(self.pick(same), ty)] * 3
        if ty.dtype == "i32":
            options.append(lambda: Var(self.pick(self.grid).name, ty))
            if self.loops:
                options.append(lambda: Var(self.pick(self.loops)[0], ty))
            if not index:
                options.append(lambda: Dim(self.pick(self.run_dims())))
                options.append(lambda: Var(self.scalar_param("i32"), ty))
        else:
            options.append(lambda: Var(self.scalar_param(ty.dtype), ty))
        if not index and depth > 0:
            options.append(lambda: self.scalar_binary(ty, depth))
            if ty.dtype != "i1":
                options.append(lambda: self.scalar_cast(ty, depth))
            if self.allowed("full_reduce"):
                options.append(lambda: self.reduce(ty, depth))
        if index and ty.dtype == "i32":
            options.append(lambda: Binary("+", Var(self.pick(self.grid).name, ty), Lit(1, ty), ty))
        while True:
            e = self.pick(range(len(options)))
            r = options[e]()
            if r is not None:
                return r

    def index_names(self) -> set[str]:
        return {n for n in self.env() if n.startswith("lo")} | {c.name for c in self.grid} | \
            {v for v, _, _ in self.loops}

    def scalar_param(self, dtype: str) -> str:
        for n, d in self.scalars:
            if d == dtype and self.chance(0.7):
                return n
        name = self.fresh("s" if dtype != "i32" else "n")
        self.scalars.append((name, dtype))
        self.scopes[0].vars[name] = Ty(dtype)
        return name

    def scalar_binary(self, ty: Ty, depth: int) -> Expr | None:
        if ty.dtype == "i32":
            op = self.pick(["+", "-", "*", "//", "%", "max", "min"])
        elif ty.dtype == "i1":
            return None
        else:
            op = self.pick(["+", "-", "*", "/", "max", "min"])
        a = self.scalar(ty, depth - 1)
        if op in ("//", "%"):
            return Binary(op, a, Lit(self.pick([2, 3, 5]), ty), ty)
        if op == "/":
            return Binary(op, a, self.safe_denominator(self.scalar(ty, depth - 1)), ty)
        b: Expr = self.literal(ty) if self.chance(0.5) else self.scalar(ty, depth - 1)
        return Binary(op, a, b, ty) if self.chance(0.5) else Binary(op, b, a, ty)

    def scalar_cast(self, ty: Ty, depth: int) -> Expr:
        src = self.pick([d for d in DATA_DTYPES if d != ty.dtype])
        return Cast(self.scalar(Ty(src), depth - 1), ty)

    def safe_denominator(self, e: Expr) -> Expr:
        """|e| + 1: a division the oracle can bound (raw divisions are drawn rarely)."""
        if self.chance(0.1):
            return e
        return Binary("+", Unary("abs", e, e.ty), Lit(1.0, e.ty), e.ty)

    def load(self, ty: Ty, plain: bool = False) -> Expr | None:
        """A slice of an input tensor with shape ``ty.shape``; rows and columns come from the
        grid, a loop, a const dim or anywhere (masked)."""
        if ty.dtype not in DATA_DTYPES:
            return None
        dims: list[str] = []
        indices: list[Index] = []
        z = next((c for c in self.grid if c.name == "z"), None)
        if z is not None and self.chance(0.5):
            dims.append("Z")
            indices.append(Index(Var("z", Ty("i32"))))
        shape = list(ty.shape)
        if not indices and shape and self.allowed("gather") and self.chance(0.08):
            dims.append(self.pick([d for d in self.dims if not d.startswith(("G", "D", "Z"))]))
            indices.append(Index(self.index_tile(shape.pop(0), self.dims[dims[0]]), gather=True))
        for n in shape:
            dim, index = self.load_axis(n)
            dims.append(dim)
            indices.append(index)
        pad = None
        if not plain and ty.dtype != "i32" and self.chance(0.1):
            pad = self.pick([-math.inf, 1.0, math.inf])
        t = self.tensor(ty.dtype, dims)
        return Load(t.name, indices, ty, pad)

    def index_tile(self, n: int, rows: int) -> Expr:
        """``n`` indices in 0..rows-1: a slice of a fresh i32 index tensor, padded with 0."""
        t = TensorParam(self.fresh("Idx"), "i32", [self.new_dim("Q", self.int_in(1, 3 * n))])
        self.index_ranges[t.name] = (0, rows - 1)
        self.tensors.append(t)
        start = self.scalar(Ty("i32"), 1, index=True) if self.chance(0.7) else Lit(self.int_in(0, 3), Ty("i32"))
        return Load(t.name, [Index(start, self.size_of(n))], Ty("i32", (n,)), 0)

    def load_axis(self, n: int) -> tuple[str, Index]:
        choices = []
        for c in self.grid:
            if c.tile is not None and c.tile.value == n:
                choices.append(("grid", c))
        for var, dim, step in self.loops:
            if dim is not None and step is not None and step.value == n:
                choices.append(("loop", (var, dim, step)))
        if self.d is not None and self.d.value == n:
            choices.append(("const", None))
        choices.append(("free", None))
        kind, what = self.pick(choices)
        size = self.size_of(n)
        if kind == "grid":
            c = what
            return c.dim, Index(Binary("*", Var(c.name, Ty("i32")), Param(c.tile.src, c.tile.value), Ty("i32")),
                                c.tile, self.until(c.dim))
        if kind == "loop":
            var, dim, step = what
            return dim, Index(Var(var, Ty("i32")), step, self.until(dim))
        if kind == "const":
            return "D", Index(None)
        dim = self.pick([d for d in self.dims if not d.startswith(("G", "D", "Z"))])
        start = self.scalar(Ty("i32"), 1, index=True) if self.chance(0.7) else Lit(self.int_in(0, 3), Ty("i32"))
        if self.chance(0.1):
            start = Binary("-", start, Lit(1, Ty("i32")), Ty("i32"))
        return dim, Index(start, size, self.until(dim))

    def until(self, dim: str) -> Expr | None:
        """Maybe a run-time bound that cuts a load's slice (exact: a dim less a little, a grid or
        loop coordinate plus a little; may lie before the slice, inside it or past the dim)."""
        if not self.allowed("until") or not self.chance(0.08):
            return None
        i32 = Ty("i32")
        if dim in self.run_dims() and self.chance(0.5):
            return Binary("-", Dim(dim), Lit(self.int_in(0, 5), i32), i32)
        return Binary("+", self.scalar(i32, 1, index=True), Lit(self.int_in(0, 40), i32), i32)

    def size_of(self, n: int) -> Size:
        for s in self.axis_sizes():
            if s.value == n and self.chance(0.8):
                return s
        return Size(n, str(n))

    def fill(self, ty: Ty) -> Expr:
        sizes = tuple(self.size_of(n) for n in ty.shape)
        if self.chance(0.3):
            value: Expr = self.scalar(Ty(ty.dtype), 1)
        else:
            value = self.literal(ty)
            if ty.dtype != "i32" and self.chance(0.15):
                value = Lit(-math.inf, Ty(ty.dtype))
        return Fill(value, ty, sizes)

    def iota(self, ty: Ty) -> Expr:
        it = Iota(self.size_of(ty.shape[0]), ty)
        if self.chance(0.5):
            return Binary("+", self.scalar(Ty("i32"), 1, index=True), it, ty)
        return it

    def unary(self, ty: Ty, depth: int) -> Expr:
        fn = self.pick(["exp", "abs", "neg", "sqrt", "exp2", "rsqrt", "log2"])
        x = self.expr(ty, depth - 1)
        if fn in ("sqrt", "rsqrt", "log2") and self.chance(0.9):
            x = Unary("abs", x, ty)
            if fn != "sqrt":
                x = Binary("+", x, Lit(1.0, ty), ty)
        if fn in ("exp", "exp2") and self.chance(0.7):
            x = Unary("neg", Unary("abs", x, ty), ty)       # keeps f16 from overflowing
        return Unary(fn, x, ty)

    def operand(self, ty: Ty, depth: int) -> Expr:
        """An operand that broadcasts to ``ty``: the same shape, a scalar, a literal, an
        expanded 1-D tile, or a one-row / one-column tile."""
        kinds = ["same", "same", "same", "lit", "scalar"]
        if ty.rank == 2:
            kinds += ["expand", "expand"]
            if self.allowed("row_broadcast") and (self.allowed("width1")):
                kinds.append("thin")
        kind = self.pick(kinds)
        if kind == "lit":
            return self.literal(ty)
        if kind == "scalar":
            return self.scalar(Ty(ty.dtype), depth - 1)
        if kind == "expand":
            axis = self.pick([1, 0])
            x = self.expr(Ty(ty.dtype, (ty.shape[0] if axis == 1 else ty.shape[1],)), depth - 1,
                          origin=(axis, ty.shape[axis]) if self.reductions_kept_apart else None)
            return Expand(x, axis, Ty(ty.dtype, (ty.shape[0], 1) if axis == 1 else (1, ty.shape[1])))
        if kind == "thin":
            shape = (1, ty.shape[1]) if self.chance(0.5) else (ty.shape[0], 1)
            if ty.shape == shape:
                return self.expr(ty, depth - 1)
            return self.expr(Ty(ty.dtype, shape), depth - 1)
        return self.expr(ty, depth - 1)

    def binary(self, ty: Ty, depth: int) -> Expr:
        ops = ["+", "-", "*", "max", "min"]
        ops += ["/"] if ty.dtype in FLOATS else ["//", "%"]
        op = self.pick(ops)
        a = self.expr(ty, depth - 1)
        if op == "/":
            return Binary(op, a, self.safe_denominator(self.operand(ty, depth)), ty)
        if op in ("//", "%"):
            return Binary(op, a, Lit(self.pick([2, 3, 4, 7]), ty), ty)
        b = self.operand(ty, depth)
        return Binary(op, a, b, ty) if self.chance(0.5) else Binary(op, b, a, ty)

    def where(self, ty: Ty, depth: int) -> Expr:
        cty = Ty(self.pick(["f32", "i32", ty.dtype if ty.dtype != "i1" else "f32"]), ty.shape)
        if ty.rank == 2 and self.chance(0.3):
            # A mask from iota, as kernels write them: (k + iota(BK))[_, :] < K.
            axis = self.pick([0, 1])
            n = ty.shape[1] if axis == 0 else ty.shape[0]
            idx = self.iota(Ty("i32", (n,)))
            ex = Expand(idx, axis, Ty("i32", (1, n) if axis == 0 else (n, 1)))
            bound = Dim(self.pick(self.run_dims()))
            c: Expr = Binary(self.pick(["<", ">=", "<="]), ex, bound, Ty("i1", ex.ty.shape))
        else:
            a = self.expr(cty, depth - 1)
            b = self.operand(cty, depth)
            c = Binary(self.pick(["<", "<=", ">", ">=", "==", "!="]), a, b, Ty("i1", ty.shape))
            if self.chance(0.15):
                c = Unary("not", c, c.ty)
        x = self.expr(ty, depth - 1)
        y = self.operand(ty, depth) if self.chance(0.5) else self.literal(ty)
        if isinstance(y, Lit) and ty.dtype != "i32" and self.chance(0.2):
            y = Lit(-math.inf, Ty(ty.dtype))
        return Where(c, x, y, ty)

    def cast(self, ty: Ty, depth: int) -> Expr:
        src = self.pick([d for d in DATA_DTYPES if d != ty.dtype])
        return Cast(self.expr(Ty(src, ty.shape), depth - 1), ty)

    def reduce(self, ty: Ty, depth: int) -> Expr | None:
        if ty.dtype == "i1" or ty.rank > 1:
            return None
        if math.prod(ty.shape) == 1 and not self.allowed("full_reduce"):
            return None
        kind = self.pick(["sum", "max", "min"])
        if kind == "min" and not self.allowed("min_reduce"):
            kind = "max"
        n = self.pick(self.axis_sizes()).value
        if ty.rank and n * ty.shape[0] > self.max_tile:
            n = 2
        axis = self.pick([1, 0])
        kept = self.cell(ty)
        if kept is not None:
            if kept[0] == NO_REDUCTION:
                return None
            if kept[0] is not None:
                axis, n = kept[0]
            if n * ty.shape[0] > self.max_tile:
                return None
        if not is_pow2(n) and not self.allowed("reduce_npow2"):
            return None
        if kept is not None:
            kept[0] = (axis, n)
        if ty.rank == 0:
            x = self.expr(Ty(ty.dtype, (n,)), depth - 1)
            return Reduce(kind, x, 0, kind, ty)
        shape = (ty.shape[0], n) if axis == 1 else (n, ty.shape[0])
        x = self.expr(Ty(ty.dtype, shape), depth - 1)
        named = {("sum", 1): "rowsum", ("max", 1): "rowmax", ("sum", 0): "colsum", ("max", 0): "colmax"}
        spelling = named.get((kind, axis), kind)
        if spelling != kind and self.chance(0.4):
            spelling = kind
        return Reduce(kind, x, axis, spelling, ty)

    def transpose(self, ty: Ty, depth: int) -> Expr:
        x = self.expr(Ty(ty.dtype, (ty.shape[1], ty.shape[0])), depth - 1)
        return Transpose(x, ty)

    def dot(self, ty: Ty, depth: int) -> Expr | None:
        m, n = ty.shape
        sizes = [s for s in self.tile_sizes() if m * n * s <= self.max_dot]
        if not self.allowed("small_dot"):
            sizes = [s for s in sizes if s >= 16]
            if m < 16 or n < 16:
                return None
        if not sizes:
            return None
        k = self.pick(sizes)
        dt = self.pick(["f16", "bf16", "f32"] if self.allowed("f32_dot") else ["f16", "bf16"])
        # With dot_staged avoided, a dot that no 16x16x16 instruction tiles takes its operands
        # from LDS (the FMA fallback reads them there), as gemm does.
        in_registers = self.allowed("dot_staged") or (dt != "f32" and fits_16x16x16(m, n, k, self.waves))
        a = self.dot_operand(Ty(dt, (m, k)), depth, in_registers)
        b = self.dot_operand(Ty(dt, (k, n)), depth, in_registers)
        if a is None or b is None:
            return None
        acc = self.expr(ty, depth - 1) if self.chance(0.4) else None
        return Dot(a, b, acc, ty)

    def dot_operand(self, ty: Ty, depth: int, in_registers: bool) -> Expr | None:
        transposed = self.chance(0.25)
        if not in_registers or self.chance(0.3):
            return self.lds_operand(ty, transposed)
        if transposed:
            if self.allowed("dot_transposed_reg"):
                return self.transpose(ty, depth)
            return self.lds_operand(ty, transposed)
        if self.chance(0.3) and ty.dtype != "f32":
            return Cast(self.expr(Ty("f32", ty.shape), depth - 1), ty)
        return self.expr(ty, max(depth - 2, 0))

    def lds_operand(self, ty: Ty, transposed: bool) -> Expr | None:
        """A dot operand read from a fresh LDS tile (stored transposed, if asked) that the
        statement copies in first (``pending``)."""
        m, n = ty.shape
        stored = Ty(ty.dtype, (n, m) if transposed else (m, n))
        if not self.lds_room(stored):
            return None
        name = self.fresh("t")
        self.decls.append(LdsDecl(name, stored, tuple(self.size_of(x) for x in stored.shape)))
        value = self.load(stored, plain=True)
        self.pending.extend([Sync(), LdsWrite(name, value), Sync()])
        self.lds[name] = stored
        self.scopes[-1].ready.add(name)
        read = LdsRead(name, stored)
        return Transpose(read, ty) if transposed else read


@st.composite
def programs(draw: st.DrawFn, avoid: frozenset[str] = frozenset(), relax: float = 0.0) -> Generated:
    """A well-typed random program (see the module docstring) without the ``avoid`` features;
    ``relax`` lets each of them back in with that probability (per program), so that a run
    still covers every construct without one common failure hiding the rest."""
    if relax:
        avoid = frozenset(f for f in sorted(avoid) if draw(st.integers(0, 99)) >= round(100 * relax))
    g = Gen(draw, avoid).kernel()
    # Most features are left out while drawing; the few that depend on how values flow
    # (reduce_bcast_width) are checked on the whole program.
    if g.features & avoid:
        reject()
    return g
