"""Argument sizes refused before anything is copied: a tensor over 2^31-1 elements (kernels
index with 32-bit integers), and shapes whose interpreter copies would not fit in memory —
through ``interpret``, ``tdslc run`` and the CUDA launcher, at once and with a clear message."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.cli import main
from tiledsl.interp import limits
from tiledsl.interp.limits import MAX_TENSOR_ELEMENTS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOFTMAX = EXAMPLES / "softmax.tdsl"
FAST_S = 20.0    # generous, so that a loaded CI machine does not flake


def _huge(shape: tuple[int, ...]) -> np.ndarray:
    """A writeable f32 array of ``shape`` that takes 4 bytes: every element is the same one."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape), writeable=True)


def test_a_tensor_over_2_to_the_31_elements_is_refused_at_its_parameter() -> None:
    prog = tiledsl.load(SOFTMAX)
    shape = (65536, 32769)                    # 2^31 + 2^16 elements
    start = time.perf_counter()
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(X=_huge(shape), Y=_huge(shape))
    assert time.perf_counter() - start < FAST_S
    err = info.value
    assert err.message == (f"tensor 'X' of shape [65536, 32769] has {65536 * 32769} elements; kernels index "
                           f"tensors with 32-bit integers, so a tensor may have at most {MAX_TENSOR_ELEMENTS} "
                           "(2^31-1)")
    assert (err.loc.line, err.loc.col) == (4, 16)        # X: f32[M, N]
    assert "kernel softmax(X: f32[M, N]" in err.format()


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


def test_tdslc_run_refuses_a_tensor_over_2_to_the_31_before_making_it(capsys: pytest.CaptureFixture) -> None:
    start = time.perf_counter()
    assert main(["run", str(SOFTMAX), "--shape", "M=100000,N=100000"]) == 1
    assert time.perf_counter() - start < FAST_S
    err = capsys.readouterr().err
    assert f"{SOFTMAX}:4:16: error: tensor 'X' of shape [100000, 100000] has 10000000000 elements" in err
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


def test_the_launcher_refuses_a_tensor_over_2_to_the_31_elements() -> None:
    from tiledsl.runtime.cuda import LaunchError
    kernel = tiledsl.load(SOFTMAX).compile(target="sm_90").launcher()
    shape = (65536, 32769)
    with pytest.raises(LaunchError, match=r"'X' of shape \[65536, 32769\] has 2147549184 elements; the kernel "
                                          r"indexes tensors with 32-bit integers, so at most 2147483647"):
        kernel.prepare({"X": _FakeGpuArray(shape), "Y": _FakeGpuArray(shape)})
    grid, _ = kernel.prepare({"X": _FakeGpuArray((65536, 32767)), "Y": _FakeGpuArray((65536, 32767))})
    assert grid == (65536 // 16, 1, 1)
