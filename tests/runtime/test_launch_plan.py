"""The launch path without a GPU: the driver's two calls (load, launch) are replaced by recorders,
arrays are stand-ins exposing ``__cuda_array_interface__`` (or CPU PyTorch tensors, which must be
refused). What is checked: one plan per signature, the kernarg bytes at the offsets of the
metadata (pointers, scalars, dims, strides), the grid, the stream, the argument checks of the
slow path, the strided specialisation and its alignment rules, and the host time of a call."""

from __future__ import annotations

import ctypes
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import tiledsl
from tiledsl.runtime import cuda, driver
from tiledsl.runtime.cuda import LaunchError

ATTENTION = Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl"

COPY = """
kernel copy(X: f32[M, N], out Y: f32[M, N], alpha: f32, flag: i1, unused: i32)
  param BM = 16
  grid (cdiv(M, BM)) as (b)
  block 1 waves
{
  Y[b*BM : +BM, 0 : +64] <- X[b*BM : +BM, 0 : +64] * alpha
}
"""


@dataclass
class DeviceArray:
    shape: tuple[int, ...]
    typestr: str = "<f4"
    ptr: int = 4096
    strides: tuple[int, ...] | None = None       # bytes, as the interface gives them
    device: Any = None

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"data": (self.ptr, False), "shape": self.shape, "strides": self.strides, "typestr": self.typestr,
                "version": 3}


@dataclass
class Device:
    id: int


@dataclass
class Recorder:
    launches: list[tuple] = field(default_factory=list)
    loads: list[tuple] = field(default_factory=list)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()

    def load_function(image: bytes, name: str, lds: int, device: int) -> tuple[Any, Any]:
        rec.loads.append((name, device))
        return object(), f"fn:{name}"

    def launch(fn: Any, grid: tuple, threads: int, lds: int, stream: int, params: int, device: int) -> None:
        # read the kernarg bytes through the void*[] as the driver would
        rec.launches.append((fn, grid, threads, stream, params))

    monkeypatch.setattr(driver, "load_function", load_function)
    monkeypatch.setattr(driver, "launch", launch)
    monkeypatch.setattr(driver, "current_device", lambda: 0)
    return rec


def _kernarg(plan: cuda.LaunchPlan) -> bytes:
    return ctypes.string_at(plan.buffer, plan.struct.size)


def test_one_plan_per_signature_and_the_bytes_at_the_metadata_offsets(recorder: Recorder) -> None:
    kernel = tiledsl.load(COPY).compile(target="sm_90").launcher()
    x, y = DeviceArray((40, 64), ptr=0x10000), DeviceArray((40, 64), ptr=0x20000)
    kernel(X=x, Y=y, alpha=0.5, flag=True, unused=3, stream=7)
    kernel(X=x, Y=DeviceArray((40, 64), ptr=0x30000), alpha=2.0, flag=False, unused=3, stream=7)
    assert len(kernel._plans) == 1 and recorder.loads == [("copy", 0)]
    (plan,) = kernel._plans.values()
    fn, grid, threads, stream, params = recorder.launches[-1]
    assert (fn, grid, threads, stream) == ("fn:copy", (3, 1, 1), 32, 7)
    offsets = {a["name"]: a["offset"] for a in kernel.artifact.meta["args"]}
    raw = _kernarg(plan)
    assert struct.unpack_from("<Q", raw, offsets["X"])[0] == 0x10000
    assert struct.unpack_from("<Q", raw, offsets["Y"])[0] == 0x30000
    assert struct.unpack_from("<f", raw, offsets["alpha"])[0] == 2.0
    assert struct.unpack_from("<i", raw, offsets["flag"])[0] == 0
    assert struct.unpack_from("<ii", raw, offsets["M"]) == (40, 64)
    # the void*[] points at each argument's slot
    slots = (ctypes.c_void_p * len(offsets)).from_address(params)
    assert [s - ctypes.addressof(plan.buffer) for s in slots] == sorted(offsets.values())
    kernel(X=DeviceArray((17, 64)), Y=DeviceArray((17, 64)), alpha=1.0, flag=True, unused=0)
    assert len(kernel._plans) == 2 and recorder.launches[-1][1] == (2, 1, 1)


