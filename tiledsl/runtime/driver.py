"""The CUDA driver calls of a launch, through cuda-python's ``cuda.bindings.driver``.

Why cuda-python and not CuPy or ``cuda.core``: a launch here is one ``cuLaunchKernel`` whose
``kernelParams`` is the address of a ``void*[]`` built once per launch plan (it points into a
kernarg buffer the plan packs with ``struct.pack_into``). ``cuda.bindings`` passes an int
``kernelParams`` straight through (its Cython wrapper converts nothing else per call), while
CuPy's ``RawKernel.__call__`` and ``cuda.core.launch`` inspect and box every argument on every
call (microseconds per argument). The module is loaded into the device's primary context — the
one PyTorch's and CuPy's runtime calls use — so a loaded function runs on their streams.
"""

from __future__ import annotations

from functools import cache
from typing import Any


class DriverError(RuntimeError):
    """A CUDA driver call failed (not a user mistake: the message names the call and the error)."""


@cache
def cu() -> Any:
    """The ``cuda.bindings.driver`` module (cuda-python ≥ 12.6; ``cuda.cuda`` before), initialised."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python < 12.6
        except ImportError:
            raise ImportError("launching on an NVIDIA GPU needs cuda-python: pip install 'tiledsl[gpu]' "
                              "(or run the interpreter instead: TDSL_INTERPRET=1)") from None
    err, = driver.cuInit(0)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise DriverError(f"cuInit failed ({int(err)}): no usable NVIDIA driver or device")
    return driver


def check(result: tuple, call: str) -> Any:
    """The values a driver call returned after its CUresult; raise DriverError if it failed."""
    err, *rest = result
    if err != _success():
        name = cu().cuGetErrorName(err)[1]
        raise DriverError(f"{call} failed: {name.decode() if isinstance(name, bytes) else name} ({int(err)})")
    return rest[0] if len(rest) == 1 else tuple(rest)


@cache
def _success() -> Any:
    return cu().CUresult.CUDA_SUCCESS


@cache
def primary_context(device: int) -> Any:
    """The primary context of CUDA device ``device`` (retained for the process's lifetime)."""
    d = cu()
    return check(d.cuDevicePrimaryCtxRetain(check(d.cuDeviceGet(device), "cuDeviceGet")),
                 "cuDevicePrimaryCtxRetain")


def current_device() -> int | None:
    """The device of the calling thread's current context, None without one."""
    d = cu()
    ctx = check(d.cuCtxGetCurrent(), "cuCtxGetCurrent")
    if not int(ctx):
        return None
    return int(check(d.cuCtxGetDevice(), "cuCtxGetDevice"))


def load_function(image: bytes, name: str, dynamic_lds: int, device: int) -> tuple[Any, Any]:
    """Load a PTX (NUL-terminated) or cubin image into ``device``'s primary context; return the
    module (kept alive by the caller) and the kernel ``name``. The calling thread's current context
    is restored afterwards."""
    d = cu()
    previous = check(d.cuCtxGetCurrent(), "cuCtxGetCurrent")
    check(d.cuCtxSetCurrent(primary_context(device)), "cuCtxSetCurrent")
    try:
        module = check(d.cuModuleLoadData(image), "cuModuleLoadData")
        fn = check(d.cuModuleGetFunction(module, name.encode()), "cuModuleGetFunction")
        if dynamic_lds > 48 * 1024:
            # Above 48 KiB a kernel must opt in to its dynamic shared memory.
            attr = d.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            check(d.cuFuncSetAttribute(fn, attr, dynamic_lds), "cuFuncSetAttribute")
    finally:
        if int(previous):
            check(d.cuCtxSetCurrent(previous), "cuCtxSetCurrent")
    return module, fn


def launch(fn: Any, grid: tuple[int, int, int], threads: int, lds: int, stream: int, params: int,
           device: int) -> None:
    """``cuLaunchKernel`` with a prepared ``void*[]`` at address ``params``. A thread with no
    current context (one PyTorch never ran CUDA on) gets ``device``'s primary context, once."""
    d = cu()
    err, = d.cuLaunchKernel(fn, grid[0], grid[1], grid[2], threads, 1, 1, lds, stream, params, 0)
    if err == _success():
        return
    if err == d.CUresult.CUDA_ERROR_INVALID_CONTEXT:
        check(d.cuCtxSetCurrent(primary_context(device)), "cuCtxSetCurrent")
        err, = d.cuLaunchKernel(fn, grid[0], grid[1], grid[2], threads, 1, 1, lds, stream, params, 0)
    check((err,), "cuLaunchKernel")
