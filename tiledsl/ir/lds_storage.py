"""How the elements of an LDS tile sit in its bytes: the storage layout of an ``lds_alloc``.

An LDS tile of shape ``[d0, d1, ...]`` is stored with an ``order`` — its dims from the fastest
varying to the slowest, as in ``blocked(order=...)``: ``[1, 0]`` is row-major, ``[0, 1]``
column-major — and a ``pad``: bytes added after each line of the fastest dim (the stride of
``order[1]`` is ``d[order[0]]·size + pad``), which moves the lines across the LDS banks.

The storage is chosen by the ``lds-layout`` pass and recorded as the ``order`` and ``pad``
attributes of the ``lds_alloc``; an ``lds_alloc`` without them is row-major and unpadded.
Everything that turns LDS coordinates into bytes — distribution, LDS allocation, the thread
interpreter's messages — goes through ``LdsStorage`` so that they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiledsl.ir.core import Op
from tiledsl.ir.types import DTYPE_BYTES, LdsType

# The widest access one thread makes (a 128-bit ds_read_b128 / ld.shared.v4.b32).
MAX_VECTOR_BYTES = 16


def row_major(rank: int) -> tuple[int, ...]:
    return tuple(range(rank - 1, -1, -1))


@dataclass(frozen=True)
class LdsStorage:
    """The byte layout of one LDS tile (see the module docstring)."""

    shape: tuple[int, ...]
    dtype: str
    order: tuple[int, ...]
    pad: int = 0

    def __post_init__(self) -> None:
        if sorted(self.order) != list(range(len(self.shape))):
            raise ValueError(f"storage order {list(self.order)} is not a permutation of the dims of "
                             f"{list(self.shape)}")
        if self.pad < 0 or self.pad % self.elem_bytes or (self.pad and len(self.shape) < 2):
            raise ValueError(f"padding of {self.pad} bytes does not fit a {self.dtype} tile of rank "
                             f"{len(self.shape)}")

    @classmethod
    def default(cls, t: LdsType) -> LdsStorage:
        return cls(tuple(int(d) for d in t.shape), t.dtype, row_major(len(t.shape)))

    @classmethod
    def of(cls, alloc: Op) -> LdsStorage:
        """The storage recorded on an ``lds_alloc`` (row-major, unpadded when none is)."""
        t: LdsType = alloc.result.type
        shape = tuple(int(d) for d in t.shape)
        order = tuple(alloc.attrs.get("order", row_major(len(shape))))
        return cls(shape, t.dtype, order, int(alloc.attrs.get("pad", 0)))

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def contiguous_dim(self) -> int | None:
        return self.order[0] if self.order else None

    @property
    def strides(self) -> tuple[int, ...]:
        """Byte stride of each dim."""
        out = [0] * len(self.shape)
        step = self.elem_bytes
        for i, d in enumerate(self.order):
            out[d] = step
            step = step * self.shape[d] + (self.pad if i == 0 else 0)
        return tuple(out)

    @property
    def nbytes(self) -> int:
        """Bytes from the first element to the end of the last (the last line needs no pad)."""
        if not self.shape or 0 in self.shape:
            return self.elem_bytes if not self.shape else 0
        return sum((n - 1) * s for n, s in zip(self.shape, self.strides)) + self.elem_bytes

    def offsets(self, coords: np.ndarray) -> np.ndarray:
        """Byte offsets of elements ``coords[..., rank]`` (-1 where a coordinate is -1)."""
        off = (coords * np.asarray(self.strides, dtype=np.int64)).sum(-1)
        return np.where((coords >= 0).all(-1), off, -1) if self.shape else off

    def element_at(self, byte: int) -> tuple[int, ...] | None:
        """The coordinates of the element covering ``byte`` (from the tile's start), or None
        for a padding byte or one past the tile."""
        if not 0 <= byte < self.nbytes:
            return None
        coords = [0] * len(self.shape)
        rest = byte
        for d in reversed(self.order):
            coords[d], rest = divmod(rest, self.strides[d])
            if coords[d] >= self.shape[d]:
                return None
        if rest >= self.elem_bytes and self.shape:
            return None
        return tuple(coords)

    def attrs(self) -> dict[str, object]:
        return {"order": list(self.order), "pad": self.pad}

    def __str__(self) -> str:
        kind = {row_major(len(self.shape)): "row-major", tuple(range(len(self.shape))): "column-major"}
        name = kind.get(self.order, f"order {list(self.order)}") if len(self.shape) > 1 else "linear"
        return f"{name}, pad {self.pad} B" if self.pad else name


def buffer_coords(index_map: np.ndarray, transposed: bool) -> np.ndarray:
    """A register layout's index map in the dims of the LDS tile it is read from: a
    transposed read's tile dim i is the buffer's dim rank-1-i."""
    return index_map[..., ::-1] if transposed else index_map


def vector_width(index_map: np.ndarray, regs: int, elem_bytes: int, dim: int | None,
                 byte_strides: tuple[int, ...] | None = None) -> int:
    """The widest power-of-two group of consecutive registers that is, in every thread,
    consecutive along ``dim`` and aligned to its size (at most ``MAX_VECTOR_BYTES``).

    ``index_map``: [waves, lanes, regs, rank] coordinates in the memory's dims (-1 for an
    empty slot). ``byte_strides``: when given, a group must also stay aligned whatever the
    other coordinates are, so every other dim's stride must be a multiple of its bytes.
    """
    if dim is None or index_map.shape[-1] == 0:
        return 1
    return aligned_width(contiguous_width(index_map, regs, elem_bytes, dim), elem_bytes, dim, byte_strides)


def contiguous_width(index_map: np.ndarray, regs: int, elem_bytes: int, dim: int) -> int:
    """``vector_width`` without the strides."""
    m = index_map
    rank = m.shape[-1]
    best = 1
    v = 2
    while v * elem_bytes <= MAX_VECTOR_BYTES and regs % v == 0:
        g = m.reshape(m.shape[0], m.shape[1], regs // v, v, rank)
        first = g[..., :1, :]
        step = np.zeros(rank, dtype=np.int64)
        step[dim] = 1
        want = first + np.arange(v)[:, None] * step
        empty = (g[..., 0] < 0).all(-1)
        aligned = first[..., 0, dim] % v == 0
        if ((g == want).all(axis=(-1, -2)) | empty).all() and (aligned | empty).all():
            best = v
            v *= 2
        else:
            break
    return best


def aligned_width(width: int, elem_bytes: int, dim: int, byte_strides: tuple[int, ...] | None) -> int:
    """``width`` halved until every stride but ``dim``'s is a multiple of the group's bytes."""
    while width > 1 and byte_strides is not None and \
            any(s % (width * elem_bytes) for d, s in enumerate(byte_strides) if d != dim):
        width //= 2
    return width
