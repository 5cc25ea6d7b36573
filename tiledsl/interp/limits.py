"""Argument sizes the kernels and the interpreters can take, checked before anything is copied.

- A tensor has at most ``MAX_TENSOR_ELEMENTS`` elements: compiled kernels compute element
  offsets in 32-bit integers (as the interpreters' i32 index values do), so a larger tensor
  would be addressed wrongly, not slowly.
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

MAX_TENSOR_ELEMENTS = 2**31 - 1


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
    """Refuse tensors over ``MAX_TENSOR_ELEMENTS`` (at their parameter) and arguments whose
    interpreter copies, plus ``allocating`` bytes the caller is about to allocate, exceed the
    available memory (at the kernel)."""
    need = allocating
    for p in params:
        shape = tuple(int(d) for d in shapes[p.name])
        n = math.prod(shape)
        if n > MAX_TENSOR_ELEMENTS:
            raise TdslError(p.loc, f"tensor '{p.name}' of shape {list(shape)} has {n} elements; kernels index "
                                   f"tensors with 32-bit integers, so a tensor may have at most "
                                   f"{MAX_TENSOR_ELEMENTS} (2^31-1)", source=source)
        size = np.dtype(STORAGE[p.dtype]).itemsize
        need += n * (2 * size + (4 + 1 + size if p.out else 0))
    have = available_memory()
    if have is not None and need > have:
        raise TdslError(kernel_loc, f"interpreting these shapes needs about {_size(need)} of memory for the "
                                    f"arguments alone, and {_size(have)} is available",
                        [("interpret smaller shapes: the interpreters keep a copy of every tensor and a write "
                         "count for every element of an 'out' tensor")], source=source)