def test_the_slow_path_names_the_mistake(recorder: Recorder) -> None:
    kernel = tiledsl.load(COPY).compile(target="sm_90").launcher()
    x, y = DeviceArray((40, 64)), DeviceArray((40, 64))
    with pytest.raises(LaunchError, match="missing argument 'alpha'"):
        kernel(X=x, Y=y, flag=True, unused=0)
    with pytest.raises(LaunchError, match="'copy' has no parameter 'beta'"):
        kernel(X=x, Y=y, alpha=1.0, flag=True, beta=2)
    with pytest.raises(LaunchError, match="dim M is 40 elsewhere but 41 in 'Y'"):
        kernel(X=x, Y=DeviceArray((41, 64)), alpha=1.0, flag=True, unused=0)
    with pytest.raises(LaunchError, match=r"'alpha' is a scalar f32 parameter; 'x' does not fit it"):
        kernel(X=x, Y=y, alpha="x", flag=True, unused=0)
    with pytest.raises(LaunchError, match="'Y' starts at 0x1002, not aligned"):
        kernel(X=x, Y=DeviceArray((40, 64), ptr=0x1002), alpha=1.0, flag=True, unused=0)
    with pytest.raises(LaunchError, match="different devices: 'X' on cuda:0, 'Y' on cuda:1"):
        kernel(X=DeviceArray((40, 64), device=Device(0)), Y=DeviceArray((40, 64), device=Device(1)),
               alpha=1.0, flag=True, unused=0)
    with pytest.raises(LaunchError, match="'X' is not contiguous .* compiled for a dense 'X'"):
        kernel(X=DeviceArray((40, 64), strides=(512, 4)), Y=y, alpha=1.0, flag=True, unused=0)
    assert recorder.launches == []


def test_cpu_tensors_are_refused_for_a_gpu_launch(recorder: Recorder) -> None:
    torch = pytest.importorskip("torch")
    launcher = tiledsl.load(COPY).launcher(target="sm_90", interpret=False)
    x = torch.zeros(40, 64)
    with pytest.raises(tiledsl.ArgumentError, match="'X' is a CPU tensor; a GPU launch needs CUDA tensors"):
        launcher(X=x, Y=x.clone(), alpha=1.0, flag=True, unused=0)
    assert recorder.launches == []


def _bnhd(b: int, n: int, h: int, d: int, ptr: int = 1 << 20) -> DeviceArray:
    """A [B, H, N, D] f16 view of [B, N, H, D] storage (strides in bytes)."""
    return DeviceArray((b, h, n, d), "<f2", ptr, (n * h * d * 2, d * 2, h * d * 2, 2))


def test_strided_views_compile_the_strided_specialisation(recorder: Recorder) -> None:
    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90", interpret=False)
    q = _bnhd(2, 77, 3, 64)
    dense = DeviceArray((2, 3, 77, 64), "<f2")
    lse = DeviceArray((2, 3, 77), "<f4")
    launcher(Q=q, K=q, V=q, O=dense, L=lse, scale=0.125, stream=0)
    kernel = next(iter(launcher._kernels.values()))
    assert kernel.strided == frozenset("QKV") and kernel.artifact.params["D"] == 64
    (plan,) = launcher._plans.values()
    raw = _kernarg(plan)
    strides = [a for a in kernel.artifact.meta["args"] if a["kind"] == "stride"]
    assert [(a["name"], a["axis"], struct.unpack_from("<q", raw, a["offset"])[0]) for a in strides if a["name"] == "Q"] \
        == [("Q", 0, 77 * 3 * 64), ("Q", 1, 64), ("Q", 2, 3 * 64)]
    # a dense call takes the dense kernel, compiled separately
    launcher(Q=dense, K=dense, V=dense, O=dense, L=lse, scale=0.125, stream=0)
    assert {k.strided for k in launcher._kernels.values()} == {frozenset("QKV"), frozenset()}


