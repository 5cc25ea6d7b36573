"""Types of tile IR values.

A dim is an ``int`` once known; a compile-time constant without a value (``const D``
checked without ``-D D=...``) stays symbolic as a :class:`Sym`, so ``tdslc check``
works before the program is specialised. Scalars are rank-0 tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("f16", "bf16", "f32", "i32", "i1")
FLOAT_DTYPES = ("f16", "bf16", "f32")
INT_DTYPES = ("i32",)
DTYPE_BYTES = {"f16": 2, "bf16": 2, "f32": 4, "i32": 4, "i1": 1}


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
