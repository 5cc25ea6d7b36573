"""The generated programs as data: expression and statement nodes that print as `.tdsl`
source and that a small float64 interpreter here evaluates, block by block, as an oracle.

The oracle is independent of tiledsl: it knows the language from the README, not from the
compiler. Beside each value it carries a bound on how far a faithful evaluation may stray
from it (a first-order forward error bound): reductions and dots may sum in any order,
f16/bf16 results may be rounded per operation, transcendental functions may be a few ulps
off. A comparison whose outcome the bound cannot decide makes what depends on it
*uncertain* (an infinite bound), so that every element the oracle does claim is claimed
with confidence, and an element outside its bound is a real disagreement.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from tiledsl.interp.numerics import round_to

FLOATS = ("f16", "bf16", "f32")
UNIT_ROUNDOFF = {"f16": 2.0 ** -11, "bf16": 2.0 ** -8, "f32": 2.0 ** -24, "i32": 0.0, "i1": 0.0}
LARGEST = {"f16": 65504.0, "bf16": 3.38e38, "f32": 3.4e38, "i32": 2.0 ** 31, "i1": 1.0}
INF = math.inf


class GeneratorBug(AssertionError):
    """The generator made a program the language does not define (an out-of-range index, a
    read of unwritten LDS, an output element written twice or never)."""


@dataclass(frozen=True)
class Ty:
    """The type of a register value: dtype and compile-time shape (() for a scalar)."""

    dtype: str
    shape: tuple[int, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class Size:
    """A compile-time size and how the source spells it (a literal or a param name)."""

    value: int
    src: str

    def __str__(self) -> str:
        return self.src


# ---------------------------------------------------------------- values of the oracle

@dataclass
class RV:
    """A value of the oracle: ``v`` (float64, or bool for i1) and the bound ``e`` on the error
    of a faithful evaluation (float64, same shape; inf = uncertain)."""

    v: np.ndarray
    e: np.ndarray

    @staticmethod
    def exact(v: np.ndarray | float | bool) -> RV:
        arr = np.asarray(v)
        if arr.dtype != np.bool_:
            arr = arr.astype(np.float64)
        return RV(arr, np.zeros(arr.shape))


def _rounded(v: np.ndarray, dtype: str) -> np.ndarray:
    """``v`` rounded as tiledsl stores ``dtype`` (through f32), as float64."""
    if dtype == "i1":
        return np.asarray(v, dtype=np.bool_)
    with np.errstate(all="ignore"):
        if dtype == "i32":
            return np.asarray(v, dtype=np.float64)
        arr = np.asarray(v, dtype=np.float64)
        return round_to(arr.astype(np.float32), dtype).astype(np.float64).reshape(arr.shape)


def _finish(v: np.ndarray, e: np.ndarray, dtype: str, extra_ulps: float = 1.0) -> RV:
    """Round ``v`` to ``dtype`` and widen the bound by the rounding and by overflow: near the
    dtype's largest value one evaluation may overflow where another does not."""
    r = _rounded(v, dtype)
    u = UNIT_ROUNDOFF[dtype]
    with np.errstate(all="ignore"):
        a = np.abs(r)
        e = np.where(np.isfinite(r), e + extra_ulps * u * a, e)
        e = np.where(np.isnan(e), INF, e)
        near = (a + e) >= LARGEST[dtype] * 0.5
        e = np.where(near & ~((e == 0) & ~np.isfinite(r)), INF, e)
        if dtype == "i32":
            e = np.where(np.abs(r) >= 2.0 ** 31, INF, e)
    return RV(r, e)


