"""Argument sizes the kernels and the interpreters can take, checked before anything is copied.

- A tensor dim is at most ``MAX_DIM``: dims are i32 kernel arguments and a tensor is indexed per
  dim with i32 values (an i64 slice start makes its dim's indices i64). A tensor may have more
  elements than that, and more than 2^31 bytes: every level computes the flat offset
  Σ index·stride in 64 bits (``llvm.lower_memory``: i64 strides; the interpreters: int64).
- The interpreters keep a copy of every tensor in storage form (``STORAGE``; made through one
  temporary of the same size), and for every ``out`` tensor a 4-byte write count and a 1-byte
  coverage mask per element and a temporary for the copy back into the caller's array. When
  that, with what the caller is about to allocate, exceeds the memory the machine has
  available, the run is refused up front instead of failing half-way with a ``MemoryError``
  (or being killed by the OOM killer). Their per-block working arrays are bounded by
  ``BlockInterpreter.run``'s chunking and the tile size limits, so the arguments are what grows
  with the shapes. (Measured: softmax on 10^8-element X and Y peaks at 2.1 GB over the arrays.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from tiledsl.diagnostics import Loc, Source, TdslError
from tiledsl.frontend import ast
from tiledsl.interp.numerics import STORAGE

MAX_DIM = 2**31 - 1


def available_memory() -> int | None:
    """Bytes of memory the machine can give this process now (Linux ``MemAvailable``, else the
    physical memory), or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_argument_sizes(params: Sequence[ast.TensorParam], shapes: Mapping[str, tuple[int, ...]],
                         kernel_loc: Loc | None, source: Source | None, allocating: int = 0) -> None:
    """Refuse tensors with a dim over ``MAX_DIM`` (at their parameter) and arguments whose
    interpreter copies, plus ``allocating`` bytes the caller is about to allocate, exceed the
    available memory (at the kernel)."""
    need = allocating
    for p in params:
        shape = tuple(int(d) for d in shapes[p.name])
        n = math.prod(shape)
        for name, d in zip(p.dims, shape):
            if d > MAX_DIM:
                raise TdslError(p.loc, f"tensor '{p.name}' of shape {list(shape)} has {name}={d}; kernels take "
                                       f"dims as 32-bit integers, so a dim may be at most {MAX_DIM} (2^31-1)",
                                ["a tensor may have more than 2^31 elements in all: split the dim in two"],
                                source=source)
        size = np.dtype(STORAGE[p.dtype]).itemsize
        need += n * (2 * size + (4 + 1 + size if p.out else 0))
    have = available_memory()
    if have is not None and need > have:
        raise TdslError(kernel_loc, f"interpreting these shapes needs about {_size(need)} of memory for the "
                                    f"arguments alone, and {_size(have)} is available",
                        [("interpret smaller shapes: the interpreters keep a copy of every tensor and a write "
                         "count for every element of an 'out' tensor")], source=source)
