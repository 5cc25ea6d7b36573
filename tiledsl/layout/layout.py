"""The concrete layout: a spec bound to a tile shape, a wave count and a target.

Its one piece of data is the index map, ``[num_waves, wave_size, regs, rank]``: the tile
coordinates held by register ``reg`` of lane ``lane`` of wave ``wave``.  The thread interpreter,
the pictures and the lowering all read this one array, so they cannot disagree about a layout.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from tiledsl.layout.spec import LayoutSpec
from tiledsl.targets import MatrixInstr, Target


class Layout:
    """A thread tile: which element of a ``shape`` tile each (wave, lane, register) holds.

    Built by ``tiledsl.layout.bind``.  ``instr`` is the matrix instruction (or the FMA fallback)
    whose fragments the layout is made of, None for blocked and replicated layouts; ``dtype`` is the
    element type it was bound for (it picks blocked vector widths and the default instruction).  Registers are
    padded so every thread has ``regs`` of them; a slot holding nothing has -1 in every coordinate.
    """

    def __init__(self, spec: LayoutSpec, shape: tuple[int, ...], num_waves: int, target: Target,
                 index_map: np.ndarray, instr: MatrixInstr | None = None, dtype: str = "f32") -> None:
        self.spec = spec
        self.dtype = dtype
        self.shape = tuple(shape)
        self.num_waves = num_waves
        self.target = target
        self.wave_size = target.wave_size
        self.instr = instr
        expected = (num_waves, self.wave_size)
        if index_map.ndim != 4 or index_map.shape[:2] != expected or index_map.shape[3] != len(self.shape):
            raise ValueError(f"internal: index map of shape {index_map.shape} for {num_waves} waves of "
                             f"{self.wave_size} lanes and a rank-{len(self.shape)} tile")
        self.regs = index_map.shape[2]
        # Binders hand over fresh arrays (or read-only broadcasts), so no defensive copy is needed.
        self._index_map = index_map.astype(np.int64, copy=False)
        self._index_map.setflags(write=False)
        self._check_coordinates()

    def _check_coordinates(self) -> None:
        # An out-of-range coordinate would be a bug in a binder, never a user mistake.
        coords = self._index_map
        if coords.shape[3] == 0:
            return
        empty = (coords == -1).all(axis=-1)
        in_range = ((coords >= 0) & (coords < np.array(self.shape))).all(axis=-1)
        if not (empty | in_range).all():
            raise ValueError(f"internal: layout {self} maps a register outside the tile")

    @property
    def num_threads(self) -> int:
        """Threads of the block: ``num_waves * wave_size``."""
        return self.num_waves * self.wave_size

    def index_map(self) -> np.ndarray:
        """Coordinates held by each (wave, lane, reg): read-only int64 ``[waves, lanes, regs, rank]``."""
        return self._index_map

    def valid(self) -> np.ndarray:
        """``[waves, lanes, regs]`` bool: which slots hold an element."""
        if not self.shape:
            return np.ones(self._index_map.shape[:3], dtype=bool)
        return self._index_map[..., 0] >= 0

    def linear_map(self) -> np.ndarray:
        """Row-major linear index of the element each slot holds, -1 for empty slots: ``[waves, lanes, regs]``."""
        return self._linear

    @cached_property
    def _linear(self) -> np.ndarray:
        valid = self.valid()
        if not self.shape:
            lin = np.zeros(valid.shape, dtype=np.int64)
        else:
            coords = np.where(valid[..., None], self._index_map, 0)
            lin = np.ravel_multi_index(tuple(np.moveaxis(coords, -1, 0)), self.shape).astype(np.int64)
        lin = np.where(valid, lin, -1)
        lin.setflags(write=False)
        return lin

    def replication(self) -> np.ndarray:
        """How many threads (wave, lane) hold each element; an int64 array of the tile's shape."""
        return self._replication

    @cached_property
    def _replication(self) -> np.ndarray:
        per_thread = np.sort(self._linear.reshape(self.num_threads, self.regs), axis=1)
        # An element held in two registers of one thread counts once for that thread.
        first = np.ones(per_thread.shape, dtype=bool)
        first[:, 1:] = per_thread[:, 1:] != per_thread[:, :-1]
        held = per_thread[first & (per_thread >= 0)]
        counts = np.bincount(held, minlength=int(np.prod(self.shape, dtype=np.int64)))
        counts = counts.reshape(self.shape)
        counts.setflags(write=False)
        return counts

    def first_wave_alike(self) -> np.ndarray:
        """For each wave, the first wave that holds exactly the same elements (itself when none
        before it does): ``[num_waves]`` int64.  Waves mapped to an earlier one replicate its data
        (an mma layout whose waves do not divide the tile), so a partial result they compute must
        be counted once."""
        return self._first_wave_alike

    @cached_property
    def _first_wave_alike(self) -> np.ndarray:
        held = [frozenset(np.unique(w[w >= 0]).tolist()) for w in self._linear.reshape(self.num_waves, -1)]
        first = np.array([held.index(h) for h in held], dtype=np.int64)
        first.setflags(write=False)
        return first

    def owner_of(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each element the first (wave, lane, reg) holding it, as three arrays of the tile's shape.

        "First" is in (wave, lane, reg) order; elements nobody holds get -1.  Used to draw pictures.
        """
        return self._owner

    @cached_property
    def _owner(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = self._linear.ravel()
        size = int(np.prod(self.shape, dtype=np.int64))
        slots = np.nonzero(flat >= 0)[0]
        elements, first = np.unique(flat[slots], return_index=True)
        owner = np.full(size, -1, dtype=np.int64)
        owner[elements] = slots[first]
        wave, lane, reg = (np.full(size, -1, dtype=np.int64) for _ in range(3))
        held = owner >= 0
        wave[held], lane[held], reg[held] = np.unravel_index(owner[held], self._linear.shape)
        result = tuple(a.reshape(self.shape) for a in (wave, lane, reg))
        for a in result:
            a.setflags(write=False)
        return result  # type: ignore[return-value]

    def equivalent(self, other: Layout) -> bool:
        """True when both layouts put the same element in every (wave, lane, reg): no conversion needed."""
        return (self.shape == other.shape and self._index_map.shape == other._index_map.shape
                and bool(np.array_equal(self._index_map, other._index_map)))

    def _key(self) -> tuple[object, ...]:
        return (self.spec, self.shape, self.num_waves, self.target.name, self.dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.spec}<{'x'.join(str(d) for d in self.shape)}>"

    def __repr__(self) -> str:
        return f"Layout({self}, waves={self.num_waves}, target={self.target.name}, regs={self.regs})"
