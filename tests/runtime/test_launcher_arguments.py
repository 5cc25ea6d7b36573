"""The CUDA launcher's argument checks, which need no GPU: arrays are stand-ins exposing
``__cuda_array_interface__``."""

from __future__ import annotations

import re
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


DTYPES = """
kernel mix(W: u8[N], E: f8e4m3[N], F: f8e5m2[N], I: i64[N], U: u32[N], S: i16[N], B: i8[N], s: f8e4m3, o: i64,
           flag: i1, out Y: f32[N])
  grid (cdiv(N, 64)) as (g)
  block 1 waves
{
  Y[g*64 : +64] <- f32(W[g*64 : +64]) + f32(E[g*64 : +64]) * f32(s) + f32(F[g*64 : +64]) + f32(I[g*64 : +64] + o)
}
"""
TYPESTRS = {"W": "|u1", "E": "|u1", "F": "|u1", "I": "<i8", "U": "<u4", "S": "<i2", "B": "|i1", "Y": "<f4"}


def test_the_new_dtypes_are_packed_as_the_kernel_takes_them() -> None:
    kernel = tiledsl.load(DTYPES).compile(target="sm_90").launcher()
    arrays = {k: DeviceArray((100,), t) for k, t in TYPESTRS.items()}
    grid, raw = kernel.prepare({**arrays, "s": 1000.0, "o": -2**40, "flag": True})
    assert grid == (2, 1, 1)
    named = {a["name"]: int.from_bytes(raw[a["offset"]:a["offset"] + a["size"]], "little", signed=True)
             for a in kernel.artifact.meta["args"]}
    sizes = {a["name"]: a["size"] for a in kernel.artifact.meta["args"]}
    # fp8 scalars go as their bits, rounded (saturating) as a cast: 1000 → 448 = 0x7E.
    assert sizes["s"] == 1 and named["s"] == 0x7E
    assert sizes["o"] == 8 and named["o"] == -2**40
    assert sizes["flag"] == 4 and named["flag"] == 1
    assert named["N"] == 100


@pytest.mark.parametrize("name, typestr, fragment", [
    ("W", "|i1", "'W' is u8 but the array is |i1"),
    ("I", "<i4", "'I' is i64 but the array is <i4"),
    ("E", "<f2", "'E' is f8e4m3 but the array is <f2"),
])
def test_arrays_of_the_wrong_dtype_are_refused(name: str, typestr: str, fragment: str) -> None:
    kernel = tiledsl.load(DTYPES).compile(target="sm_90").launcher()
    arrays = {k: DeviceArray((100,), t) for k, t in TYPESTRS.items()}
    arrays[name] = DeviceArray((100,), typestr)
    with pytest.raises(LaunchError, match=re.escape(fragment)):
        kernel.prepare({**arrays, "s": 1.0, "o": 0, "flag": False})


def test_integer_scalars_out_of_range_are_refused() -> None:
    kernel = tiledsl.load(DTYPES).compile(target="sm_90").launcher()
    arrays = {k: DeviceArray((100,), t) for k, t in TYPESTRS.items()}
    with pytest.raises(LaunchError, match=re.escape("'o' is i64 but 9223372036854775808 is outside")):
        kernel.prepare({**arrays, "s": 1.0, "o": 2**63, "flag": False})