def _mul0(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * y where an exact 0 bound times an infinite value contributes nothing."""
    with np.errstate(all="ignore"):
        return np.where((x == 0) | (y == 0), 0.0, x * y)


# ---------------------------------------------------------------- expressions

class Expr:
    """An expression node. ``static`` nodes are compile-time in tiledsl (folded by sema)."""

    ty: Ty
    static: bool = False

    def src(self) -> str:
        raise NotImplementedError

    def children(self) -> list[Expr]:
        return []

    def walk(self) -> list[Expr]:
        out: list[Expr] = [self]
        for c in self.children():
            out.extend(c.walk())
        return out


@dataclass
class Var(Expr):
    name: str
    ty: Ty

    def src(self) -> str:
        return self.name


@dataclass
class Lit(Expr):
    """A weak literal: it takes the dtype of the tile it meets (``ty``)."""

    value: float | int
    ty: Ty
    static: bool = True

    def __post_init__(self) -> None:
        self.ty = Ty(self.ty.dtype)          # a scalar, whatever tile it meets

    def src(self) -> str:
        if self.ty.dtype == "i32":
            text = str(int(self.value))
        elif math.isinf(self.value):
            text = "inf" if self.value > 0 else "-inf"
        else:
            text = repr(float(self.value))
        return f"({text})" if text.startswith("-") else text


@dataclass
class Param(Expr):
    """A param/const name used as a compile-time i32 value."""

    name: str
    value: int
    ty: Ty = field(default_factory=lambda: Ty("i32"))
    static: bool = True

    def src(self) -> str:
        return self.name


@dataclass
class Dim(Expr):
    """A run-time dim (M, N, ...) as an i32 scalar."""

    name: str
    ty: Ty = field(default_factory=lambda: Ty("i32"))

    def src(self) -> str:
        return self.name


@dataclass
class Index:
    """One index of a global slice: ``start`` alone (a scalar index, the dim is dropped),
    ``start : +extent``, or ``:`` over a compile-time dim (``full``)."""

    start: Expr | None
    extent: Size | None = None
    until: Expr | None = None      # ``start : +extent until B``: indices from B on are masked (loads)
    gather: bool = False           # ``start`` is a 1-D i32 index tile: the rows it names (loads)

    def src(self) -> str:
        if self.start is None:
            return ":"
        if self.extent is None:
            return self.start.src()
        cut = f" until {self.until.src()}" if self.until is not None else ""
        return f"{self.start.src()} : +{self.extent}{cut}"

    def exprs(self) -> list[Expr]:
        return [e for e in (self.start, self.until) if e is not None]


@dataclass
class Load(Expr):
    tensor: str
    indices: list[Index]
    ty: Ty
    pad: float | int | None = None

    def src(self) -> str:
        text = f"{self.tensor}[{', '.join(i.src() for i in self.indices)}]"
        if self.pad is not None:
            text += f" pad {Lit(self.pad, Ty(self.ty.dtype)).src()}"
            return f"({text})"
        return text

    def children(self) -> list[Expr]:
        return [e for i in self.indices for e in i.exprs()]


@dataclass
class LdsRead(Expr):
    name: str
    ty: Ty

    def src(self) -> str:
        return self.name


@dataclass
class Fill(Expr):
    value: Expr
    ty: Ty
    sizes: tuple[Size, ...]

    def src(self) -> str:
        return f"fill({self.value.src()}, {self.ty.dtype}[{', '.join(map(str, self.sizes))}])"

    def children(self) -> list[Expr]:
        return [self.value]


@dataclass
class Iota(Expr):
    size: Size
    ty: Ty

    def src(self) -> str:
        return f"iota({self.size})"


@dataclass
class Unary(Expr):
    fn: str          # exp exp2 sqrt rsqrt log2 abs neg not
    x: Expr
    ty: Ty

    def src(self) -> str:
        if self.fn == "neg":
            return f"(-{self.x.src()})"
        if self.fn == "not":
            return f"(not {self.x.src()})"
        return f"{self.fn}({self.x.src()})"

    def children(self) -> list[Expr]:
        return [self.x]


@dataclass
class Binary(Expr):
    op: str          # + - * / // % < <= > >= == != and or max min
    a: Expr
    b: Expr
    ty: Ty

    def __post_init__(self) -> None:
        self.static = self.a.static and self.b.static

    def src(self) -> str:
        if self.op in ("max", "min"):
            return f"{self.op}({self.a.src()}, {self.b.src()})"
        return f"({self.a.src()} {self.op} {self.b.src()})"

    def children(self) -> list[Expr]:
        return [self.a, self.b]


@dataclass
class Where(Expr):
    c: Expr
    a: Expr
    b: Expr
    ty: Ty

    def src(self) -> str:
        return f"where({self.c.src()}, {self.a.src()}, {self.b.src()})"

    def children(self) -> list[Expr]:
        return [self.c, self.a, self.b]


@dataclass
class Cast(Expr):
    x: Expr
    ty: Ty

    def src(self) -> str:
        return f"{self.ty.dtype}({self.x.src()})"

    def children(self) -> list[Expr]:
        return [self.x]


@dataclass
class Reduce(Expr):
    """A reduction; ``spelling`` is rowsum/rowmax/colsum/colmax or sum/max/min (with axis=)."""

    kind: str        # sum max min
    x: Expr
    axis: int
    spelling: str
    ty: Ty

    def src(self) -> str:
        if self.spelling in ("sum", "max", "min"):
            return f"{self.spelling}({self.x.src()}, axis={self.axis})"
        return f"{self.spelling}({self.x.src()})"

    def children(self) -> list[Expr]:
        return [self.x]


@dataclass
class Dot(Expr):
    a: Expr
    b: Expr
    acc: Expr | None
    ty: Ty

    def src(self) -> str:
        acc = f", {self.acc.src()}" if self.acc is not None else ""
        return f"dot({self.a.src()}, {self.b.src()}{acc})"

    def children(self) -> list[Expr]:
        return [self.a, self.b] + ([self.acc] if self.acc is not None else [])


@dataclass
class Transpose(Expr):
    x: Expr
    ty: Ty

    def src(self) -> str:
        return f"{self.x.src()}^T" if isinstance(self.x, (Var, LdsRead)) else f"({self.x.src()})^T"

    def children(self) -> list[Expr]:
        return [self.x]


@dataclass
class Expand(Expr):
    """``x[:, _]`` (axis 1) or ``x[_, :]`` (axis 0) of a 1-D tile."""

    x: Expr
    axis: int
    ty: Ty

    def src(self) -> str:
        sub = ":, _" if self.axis == 1 else "_, :"
        inner = self.x.src()
        if not isinstance(self.x, (Var, LdsRead)) and not inner.startswith("("):
            inner = f"({inner})"
        return f"{inner}[{sub}]"

    def children(self) -> list[Expr]:
        return [self.x]


# ---------------------------------------------------------------- statements

class Stmt:
    def lines(self, indent: str) -> list[str]:
        raise NotImplementedError


@dataclass
class Assign(Stmt):
    name: str
    value: Expr

    def lines(self, indent: str) -> list[str]:
        return [f"{indent}{self.name} = {self.value.src()}"]


@dataclass
class Store(Stmt):
    tensor: str
    indices: list[Index]
    value: Expr
    atomic: str = ""         # atomic_<kind>(tensor[...], value) onto the tensor's identity instead

    def lines(self, indent: str) -> list[str]:
        target = f"{self.tensor}[{', '.join(i.src() for i in self.indices)}]"
        if self.atomic:
            return [f"{indent}atomic_{self.atomic}({target}, {self.value.src()})"]
        return [f"{indent}{target} <- {self.value.src()}"]


@dataclass
class LdsDecl(Stmt):
    name: str
    ty: Ty
    sizes: tuple[Size, ...]

    def lines(self, indent: str) -> list[str]:
        return [f"{indent}lds {self.name}: {self.ty.dtype}[{', '.join(map(str, self.sizes))}]"]


@dataclass
class LdsWrite(Stmt):
    """``t <- value``: a global slice (a copy) or a register value."""

    name: str
    value: Expr

    def lines(self, indent: str) -> list[str]:
        return [f"{indent}{self.name} <- {self.value.src()}"]


@dataclass
class Sync(Stmt):
    def lines(self, indent: str) -> list[str]:
        return [f"{indent}sync"]


@dataclass
class For(Stmt):
    var: str
    lo: Expr
    hi: Expr
    step: Expr
    body: list[Stmt]
    pipeline: int = 1

    def lines(self, indent: str) -> list[str]:
        pipe = f" pipeline {self.pipeline}" if self.pipeline > 1 else ""
        head = f"{indent}for {self.var} in {self.lo.src()} .. {self.hi.src()} step {self.step.src()}{pipe} {{"
        return [head, *block_lines(self.body, indent + "  "), f"{indent}}}"]


@dataclass
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]

    def lines(self, indent: str) -> list[str]:
        out = [f"{indent}if {self.cond.src()} {{", *block_lines(self.then, indent + "  ")]
        if self.orelse:
            out += [f"{indent}}} else {{", *block_lines(self.orelse, indent + "  ")]
        return out + [f"{indent}}}"]


def block_lines(body: list[Stmt], indent: str) -> list[str]:
    return [line for s in body for line in s.lines(indent)]


# ---------------------------------------------------------------- the kernel

@dataclass
class TensorParam:
    name: str
    dtype: str
    dims: list[str]          # dim names (run-time or const)
    out: bool = False
    atomic: str = ""         # an out tensor every store of which is atomic_<kind> onto its identity

    def src(self) -> str:
        return f"{'out ' if self.out else ''}{self.name}: {self.dtype}[{', '.join(self.dims)}]"

    def initial(self) -> float | int:
        """What an out tensor holds before the kernel: NaN (a sentinel for i32), or the identity
        of its atomic kind, so that the one atomic on each element leaves the value it brings."""
        if self.atomic == "add":
            return 0
        if self.atomic == "max":
            return -2**31 if self.dtype == "i32" else -np.inf
        if self.atomic == "min":
            return 2**31 - 1 if self.dtype == "i32" else np.inf
        return -7777 if self.dtype == "i32" else np.nan


@dataclass
class GridCoord:
    """A grid coordinate: ``cdiv(dim, tile)`` blocks, or ``dim`` blocks when ``tile`` is None."""

    name: str
    dim: str
    tile: Size | None

    def extent_src(self) -> str:
        return f"cdiv({self.dim}, {self.tile})" if self.tile is not None else self.dim

    def extent(self, dims: dict[str, int]) -> int:
        n = dims[self.dim]
        return -(-n // self.tile.value) if self.tile is not None else n


@dataclass
class Kernel:
    name: str
    tensors: list[TensorParam]
    scalars: list[tuple[str, str]]            # (name, dtype)
    params: list[tuple[str, int]]             # param NAME = value (as declared)
    consts: list[tuple[str, int]]             # const NAME = value
    grid: list[GridCoord]
    waves: int
    body: list[Stmt]

    def source(self) -> str:
        params = [t.src() for t in self.tensors] + [f"{n}: {d}" for n, d in self.scalars]
        head = [f"kernel {self.name}({', '.join(params)})"]
        if self.consts:
            head.append("  const " + ", ".join(f"{n} = {v}" for n, v in self.consts))
        if self.params:
            head.append("  param " + ", ".join(f"{n} = {v}" for n, v in self.params))
        head.append(f"  grid ({', '.join(c.extent_src() for c in self.grid)}) as "
                    f"({', '.join(c.name for c in self.grid)})")
        head.append(f"  block {self.waves} waves")
        return "\n".join(head + ["{", *block_lines(self.body, "  "), "}", ""])


# ---------------------------------------------------------------- the oracle

@dataclass
class OutState:
    value: np.ndarray
    err: np.ndarray
    count: np.ndarray


@dataclass
class BlockState:
    env: dict[str, RV]
    lds: dict[str, RV | None]


class Oracle:
    """Evaluates a :class:`Kernel` on NumPy inputs, block by block, in float64 with error bounds.

    ``min_reduce_as_sum`` evaluates ``min(x, axis=k)`` as a sum: the known sema bug (issue 11),
    used only to recognise it."""

    def __init__(self, kernel: Kernel, inputs: dict[str, np.ndarray], scalars: dict[str, float | int],
                 dims: dict[str, int], min_reduce_as_sum: bool = False) -> None:
        self.k = kernel
        self.inputs = {n: np.asarray(a, dtype=np.float64) for n, a in inputs.items()}
        self.scalars = scalars
        self.dims = dims
        self.min_as_sum = min_reduce_as_sum
        self.outs: dict[str, OutState] = {}
        self.dtypes = {t.name: t.dtype for t in kernel.tensors}
        for t in kernel.tensors:
            if t.out:
                shape = tuple(dims[d] for d in t.dims)
                self.outs[t.name] = OutState(np.full(shape, np.nan), np.full(shape, INF), np.zeros(shape, int))

    def run(self) -> dict[str, RV]:
        extents = [c.extent(self.dims) for c in self.k.grid]
        for coords in np.ndindex(*extents):
            env: dict[str, RV] = {}
            for c, v in zip(self.k.grid, coords):
                env[c.name] = RV.exact(v)
            for name, dtype in self.k.scalars:
                env[name] = RV.exact(_rounded(np.asarray(self.scalars[name]), dtype))
            self.block(self.k.body, BlockState(env, {}))
        for name, o in self.outs.items():
            holes, doubles = int((o.count == 0).sum()), int((o.count > 1).sum())
            if holes or doubles:
                raise GeneratorBug(f"output '{name}': {holes} elements never written, {doubles} written twice")
        return {n: RV(o.value, o.err) for n, o in self.outs.items()}

    # ------------------------------------------------------------ statements
    def block(self, body: list[Stmt], st: BlockState) -> None:
        for s in body:
            getattr(self, "stmt_" + type(s).__name__)(s, st)

    def stmt_Assign(self, s: Assign, st: BlockState) -> None:
        st.env[s.name] = self.ev(s.value, st)

    def stmt_LdsDecl(self, s: LdsDecl, st: BlockState) -> None:
        st.lds.setdefault(s.name, None)

    def stmt_LdsWrite(self, s: LdsWrite, st: BlockState) -> None:
        st.lds[s.name] = self.ev(s.value, st)

    def stmt_Sync(self, s: Sync, st: BlockState) -> None:
        pass

    def stmt_Store(self, s: Store, st: BlockState) -> None:
        val = self.ev(s.value, st)
        o = self.outs[s.tensor]
        sel, tile_sel = self.window(s.tensor, o.value.shape, s.indices, st)
        dtype = self.dtypes[s.tensor]
        shape = tuple(ix.extent.value if ix.extent is not None else n
                      for ix, n in zip(s.indices, o.value.shape) if ix.start is None or ix.extent is not None)
        full = np.broadcast_to(val.v, shape)
        fulle = np.broadcast_to(val.e, shape)
        r = _finish(full, fulle, dtype)
        o.value[sel] = r.v[tile_sel]
        o.err[sel] = r.e[tile_sel]
        o.count[sel] += 1

    def stmt_For(self, s: For, st: BlockState) -> None:
        lo, hi, step = (self.exact_int(x, st) for x in (s.lo, s.hi, s.step))
        if step <= 0:
            raise GeneratorBug(f"loop step {step}")
        outer = set(st.env)
        for k in range(lo, hi, step):
            st.env[s.var] = RV.exact(k)
            self.block(s.body, st)
        for name in list(st.env):          # loop-local values die with the loop
            if name not in outer:
                del st.env[name]

    def stmt_If(self, s: If, st: BlockState) -> None:
        c = self.ev(s.cond, st)
        outer = set(st.env)
        if float(np.asarray(c.e)) == 0:
            self.block(s.then if bool(c.v) else s.orelse, st)
        else:
            # Undecided: run both branches and merge what they leave behind.
            saved = {n: copy.deepcopy(o) for n, o in self.outs.items()}
            st2 = BlockState(dict(st.env), dict(st.lds))
            self.block(s.then, st)
            then_outs = self.outs
            self.outs = saved
            self.block(s.orelse, st2)
            pick_then = bool(c.v)
            for name in outer:
                st.env[name] = _merge(st.env[name], st2.env[name], pick_then)
            for name in set(st.lds) | set(st2.lds):
                a, b = st.lds.get(name), st2.lds.get(name)
                st.lds[name] = None if a is None or b is None else _merge(a, b, pick_then)
            for name, o in self.outs.items():
                t = then_outs[name]
                if not np.array_equal(t.count, o.count):
                    raise GeneratorBug(f"the branches of an if store different parts of '{name}'")
                m = _merge(RV(t.value, t.err), RV(o.value, o.err), pick_then)
                o.value, o.err = m.v, m.e
        for name in list(st.env):
            if name not in outer:
                del st.env[name]

    def window(self, tensor: str, shape: tuple[int, ...], indices: list[Index], st: BlockState
               ) -> tuple[tuple, tuple]:
        """The in-bounds part of a slice: (tensor selection, tile selection)."""
        if len(indices) != len(shape):
            raise GeneratorBug(f"'{tensor}' indexed with {len(indices)} indices")
        sel: list = []
        tile: list = []
        for ix, n in zip(indices, shape):
            if ix.start is None:
                sel.append(slice(0, n))
                tile.append(slice(0, n))
                continue
            start = self.exact_int(ix.start, st)
            if ix.extent is None:
                if not 0 <= start < n:
                    raise GeneratorBug(f"scalar index {start} out of range of '{tensor}' dim {n}")
                sel.append(start)
                continue
            lo, hi = max(start, 0), min(start + ix.extent.value, n)
            if ix.until is not None:
                hi = min(hi, self.exact_int(ix.until, st))
            hi = max(hi, lo)
            sel.append(slice(lo, hi))
            tile.append(slice(lo - start, hi - start))
        return tuple(sel), tuple(tile)

    def exact_int(self, e: Expr, st: BlockState) -> int:
        r = self.ev(e, st)
        if float(np.max(r.e, initial=0)) != 0:
            raise GeneratorBug(f"an index or bound is not exact: {e.src()}")
        return int(r.v)

    # ------------------------------------------------------------ expressions
    def ev(self, e: Expr, st: BlockState) -> RV:
        return getattr(self, "ev_" + type(e).__name__)(e, st)

    def ev_Var(self, e: Var, st: BlockState) -> RV:
        return st.env[e.name]

    def ev_Lit(self, e: Lit, st: BlockState) -> RV:
        return RV.exact(_rounded(np.asarray(e.value), e.ty.dtype))

    def ev_Param(self, e: Param, st: BlockState) -> RV:
        return RV.exact(e.value)

    def ev_Dim(self, e: Dim, st: BlockState) -> RV:
        return RV.exact(self.dims[e.name])

    def ev_LdsRead(self, e: LdsRead, st: BlockState) -> RV:
        v = st.lds.get(e.name)
        if v is None:
            raise GeneratorBug(f"LDS tile '{e.name}' read before it is written")
        return v

    def ev_Load(self, e: Load, st: BlockState) -> RV:
        data = self.inputs[e.tensor]
        pad = 0.0 if e.pad is None else float(e.pad)
        out = np.full(e.ty.shape, _rounded(np.asarray(pad), e.ty.dtype), dtype=np.float64)
        if e.indices and e.indices[0].gather:
            # The first axis gathered by an index tile (its values in range), the rest a window.
            rows = self.ev(e.indices[0].start, st)
            if float(np.max(rows.e, initial=0)) != 0:
                raise GeneratorBug(f"a gather index is not exact: {e.indices[0].start.src()}")
            sel, tile = self.window(e.tensor, data.shape[1:], e.indices[1:], st)
            for p, r in enumerate(np.asarray(rows.v, dtype=np.int64)):
                if not 0 <= r < data.shape[0]:
                    raise GeneratorBug(f"gather index {r} out of range of '{e.tensor}' dim {data.shape[0]}")
                out[(p, *tile)] = data[(r, *sel)]
            return RV.exact(out)
        sel, tile = self.window(e.tensor, data.shape, e.indices, st)
        out[tile] = data[sel]
        return RV.exact(out)

    def ev_Fill(self, e: Fill, st: BlockState) -> RV:
        v = self.ev(e.value, st)
        return RV(np.broadcast_to(v.v, e.ty.shape).copy(), np.broadcast_to(v.e, e.ty.shape).copy())

    def ev_Iota(self, e: Iota, st: BlockState) -> RV:
        return RV.exact(np.arange(e.size.value))

    def ev_Unary(self, e: Unary, st: BlockState) -> RV:
        x = self.ev(e.x, st)
        dt = e.ty.dtype
        v, ea = x.v, x.e
        with np.errstate(all="ignore"):
            if e.fn == "not":
                return RV(~v, ea)
            if e.fn in ("neg", "abs"):
                return _finish(-v if e.fn == "neg" else np.abs(v), ea, dt)
            if e.fn in ("exp", "exp2"):
                k = 1.0 if e.fn == "exp" else math.log(2.0)
                r = np.exp(v) if e.fn == "exp" else np.exp2(v)
                err = _mul0(np.abs(r), np.expm1(k * ea)) + 4 * UNIT_ROUNDOFF[dt] * np.abs(r) * (1 + np.abs(v))
                err = np.where(np.isfinite(v), err, np.where(ea == 0, 0.0, INF))
                return _finish(r, err, dt, 2)
            if e.fn == "sqrt":
                r = np.sqrt(v)
                err = np.sqrt(np.maximum(v + ea, 0)) - np.sqrt(np.maximum(v - ea, 0))
                err = np.where((v - ea < 0) & (v + ea >= 0) & (ea > 0), INF, err)
                return _finish(r, _clean(err, ea), dt, 2)
            if e.fn == "rsqrt":
                r = 1.0 / np.sqrt(v)
                err = np.where(v - ea > 0, 1 / np.sqrt(np.maximum(v - ea, 1e-300)) - 1 / np.sqrt(v + ea), INF)
                return _finish(r, _clean(err, ea), dt, 4)
            if e.fn == "log2":
                r = np.log2(v)
                err = np.where(v - ea > 0, np.log2((v + ea) / np.maximum(v - ea, 1e-300)), INF)
                return _finish(r, _clean(err, ea) + 4 * UNIT_ROUNDOFF[dt], dt, 2)
        raise NotImplementedError(e.fn)

    def ev_Binary(self, e: Binary, st: BlockState) -> RV:
        a, b = self.ev(e.a, st), self.ev(e.b, st)
        av, bv, ea, eb = a.v, b.v, a.e, b.e
        dt = e.ty.dtype
        with np.errstate(all="ignore"):
            if e.op in ("and", "or"):
                r = (av & bv) if e.op == "and" else (av | bv)
                return RV(r, np.maximum(ea, eb) * np.ones(r.shape))
            if e.op in ("<", "<=", ">", ">=", "==", "!="):
                r = {"<": av < bv, "<=": av <= bv, ">": av > bv, ">=": av >= bv, "==": av == bv,
                     "!=": av != bv}[e.op]
                slack = ea + eb
                undecided = (slack > 0) & ~(np.abs(av - bv) > slack)
                return RV(r, np.where(undecided, INF, 0.0))
            if e.op in ("+", "-"):
                r = av + bv if e.op == "+" else av - bv
                return _finish(r, ea + eb, dt)
            if e.op == "*":
                return _finish(av * bv, _mul0(np.abs(av), eb) + _mul0(np.abs(bv), ea) + _mul0(ea, eb), dt)
            if e.op == "/":
                r = av / bv
                denom = np.abs(bv) - eb
                err = np.where(denom > 0, (ea + _mul0(np.abs(r), eb)) / np.where(denom > 0, denom, 1), INF)
                return _finish(r, _clean(err, np.maximum(ea, eb)), dt, 2)
            if e.op in ("//", "%"):
                safe = np.where(bv == 0, 1, bv)
                r = np.where(bv == 0, 0, np.floor_divide(av, safe) if e.op == "//" else np.mod(av, safe))
                return _finish(r, np.where((ea > 0) | (eb > 0), INF, 0.0), dt)
            if e.op in ("max", "min"):
                r = np.fmax(av, bv) if e.op == "max" else np.fmin(av, bv)     # maxNum/minNum: NaN ignored
                return _finish(r, np.maximum(ea, eb), dt)
        raise NotImplementedError(e.op)

    def ev_Where(self, e: Where, st: BlockState) -> RV:
        c, a, b = self.ev(e.c, st), self.ev(e.a, st), self.ev(e.b, st)
        v = np.where(c.v, a.v, b.v)
        with np.errstate(all="ignore"):
            err = np.where(c.v, a.e, b.e)
            spread = np.where(a.v == b.v, 0.0, np.abs(a.v - b.v))
            either = np.maximum(a.e, b.e) + spread
            err = np.where(c.e > 0, np.where(np.isnan(either), INF, either), err)
        return RV(v, np.broadcast_to(err, v.shape).copy())

    def ev_Cast(self, e: Cast, st: BlockState) -> RV:
        x = self.ev(e.x, st)
        dt = e.ty.dtype
        src_dt = e.x.ty.dtype
        with np.errstate(all="ignore"):
            if dt == "i32":
                if src_dt == "i32":
                    return x
                v = np.nan_to_num(x.v, nan=0.0)
                r = np.clip(np.trunc(v), -2.0 ** 31, 2.0 ** 31 - 1)
                spread = np.abs(np.trunc(v + x.e) - np.trunc(v - x.e))
                err = np.where(x.e == 0, 0.0, np.where(np.isfinite(spread), spread, INF))
                err = np.where(np.isnan(x.v) & (x.e > 0), INF, err)
                return RV(r, err)
            return _finish(x.v.astype(np.float64), x.e, dt)

    def ev_Reduce(self, e: Reduce, st: BlockState) -> RV:
        x = self.ev(e.x, st)
        dt = e.ty.dtype
        kind = "sum" if (e.kind == "min" and self.min_as_sum) else e.kind
        with np.errstate(all="ignore"):
            if kind == "sum":
                n = x.v.shape[e.axis]
                r = np.sum(x.v, axis=e.axis)
                mag = np.sum(np.abs(x.v), axis=e.axis)
                err = np.sum(x.e, axis=e.axis) + (n + 1) * UNIT_ROUNDOFF[dt] * np.where(np.isfinite(mag), mag, 0)
                err = np.where(np.isfinite(mag) | (np.max(x.e, axis=e.axis) == 0), err, INF)
                return _finish(r, err, dt)
            # maxNum/minNum: NaN ignored (NaN only where every element is)
            r = (np.fmax if kind == "max" else np.fmin).reduce(x.v, axis=e.axis)
            return RV(r, np.max(x.e, axis=e.axis))

    def ev_Dot(self, e: Dot, st: BlockState) -> RV:
        a, b = self.ev(e.a, st), self.ev(e.b, st)
        kdim = a.v.shape[1]
        with np.errstate(all="ignore"):
            r = a.v @ b.v
            mag = np.abs(a.v) @ np.abs(b.v)
            err = np.abs(a.v) @ b.e + a.e @ np.abs(b.v) + a.e @ b.e
            err = err + (kdim + 2) * UNIT_ROUNDOFF["f32"] * mag
            if e.acc is not None:
                c = self.ev(e.acc, st)
                r = r + c.v
                err = err + c.e + UNIT_ROUNDOFF["f32"] * np.abs(c.v)
        return _finish(r, np.where(np.isnan(err), INF, err), "f32")

    def ev_Transpose(self, e: Transpose, st: BlockState) -> RV:
        x = self.ev(e.x, st)
        return RV(x.v.T.copy(), x.e.T.copy())

    def ev_Expand(self, e: Expand, st: BlockState) -> RV:
        x = self.ev(e.x, st)
        return RV(np.expand_dims(x.v, e.axis), np.expand_dims(x.e, e.axis))


def _clean(err: np.ndarray, ea: np.ndarray) -> np.ndarray:
    """An exact operand gives an exact (rounding-only) result; NaN bounds are undecided."""
    err = np.where(ea == 0, 0.0, err)
    return np.where(np.isnan(err), INF, err)


def _merge(a: RV, b: RV, pick_a: bool) -> RV:
    """Either ``a`` or ``b`` (an undecided condition chose): the oracle's pick, widened to cover both."""
    with np.errstate(all="ignore"):
        if a.v.dtype == np.bool_:
            return RV(a.v if pick_a else b.v, np.where(a.v == b.v, np.maximum(a.e, b.e), INF))
        same = (a.v == b.v) | (np.isnan(a.v) & np.isnan(b.v))
        err = np.maximum(a.e, b.e) + np.where(same, 0.0, np.abs(a.v - b.v))
        return RV((a.v if pick_a else b.v).copy(), np.where(np.isnan(err), INF, err))


def agree(got: np.ndarray, want: RV, dtype: str, slack: float = 4.0) -> np.ndarray:
    """Where ``got`` (an output array) agrees with the oracle's value within its bound; elements
    the oracle cannot decide count as agreeing."""
    g = np.asarray(got, dtype=np.float64)
    v, e = want.v, want.e
    u = UNIT_ROUNDOFF[dtype]
    tiny = {"f16": 2.0 ** -24, "bf16": 1e-38, "f32": 1e-38, "i32": 0.0}[dtype]
    with np.errstate(all="ignore"):
        equal = (g == v) | (np.isnan(g) & np.isnan(v))
        close = np.abs(g - v) <= slack * e + 2 * u * np.abs(v) + tiny
        return equal | close | ~np.isfinite(e)