def test_strides_that_break_vector_accesses_are_refused(recorder: Recorder) -> None:
    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90", interpret=False)
    dense = DeviceArray((1, 2, 48, 64), "<f2")
    lse = DeviceArray((1, 2, 48), "<f4")
    odd = DeviceArray((1, 2, 48, 64), "<f2", strides=(2 * 48 * 66 * 2, 48 * 66 * 2, 66 * 2, 2))
    with pytest.raises(LaunchError, match="'K' has stride 66 along dim 2: its 132 bytes break the kernel's "
                                          "16-byte vector accesses"):
        launcher(Q=dense, K=odd, V=dense, O=dense, L=lse, scale=0.1)
    columns = DeviceArray((1, 2, 48, 64), "<f2", strides=(2 * 48 * 64 * 2, 48 * 64 * 2, 2, 48 * 2))
    with pytest.raises(LaunchError, match="'V' has stride 48 along its last dim"):
        launcher(Q=dense, K=dense, V=columns, O=dense, L=lse, scale=0.1)


def test_the_grid_function_reads_scalars_per_call(recorder: Recorder) -> None:
    source = """
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
    kernel = tiledsl.load(source).compile(target="sm_90").launcher()
    arrays = {"X": DeviceArray((70,)), "Cu": DeviceArray((4,), "<i4"), "Y": DeviceArray((70,))}
    kernel(**arrays, max_seqlen=33, stream=0)
    kernel(**arrays, max_seqlen=70, stream=0)
    assert [g for _, g, *_ in recorder.launches] == [(3, 3, 1), (5, 3, 1)] and len(kernel._plans) == 1
    kernel(**arrays, max_seqlen=0, stream=0)            # an empty grid launches nothing
    assert len(recorder.launches) == 2


def test_host_time_of_a_launch(recorder: Recorder) -> None:
    """The per-call work in Python (the driver call replaced by a no-op recorder): far below the
    10 µs goal on a quiet machine; the bound allows for a loaded CI machine."""
    kernel = tiledsl.load(ATTENTION, params={"D": 64}).compile(target="sm_90").launcher()
    q = DeviceArray((1, 2, 77, 64), "<f2")
    args = {"Q": q, "K": q, "V": q, "O": q, "L": DeviceArray((1, 2, 77), "<f4"), "scale": 0.125}
    kernel(**args, stream=0)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            kernel(**args, stream=0)
        times.append((time.perf_counter() - start) / 200)
    assert min(times) < 100e-6, f"{min(times) * 1e6:.1f} µs per launch"


def test_the_tuning_hook_picks_the_tile_parameters(recorder: Recorder) -> None:
    seen = []

    def tuned(prog: tiledsl.Program, dims: dict[str, int]) -> dict[str, int]:
        seen.append((prog.params.get("D"), dims["N"]))
        return {"BM": 64} if dims["N"] < 100 else {}

    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90", interpret=False, tuned=tuned)
    small, large = DeviceArray((1, 2, 77, 64), "<f2"), DeviceArray((1, 2, 300, 64), "<f2")
    launcher(Q=small, K=small, V=small, O=small, L=DeviceArray((1, 2, 77), "<f4"), scale=0.1, stream=0)
    launcher(Q=large, K=large, V=large, O=large, L=DeviceArray((1, 2, 300), "<f4"), scale=0.1, stream=0)
    assert seen == [(64, 77), (64, 300)]          # the program bound D from the shapes
    assert sorted(k.artifact.params["BM"] for k in launcher._kernels.values()) == [64, 128]
    assert [g for _, g, *_ in recorder.launches] == [(2, 2, 1), (3, 2, 1)]
