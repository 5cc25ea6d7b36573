"""``tiledsl.runtime.driver`` against a stand-in of ``cuda.bindings.driver`` (no GPU needed): the
module loads into the device's primary context and the caller's context comes back, large
dynamic LDS is opted in, a launch from a thread without a context retries once in the primary
context, and a failed call says which call and which error."""

from __future__ import annotations

import enum
from types import SimpleNamespace
from typing import Any

import pytest

from tiledsl.runtime import driver


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_INVALID_CONTEXT = 201


class Handle(int):
    """A driver handle: an int (``int(ctx)`` is its address, 0 for none)."""


class FakeDriver:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.current = Handle(0x111)
        self.launch_results = [CUresult.CUDA_SUCCESS]
        self.CUresult = CUresult
        self.CUfunction_attribute = SimpleNamespace(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8)

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> tuple:
            self.calls.append((name, *args))
            results = {"cuDeviceGet": lambda: Handle(args[0]),
                       "cuDevicePrimaryCtxRetain": lambda: Handle(0x900 + int(args[0])),
                       "cuModuleLoadData": lambda: Handle(0x500),
                       "cuModuleGetFunction": lambda: Handle(0x600),
                       "cuGetErrorName": lambda: b"CUDA_ERROR_INVALID_VALUE"}
            return (CUresult.CUDA_SUCCESS, results[name]()) if name in results else (CUresult.CUDA_SUCCESS,)
        return call

    def cuCtxGetCurrent(self) -> tuple:
        return CUresult.CUDA_SUCCESS, self.current

    def cuCtxSetCurrent(self, ctx: Handle) -> tuple:
        self.calls.append(("cuCtxSetCurrent", int(ctx)))
        self.current = ctx
        return (CUresult.CUDA_SUCCESS,)

    def cuLaunchKernel(self, *args: Any) -> tuple:
        self.calls.append(("cuLaunchKernel", *args))
        return (self.launch_results.pop(0),)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDriver:
    d = FakeDriver()
    monkeypatch.setattr(driver, "cu", lambda: d)
    monkeypatch.setattr(driver, "_success", lambda: CUresult.CUDA_SUCCESS)
    driver.primary_context.cache_clear()
    yield d
    driver.primary_context.cache_clear()


def test_load_in_the_primary_context_and_restore_the_callers(fake: FakeDriver) -> None:
    module, fn = driver.load_function(b"ptx\0", "attention", 100 * 1024, 1)
    assert (int(module), int(fn)) == (0x500, 0x600)
    names = [c[0] for c in fake.calls]
    assert names == ["cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", "cuModuleLoadData",
                     "cuModuleGetFunction", "cuFuncSetAttribute", "cuCtxSetCurrent"]
    assert fake.calls[2] == ("cuCtxSetCurrent", 0x901) and fake.calls[-1] == ("cuCtxSetCurrent", 0x111)
    assert fake.calls[4] == ("cuModuleGetFunction", 0x500, b"attention")
    assert fake.calls[5][1:] == (0x600, 8, 100 * 1024)     # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES


def test_small_lds_needs_no_opt_in(fake: FakeDriver) -> None:
    driver.load_function(b"ptx\0", "k", 48 * 1024, 0)
    assert "cuFuncSetAttribute" not in [c[0] for c in fake.calls]


def test_a_launch_without_a_context_retries_in_the_primary_one(fake: FakeDriver) -> None:
    fake.launch_results = [CUresult.CUDA_ERROR_INVALID_CONTEXT, CUresult.CUDA_SUCCESS]
    driver.launch(Handle(0x600), (4, 2, 1), 128, 4096, 7, 0x1234, 0)
    launches = [c for c in fake.calls if c[0] == "cuLaunchKernel"]
    assert len(launches) == 2
    assert launches[1][1:] == (0x600, 4, 2, 1, 128, 1, 1, 4096, 7, 0x1234, 0)
    assert ("cuCtxSetCurrent", 0x900) in fake.calls


def test_a_failed_launch_names_the_call_and_error(fake: FakeDriver) -> None:
    fake.launch_results = [CUresult.CUDA_ERROR_INVALID_VALUE]
    with pytest.raises(driver.DriverError, match=r"cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE \(1\)"):
        driver.launch(Handle(0x600), (1, 1, 1), 32, 0, 0, 0, 0)
