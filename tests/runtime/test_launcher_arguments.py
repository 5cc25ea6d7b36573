"""The CUDA launcher's argument checks, which need no GPU: arrays are stand-ins exposing
``__cuda_array_interface__``."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest

import tiledsl
from tiledsl.runtime.cuda import LaunchError

NEGATIVE_GRID = """
kernel neg(X: f32[N], out Y: f32[N])
  param BM = 64
  grid (cdiv(N, BM) - 5) as (b)
  block 1 waves
{
  Y[b*BM : +BM] <- X[b*BM : +BM]
}
"""


@dataclass
class DeviceArray:
    """Enough of a GPU array for ``CudaKernel.prepare`` (nothing is launched)."""

    shape: tuple[int, ...]
    typestr: str = "<f4"

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"data": (4096, False), "shape": self.shape, "strides": None, "typestr": self.typestr,
                "version": 3}


def test_a_negative_grid_extent_is_refused_before_launching() -> None:
    kernel = tiledsl.load(NEGATIVE_GRID).compile(target="sm_90").launcher()
    with pytest.raises(LaunchError, match=r"grid axis 0 has extent -4 \(.* with N=50\); a grid extent must not be "
                                          "negative"):
        kernel.prepare({"X": DeviceArray((50,)), "Y": DeviceArray((50,))})
    grid, _ = kernel.prepare({"X": DeviceArray((400,)), "Y": DeviceArray((400,))})
    assert grid == (2, 1, 1)


SCALAR_GRID = """
kernel per_sequence(X: f32[T], Cu: i32[B1], out Y: f32[T], max_seqlen: i32)
  param BM = 16
  grid (cdiv(max_seqlen, BM), B1 - 1) as (m, b)
  block 1 waves
{
  lo = Cu[b] + m * BM
  hi = Cu[b + 1]
  Y[lo : +BM until hi] <- X[lo : +BM until hi]
}
"""


def test_the_grid_reads_scalar_arguments() -> None:
    """cdiv(max_seqlen, BM) blocks along x: the metadata says so by name, the launcher evaluates it
    with the argument (as the interpreters do)."""
    art = tiledsl.load(SCALAR_GRID).compile(target="sm_90")
    assert art.meta["grid"] == ["(((max_seqlen + 16) - 1) / 16)", "(B1 - 1)"]
    kernel = art.launcher()
    arrays = {"X": DeviceArray((70,)), "Cu": DeviceArray((4,), "<i4"), "Y": DeviceArray((70,))}
    grid, args = kernel.prepare({**arrays, "max_seqlen": 33})
    assert grid == (3, 3, 1)
    # X, Cu, Y pointers; max_seqlen; the dims T and B1, at the metadata's offsets
    assert struct.unpack("<QQQiii", args) == (4096, 4096, 4096, 33, 70, 4)
    with pytest.raises(LaunchError, match="missing argument 'max_seqlen'"):
        kernel.prepare(arrays)
