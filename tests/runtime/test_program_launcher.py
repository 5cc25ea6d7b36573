"""``program.launcher(target)``: the launcher binds from the arrays what ``interpret`` binds (an
unbound const from the shapes, a dtype parameter from the dtypes) and compiles each
specialisation once. No GPU needed: arrays are stand-ins exposing ``__cuda_array_interface__``
and nothing is launched (``kernel_for`` and ``prepare`` only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tiledsl
from tiledsl.runtime.cuda import LaunchError

ATTENTION = Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl"
SPLIT = Path(__file__).resolve().parents[2] / "tests" / "frontend" / "programs" / "split_rowsum.tdsl"


@dataclass
class DeviceArray:
    shape: tuple[int, ...]
    typestr: str

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"data": (4096, False), "shape": self.shape, "strides": None, "typestr": self.typestr,
                "version": 3}


def _qkvo(typestr: str, d: int = 64, n: int = 77) -> dict[str, DeviceArray]:
    return {name: DeviceArray((1, 2, n, d), typestr) for name in "QKVO"}


def test_the_arrays_bind_t_and_d_and_each_specialisation_compiles_once() -> None:
    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90")
    bf16 = launcher.kernel_for(_qkvo("<V2"))                  # PyTorch's bfloat16
    assert [p.dtype for p in bf16.artifact.tensor_params] == ["bf16"] * 4
    assert bf16.artifact.params["D"] == 64 and "bf16" in bf16.artifact.asm
    f16 = launcher.kernel_for(_qkvo("<f2"))
    assert [p.dtype for p in f16.artifact.tensor_params] == ["f16"] * 4
    assert f16 is not bf16 and launcher.kernel_for(_qkvo("<f2")) is f16
    d32 = launcher.kernel_for(_qkvo("<f2", d=32))
    assert d32.artifact.params["D"] == 32
    grid, _ = bf16.prepare({**_qkvo("<V2"), "scale": 0.125})
    assert grid == (1, 2, 1)


def test_params_fix_t_and_the_arrays_must_fit_it() -> None:
    launcher = tiledsl.load(ATTENTION, params={"T": "bf16"}).launcher(target="sm_90")
    kernel = launcher.kernel_for(_qkvo("<u2"))               # bf16 bit patterns (CuPy) fit a fixed bf16
    assert [p.dtype for p in kernel.artifact.tensor_params] == ["bf16"] * 4
    with pytest.raises(LaunchError, match=r"'Q' is bf16 but the array is <f2"):
        kernel.prepare({**_qkvo("<f2"), "scale": 0.125})


def test_arrays_of_two_dtypes_are_refused() -> None:
    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90")
    with pytest.raises(LaunchError, match="dtype T is taken from the arrays, but 'Q' is f16 and 'O' is bf16"):
        launcher.kernel_for({**_qkvo("<f2"), "O": DeviceArray((1, 2, 77, 64), "<V2")})
    with pytest.raises(LaunchError, match="missing argument 'V'"):
        launcher.kernel_for({name: DeviceArray((1, 2, 77, 64), "<f2") for name in "QKO"})


def test_a_kernel_of_a_file_of_several() -> None:
    mod = tiledsl.load(SPLIT)
    with pytest.raises(tiledsl.ArgumentError, match="has 2 kernels"):
        mod.launcher(target="sm_90")
    launcher = mod.kernels["combine"].launcher(target="sm_90")
    kernel = launcher.kernel_for({"P": DeviceArray((3, 100), "<f4"), "Y": DeviceArray((100,), "<f2")})
    assert kernel.artifact.name == "combine"
    assert [p.dtype for p in kernel.artifact.tensor_params] == ["f32", "f16"]


def test_bound_checks_the_arguments_once_up_front() -> None:
    """``bound`` checks as a call does, before anything is launched; an empty grid binds to a
    function that launches nothing (no GPU touched)."""
    launcher = tiledsl.load(ATTENTION).launcher(target="sm_90")
    with pytest.raises(LaunchError, match="missing argument 'scale'"):
        launcher.bound(**_qkvo("<f2"))
    launch = launcher.bound(**_qkvo("<f2", n=0), scale=0.125)
    assert launch() is None
