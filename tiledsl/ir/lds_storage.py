"""How the elements of an LDS tile sit in its bytes: the storage layout of an ``lds_alloc``.

An LDS tile of shape ``[d0, d1, ...]`` is stored with an ``order`` — its dims from the fastest
varying to the slowest, as in ``blocked(order=...)``: ``[1, 0]`` is row-major, ``[0, 1]``
column-major — and a ``pad``: bytes added after each line of the fastest dim (the stride of
``order[1]`` is ``d[order[0]]·size + pad``), which moves the lines across the LDS banks.

With ``cores`` (2-D tiles of 16-bit elements, both dims multiples of 8) the tile is stored in
*core matrices* instead of lines: 8x8 blocks of 8 rows of 16 contiguous bytes (128 B each, the
unit Hopper's ``wgmma`` reads from shared memory through a matrix descriptor, and one 8x8 tile of
``ldmatrix``); ``order[0]`` is the dim contiguous within a core row, the core matrices follow
one another along it with ``pad`` bytes after each (16 moves consecutive ones across the banks),
then along the other dim. Element (r, c) — c the contiguous dim — is at
``(r//8)·S_r + (c//8)·S_c + (r%8)·16 + (c%8)·2`` with ``S_c = 128 + pad``, ``S_r = (C/8)·S_c``.

With ``swizzle`` (2-D 16-bit tiles, the contiguous dim a multiple of 64 elements, the other of
8) the tile is stored as Hopper's 128-byte swizzle: column blocks of 64 elements, each a run of
128-byte lines (one per row), in which the 16-byte chunk ``j`` of row ``r`` sits at chunk
``j ^ (r % 8)``: ``(c//64)·R·128 + r·128 + (((c%64)//8) ^ (r%8))·16 + (c%8)·2``. A row's chunks stay
in one line (a copy from global memory writes whole lines), 8 consecutive rows read at one
chunk column hit 8 different bank groups, and ``wgmma`` descriptors address it (swizzle mode 1;
the pattern follows address bits 4-6 ^ 7-9, so such tiles start at multiples of
``SWIZZLE_ALIGN``).

The storage is chosen by the ``lds-layout`` pass and recorded as the ``order``, ``pad`` (and
``cores`` or ``swizzle``) attributes of the ``lds_alloc``; an ``lds_alloc`` without them is row-major and
unpadded.
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
#: A core matrix: CORE_ROWS rows of CORE_ROW_BYTES contiguous bytes.
CORE_ROWS = 8
CORE_ROW_BYTES = 16
#: The 128-byte swizzle: lines of SWIZZLE_LINE bytes, 8-line atoms aligned to SWIZZLE_ALIGN.
SWIZZLE_LINE = 128
SWIZZLE_ALIGN = 1024


def swizzle128(byte: np.ndarray | int) -> np.ndarray | int:
    """The 128-byte swizzle of a byte offset from a ``SWIZZLE_ALIGN``-aligned base (its own
    inverse): bits 4-6 ^= bits 7-9."""
    return byte ^ (((byte >> 7) & 7) << 4)


@dataclass(frozen=True)
class Term:
    """One term of a byte offset: ``((coord[dim] // div) % mod) · stride`` (mod 0: none)."""

    dim: int
    div: int
    mod: int
    stride: int


def row_major(rank: int) -> tuple[int, ...]:
    return tuple(range(rank - 1, -1, -1))


@dataclass(frozen=True)
class LdsStorage:
    """The byte layout of one LDS tile (see the module docstring)."""

    shape: tuple[int, ...]
    dtype: str
    order: tuple[int, ...]
    pad: int = 0
    cores: bool = False
    swizzle: bool = False

    def __post_init__(self) -> None:
        if sorted(self.order) != list(range(len(self.shape))):
            raise ValueError(f"storage order {list(self.order)} is not a permutation of the dims of "
                             f"{list(self.shape)}")
        if self.pad < 0 or self.pad % self.elem_bytes or (self.pad and len(self.shape) < 2):
            raise ValueError(f"padding of {self.pad} bytes does not fit a {self.dtype} tile of rank "
                             f"{len(self.shape)}")
        if self.cores:
            per_row = CORE_ROW_BYTES // self.elem_bytes if self.elem_bytes <= CORE_ROW_BYTES else 0
            if len(self.shape) != 2 or self.elem_bytes != 2 or \
                    self.shape[self.order[0]] % per_row or self.shape[self.order[1]] % CORE_ROWS or \
                    self.pad % CORE_ROW_BYTES:
                raise ValueError(f"a {self.dtype}{list(self.shape)} tile cannot be stored in 8x8 core matrices "
                                 f"padded by {self.pad} B (2-D, 16-bit, dims multiples of 8, pad a multiple "
                                 f"of 16 B)")
        if self.swizzle and (self.cores or len(self.shape) != 2 or self.elem_bytes != 2 or self.pad or
                             self.shape[self.order[0]] % 64 or self.shape[self.order[1]] % CORE_ROWS):
            raise ValueError(f"a {self.dtype}{list(self.shape)} tile cannot take the 128-byte swizzle "
                             f"(2-D, 16-bit, unpadded, contiguous dim a multiple of 64, the other of 8)")

    @classmethod
    def default(cls, t: LdsType) -> LdsStorage:
        return cls(tuple(int(d) for d in t.shape), t.dtype, row_major(len(t.shape)))

    @classmethod
    def of(cls, alloc: Op) -> LdsStorage:
        """The storage recorded on an ``lds_alloc`` (row-major, unpadded when none is)."""
        t: LdsType = alloc.result.type
        shape = tuple(int(d) for d in t.shape)
        order = tuple(alloc.attrs.get("order", row_major(len(shape))))
        return cls(shape, t.dtype, order, int(alloc.attrs.get("pad", 0)), bool(alloc.attrs.get("cores", False)),
                   bool(alloc.attrs.get("swizzle", False)))

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def contiguous_dim(self) -> int | None:
        return self.order[0] if self.order else None

    @property
    def align(self) -> int:
        """The alignment the tile's start needs."""
        return SWIZZLE_ALIGN if self.swizzle else MAX_VECTOR_BYTES

    @property
    def terms(self) -> tuple[Term, ...]:
        """The byte offset of an element as a sum of terms of its coordinates (before the
        swizzle, for a swizzled tile)."""
        if self.swizzle:
            c, r = self.order
            return (Term(c, 1, 64, self.elem_bytes), Term(c, 64, 0, self.shape[r] * SWIZZLE_LINE),
                    Term(r, 1, 0, SWIZZLE_LINE))
        if not self.cores:
            return tuple(Term(d, 1, 0, s) for d, s in enumerate(self.strides))
        c, r = self.order
        per_row = CORE_ROW_BYTES // self.elem_bytes
        s_c = CORE_ROWS * CORE_ROW_BYTES + self.pad
        s_r = self.shape[c] // per_row * s_c
        return (Term(c, 1, per_row, self.elem_bytes), Term(c, per_row, 0, s_c),
                Term(r, 1, CORE_ROWS, CORE_ROW_BYTES), Term(r, CORE_ROWS, 0, s_r))

    @property
    def align_strides(self) -> tuple[int, ...]:
        """Per dim, the byte step that a vector group must stay aligned to: its stride, or for
        core matrices the smallest of its terms (the others are multiples of it)."""
        out = [0] * len(self.shape)
        for t in self.terms:
            out[t.dim] = t.stride if not out[t.dim] else min(out[t.dim], t.stride)
        if self.swizzle:            # the swizzle moves 16-byte chunks: nothing wider stays together
            out[self.order[1]] = CORE_ROW_BYTES
        return tuple(out)

    @property
    def strides(self) -> tuple[int, ...]:
        """Byte stride of each dim (line storage only: core matrices have ``terms``)."""
        if self.cores or self.swizzle:
            raise ValueError("internal: a tile in core matrices or swizzled has no stride per dim")
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
        if self.cores:
            return self.shape[self.order[1]] // CORE_ROWS * self.terms[3].stride
        if self.swizzle:
            return int(np.prod(self.shape)) * self.elem_bytes
        return sum((n - 1) * s for n, s in zip(self.shape, self.strides)) + self.elem_bytes

    def offsets(self, coords: np.ndarray) -> np.ndarray:
        """Byte offsets of elements ``coords[..., rank]`` (-1 where a coordinate is -1)."""
        coords = np.asarray(coords, dtype=np.int64)
        off = np.zeros(coords.shape[:-1], dtype=np.int64)
        for t in self.terms:
            q = coords[..., t.dim] // t.div
            off = off + (q % t.mod if t.mod else q) * t.stride
        if self.swizzle:
            off = swizzle128(off)
        return np.where((coords >= 0).all(-1), off, -1) if self.shape else off

    def element_at(self, byte: int) -> tuple[int, ...] | None:
        """The coordinates of the element covering ``byte`` (from the tile's start), or None
        for a padding byte or one past the tile."""
        if not 0 <= byte < self.nbytes:
            return None
        if self.cores:
            return self._core_element_at(byte)
        if self.swizzle:
            c, r = self.order
            block, rest = divmod(int(swizzle128(byte)), self.shape[r] * SWIZZLE_LINE)
            row, rest = divmod(rest, SWIZZLE_LINE)
            coords = [0, 0]
            coords[r], coords[c] = row, block * 64 + rest // self.elem_bytes
            return tuple(coords)
        coords = [0] * len(self.shape)
        rest = byte
        for d in reversed(self.order):
            coords[d], rest = divmod(rest, self.strides[d])
            if coords[d] >= self.shape[d]:
                return None
        if rest >= self.elem_bytes and self.shape:
            return None
        return tuple(coords)

    def _core_element_at(self, byte: int) -> tuple[int, ...] | None:
        c, r = self.order
        s_c, s_r = self.terms[1].stride, self.terms[3].stride
        r_hi, rest = divmod(byte, s_r)
        c_hi, rest = divmod(rest, s_c)
        if rest >= CORE_ROWS * CORE_ROW_BYTES:
            return None
        r_lo, rest = divmod(rest, CORE_ROW_BYTES)
        coords = [0, 0]
        coords[r] = r_hi * CORE_ROWS + r_lo
        coords[c] = c_hi * (CORE_ROW_BYTES // self.elem_bytes) + rest // self.elem_bytes
        return tuple(coords)

    def record(self) -> list[object]:
        """The storage as plain data (the thread IR kernel's ``lds_buffers``); ``from_record``
        reads it back."""
        return [self.dtype, list(self.shape), list(self.order), self.pad, self.cores, self.swizzle]

    @classmethod
    def from_record(cls, rec: list[object]) -> LdsStorage:
        dtype, shape, order, pad, cores, swizzle = rec
        return cls(tuple(shape), dtype, tuple(order), pad, cores, swizzle)  # type: ignore[arg-type]

    def attrs(self) -> dict[str, object]:
        out: dict[str, object] = {"order": list(self.order), "pad": self.pad}
        if self.cores:
            out["cores"] = True
        if self.swizzle:
            out["swizzle"] = True
        return out

    def __str__(self) -> str:
        if self.swizzle:
            return f"128-byte swizzle along dim {self.order[0]}"
        if self.cores:
            return f"8x8 core matrices along dim {self.order[0]}" + (f", pad {self.pad} B" if self.pad else "")
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
