"""Argument sizes refused before anything is copied: a tensor dim over 2^31-1 (dims are 32-bit
kernel arguments; a tensor of more elements than that is fine, addresses are 64-bit), and shapes
whose interpreter copies would not fit in memory — through ``interpret``, ``tdslc run`` and the
CUDA launcher, at once and with a clear message."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.cli import main
from tiledsl.interp import limits
from tiledsl.interp.limits import MAX_DIM

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOFTMAX = EXAMPLES / "softmax.tdsl"
FAST_S = 20.0    # generous, so that a loaded CI machine does not flake


def _huge(shape: tuple[int, ...]) -> np.ndarray:
    """A writeable f32 array of ``shape`` that takes 4 bytes: every element is the same one."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape), writeable=True)


def test_a_dim_over_2_to_the_31_is_refused_at_its_parameter() -> None:
    prog = tiledsl.load(SOFTMAX)
    shape = (1, 2**31)
    start = time.perf_counter()
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(X=_huge(shape), Y=_huge(shape))
    assert time.perf_counter() - start < FAST_S
    err = info.value
    assert err.message == (f"tensor 'X' of shape [1, 2147483648] has N=2147483648; kernels take dims as 32-bit "
                           f"integers, so a dim may be at most {MAX_DIM} (2^31-1)")
    assert err.diagnostics[0].notes == ["a tensor may have more than 2^31 elements in all: split the dim in two"]
    assert (err.loc.line, err.loc.col) == (4, 16)        # X: f32[M, N]
    assert "kernel softmax(X: f32[M, N]" in err.format()


def test_a_tensor_over_2_to_the_31_elements_is_only_checked_against_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    prog = tiledsl.load(SOFTMAX)
    shape = (65536, 32769)                    # 2^31 + 2^16 elements, every dim in range
    monkeypatch.setattr(limits, "available_memory", lambda: 2**30)
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(X=_huge(shape), Y=_huge(shape))
    assert info.value.message.startswith("interpreting these shapes needs about 50.0 GiB of memory")


def test_arguments_are_refused_when_their_copies_do_not_fit_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    m, n = 300, 200
    # X: its f32 copy and a temporary; Y: the same, write counts, coverage mask, the copy back.
    need = m * n * (4 + 4) + m * n * (4 + 4 + 4 + 1 + 4)
    prog = tiledsl.load(SOFTMAX)
    x = np.random.default_rng(0).standard_normal((m, n)).astype(np.float32)
    monkeypatch.setattr(limits, "available_memory", lambda: need - 1)
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(X=x, Y=np.zeros_like(x))
    assert info.value.message == ("interpreting these shapes needs about 1.4 MiB of memory for the arguments "
                                  "alone, and 1.4 MiB is available")
    assert (info.value.loc.line, info.value.loc.col) == (4, 8)       # the kernel's name
    monkeypatch.setattr(limits, "available_memory", lambda: need)
    y = np.zeros_like(x)
    assert prog.interpret(X=x, Y=y).ok
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_tdslc_run_refuses_a_huge_tensor_before_making_it(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(limits, "available_memory", lambda: 2**34)
    start = time.perf_counter()
    assert main(["run", str(SOFTMAX), "--shape", "M=100000,N=100000"]) == 1
    assert time.perf_counter() - start < FAST_S
    err = capsys.readouterr().err
    assert f"{SOFTMAX}:4:8: error: interpreting these shapes needs about " in err
    assert "Traceback" not in err


def test_tdslc_run_refuses_inputs_that_do_not_fit_in_memory_before_making_them(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(limits, "available_memory", lambda: 2**30)
    start = time.perf_counter()
    # 2^26 elements a tensor: X drawn in f64 (512 MiB) and kept in f32 (256 MiB), Y (256 MiB), and
    # the interpreter's 25 bytes an element pair (1.6 GiB): 2.6 GiB.
    assert main(["run", str(SOFTMAX), "--shape", "M=8192,N=8192"]) == 1
    assert time.perf_counter() - start < FAST_S
    err = capsys.readouterr().err
    assert "error: interpreting these shapes needs about 2.6 GiB of memory for the arguments alone, and " \
           "1.0 GiB is available" in err


class _FakeGpuArray:
    """Just what the launcher reads of a CuPy array: its CUDA array interface."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.__cuda_array_interface__ = {"data": (1 << 20, False), "shape": shape, "strides": None,
                                         "typestr": "<f4", "version": 3}


def test_the_launcher_refuses_a_dim_over_2_to_the_31_but_not_a_tensor_of_more_elements() -> None:
    from tiledsl.runtime.cuda import LaunchError
    kernel = tiledsl.load(SOFTMAX).compile(target="sm_90").launcher()
    shape = (1, 2**31)
    with pytest.raises(LaunchError, match=r"'X' of shape \[1, 2147483648\] has N=2147483648; the kernel takes "
                                          r"dims as 32-bit integers, so at most 2147483647 \(2\^31-1\) each"):
        kernel.prepare({"X": _FakeGpuArray(shape), "Y": _FakeGpuArray(shape)})
    grid, args = kernel.prepare({"X": _FakeGpuArray((65536, 32769)), "Y": _FakeGpuArray((65536, 32769))})
    assert grid == (65536 // 16, 1, 1)
    dims = [a for a in kernel.artifact.meta["args"] if a["kind"] == "dim"]
    assert [struct.unpack_from("<i", args, a["offset"])[0] for a in dims] == [65536, 32769]
