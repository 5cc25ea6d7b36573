"""Types of tile IR values.

A dim is an ``int`` once known; a compile-time constant without a value (``const D``
checked without ``-D D=...``) stays symbolic as a :class:`Sym`, so ``tdslc check``
works before the program is specialised. Scalars are rank-0 tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The one table of dtype names: the language's grammar (``tiledsl/grammar.lark``), the IR's text
#: form (``ir/ir.lark``) and sema all read it.
DTYPES = ("f16", "bf16", "f32", "i32", "i1", "f8e4m3", "f8e5m2", "i8", "u8", "i16", "u32", "i64")
#: OCP FP8: e4m3 is E4M3FN (no infinities, one NaN pattern per sign, max 448), e5m2 is IEEE-like
#: (infinities and NaNs, max 57344). Conversions to them saturate (``interp.numerics.round_fp8``).
FP8_DTYPES = ("f8e4m3", "f8e5m2")
FLOAT_DTYPES = ("f16", "bf16", "f32", *FP8_DTYPES)
INT_DTYPES = ("i32", "i8", "u8", "i16", "u32", "i64")
UNSIGNED_DTYPES = ("u8", "u32")
DTYPE_BYTES = {"f16": 2, "bf16": 2, "f32": 4, "i32": 4, "i1": 1, "f8e4m3": 1, "f8e5m2": 1, "i8": 1, "u8": 1,
               "i16": 2, "u32": 4, "i64": 8}
#: Bits of an integer dtype (shift counts at or past it shift every bit out).
INT_BITS = {d: 8 * DTYPE_BYTES[d] for d in INT_DTYPES}


def int_range(dtype: str) -> tuple[int, int]:
    """The smallest and largest value of an integer dtype."""
    bits = INT_BITS[dtype]
    return (0, 2**bits - 1) if dtype in UNSIGNED_DTYPES else (-2**(bits - 1), 2**(bits - 1) - 1)


def with_dtype_names(grammar: str) -> str:
    """A lark grammar's text with its ``DTYPE`` terminal (``/DTYPE_NAMES/``) matching exactly the
    names of ``DTYPES``."""
    if "/DTYPE_NAMES/" not in grammar:
        raise ValueError("the grammar has no DTYPE_NAMES terminal to fill in")
    names = "|".join(sorted(DTYPES, key=len, reverse=True))
    return grammar.replace("/DTYPE_NAMES/", f"/({names})\\b/")


@dataclass(frozen=True)
class Sym:
    """A dim whose value is not known yet (a const without a value)."""

    text: str

    def __str__(self) -> str:
        return self.text


Dim = int | Sym


def dim_str(d: Dim) -> str:
    return str(d)


def is_static_shape(shape: tuple[Dim, ...]) -> bool:
    return all(isinstance(d, int) for d in shape)


def num_elements(shape: tuple[Dim, ...]) -> int:
    n = 1
    for d in shape:
        if not isinstance(d, int):
            raise TypeError(f"shape {shape_str(shape)} is symbolic")
        n *= d
    return n


def shape_str(shape: tuple[Dim, ...]) -> str:
    return ",".join(str(d) for d in shape)


class Type:
    """Base of all IR types."""


@dataclass(frozen=True)
class TileType(Type):
    """A block-level tile held in registers (rank 0 = a uniform scalar).

    ``layout`` is the thread tile the value is spread over, as canonical layout text
    (None until given by an ``@ layout`` annotation or the layout-assignment pass).
    """

    dtype: str
    shape: tuple[Dim, ...] = ()
    layout: str | None = None

    def __str__(self) -> str:
        s = self.dtype if not self.shape else f"{self.dtype}[{shape_str(self.shape)}]"
        return f"{s} #{self.layout}" if self.layout else s

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape: tuple[Dim, ...]) -> TileType:
        return TileType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> TileType:
        return TileType(dtype, self.shape)

    def without_layout(self) -> TileType:
        return TileType(self.dtype, self.shape)


@dataclass(frozen=True)
class LdsType(Type):
    """A tile buffer in LDS (shared memory), written and read by the whole block."""

    dtype: str
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        return f"lds<{self.dtype}[{shape_str(self.shape)}]>"

    @property
    def nbytes(self) -> int:
        return num_elements(self.shape) * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class TensorType(Type):
    """A global-memory tensor parameter; dims are names (runtime sizes) or ints."""

    dtype: str
    dims: tuple[str | int, ...]
    out: bool = False

    def __str__(self) -> str:
        inner = ",".join(str(d) for d in self.dims)
        return f"{'out ' if self.out else ''}tensor<{self.dtype}[{inner}]>"


@dataclass(frozen=True)
class RegsType(Type):
    """Thread IR: ``n`` registers of ``dtype`` in every thread of the block (a
    distributed tile: register r of thread t holds the element its layout says)."""

    dtype: str
    n: int

    def __str__(self) -> str:
        return f"regs<{self.dtype}, {self.n}>"

    @property
    def shape(self) -> tuple[int]:
        return (self.n,)

    def without_layout(self) -> RegsType:
        return self


def scalar(dtype: str) -> TileType:
    return TileType(dtype, ())
