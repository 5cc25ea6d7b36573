"""Launch compiled kernels on an NVIDIA GPU.

    kernel = program.compile(target="sm_90").launcher()
    kernel(Q=q, K=k, V=v, O=o, scale=0.125)           # CuPy or PyTorch arrays, by name
    kernel = program.launcher(target="sm_90")          # binds consts and dtypes from the arrays
    kernel(Q=q_bf16, K=k_bf16, V=v_bf16, O=o_bf16, scale=0.125)

Arrays may be anything exposing ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors,
Numba) or DLPack (converted through CuPy). The launcher checks dtypes, ranks, contiguity
and the compile-time dims, derives the run-time dims from the shapes, computes the grid,
and launches the PTX through CuPy's driver bindings (the module is loaded once, with
the dynamic shared memory the kernel needs opted in above 48 KiB). A program's launcher
(:class:`ProgramLauncher`) first binds from the arrays what ``interpret`` binds — unbound
consts from the shapes, dtype parameters from the dtypes — and compiles each specialisation once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError
from tiledsl.interp.limits import MAX_DIM
from tiledsl.interp.numerics import STORAGE, round_to, to_bits
from tiledsl.ir.types import DTYPE_BYTES, FP8_DTYPES

#: The array interface type strings a tensor of each dtype takes: bf16 and fp8 also as raw bits
#: (CuPy has neither type); PyTorch's fp8 tensors by their dtype's name (no type string exists).
_TYPESTR = {"f16": ("<f2",), "bf16": ("<V2", "<u2", "<i2"), "f32": ("<f4",), "i32": ("<i4",),
            "f8e4m3": ("torch.float8_e4m3fn", "|u1", "|i1", "|V1", "<V1"),
            "f8e5m2": ("torch.float8_e5m2", "|u1", "|i1", "<f1"), "i8": ("|i1",), "u8": ("|u1",),
            "i16": ("<i2",), "u32": ("<u4",), "i64": ("<i8",)}
#: The dtype a tensor's own type string binds a dtype parameter to (bf16: PyTorch's).
_DTYPE_OF_TYPESTR = {typestrs[0]: dtype for dtype, typestrs in _TYPESTR.items()}
_TORCH = {"f16": "torch.float16", "bf16": "torch.bfloat16", "f32": "torch.float32", "i32": "torch.int32",
          "f8e4m3": "torch.float8_e4m3fn (or uint8 bits)", "f8e5m2": "torch.float8_e5m2 (or uint8 bits)",
          "i8": "torch.int8", "u8": "torch.uint8", "i16": "torch.int16", "u32": "torch.uint32", "i64": "torch.int64"}
_SCALAR = {"f32": np.float32, "i32": np.int32, "f16": np.float16, "i1": np.int32, "i8": np.int8, "u8": np.uint8,
           "i16": np.int16, "u32": np.uint32, "i64": np.int64}


class LaunchError(ValueError):
    """An argument does not fit the kernel (a user mistake, reported without a traceback)."""


_TORCH_TYPESTR = {"torch.float16": "<f2", "torch.bfloat16": "<V2", "torch.float32": "<f4", "torch.int32": "<i4",
                  "torch.int8": "|i1", "torch.uint8": "|u1", "torch.int16": "<i2", "torch.uint32": "<u4",
                  "torch.int64": "<i8"}
_DLPACK_CUDA = (2, 13)     # kDLCUDA, kDLCUDAManaged


def _interface(x: Any, name: str) -> dict[str, Any]:
    """Pointer, shape, byte strides and typestr of a GPU array, as a CUDA array interface."""
    module = type(x).__module__
    if module.startswith("torch") and hasattr(x, "data_ptr"):
        # PyTorch does not export bf16 through __cuda_array_interface__: read the tensor itself.
        if not x.is_cuda:
            raise LaunchError(f"'{name}' is a CPU tensor; move it to the GPU with .cuda()")
        size = x.element_size()
        return {"data": (x.data_ptr(), False), "shape": tuple(x.shape),
                "strides": tuple(st * size for st in x.stride()),
                "typestr": _TORCH_TYPESTR.get(str(x.dtype), str(x.dtype))}
    if hasattr(x, "__cuda_array_interface__"):
        return x.__cuda_array_interface__
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__") and x.__dlpack_device__()[0] in _DLPACK_CUDA:
        import cupy
        return cupy.from_dlpack(x).__cuda_array_interface__
    raise LaunchError(f"'{name}' must be a GPU array (CuPy, PyTorch CUDA tensor or DLPack on a CUDA device), "
                      f"got {type(x).__name__}")


def _contiguous(iface: dict[str, Any], itemsize: int) -> bool:
    strides = iface.get("strides")
    if strides is None:
        return True
    expect, s = [], itemsize
    for d in reversed(iface["shape"]):
        expect.append(s)
        s *= d
    return tuple(strides) == tuple(reversed(expect)) or int(np.prod(iface["shape"])) <= 1


def _scalar(name: str, dtype: str, value: Any) -> np.generic:
    """A scalar argument as the kernel ABI passes it: fp8 and bf16 as their bits (rounded as a
    cast rounds), i1 as an i32, integers in range of their dtype."""
    if dtype in FP8_DTYPES or dtype == "bf16":
        return to_bits(round_to(np.asarray(float(value), np.float32), dtype), dtype)[()]
    if dtype in ("i8", "u8", "i16", "u32", "i64"):
        info = np.iinfo(STORAGE[dtype])
        if not info.min <= int(value) <= info.max:
            raise LaunchError(f"'{name}' is {dtype} but {value} is outside [{info.min}, {info.max}]")
    return _SCALAR[dtype](value)


def grid_value(expr: str, dims: dict[str, int]) -> int:
    """Evaluate a grid expression of the launch metadata (C integer syntax) with these values of
    its names (dims, compile-time parameters, i32 scalar arguments)."""
    py = expr.replace("/", "//")
    return int(eval(py, {"__builtins__": {}, "max": max, "min": min}, dict(dims)))


class CudaKernel:
    """A compiled kernel, callable with GPU arrays by parameter name."""

    def __init__(self, artifact: Any) -> None:
        self.artifact = artifact
        self._function = None

    def _load(self) -> Any:
        if self._function is None:
            import cupy
            module = cupy.cuda.function.Module()
            try:
                module.load(self.artifact.image())
            except cupy.cuda.driver.CUDADriverError:   # a cubin of a ptxas newer than the driver
                module.load(self.artifact.asm.encode())
            fn = module.get_function(self.artifact.name)
            if self.artifact.lds_bytes > 48 * 1024:
                # Above 48 KiB a kernel must opt in to its dynamic shared memory (cuFuncSetAttribute,
                # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8).
                from cupy.cuda import driver
                attr = getattr(driver, "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", 8)
                driver.funcSetAttribute(fn.ptr, attr, self.artifact.lds_bytes)
            self._module, self._function = module, fn
        return self._function

    def prepare(self, args: dict[str, Any]) -> tuple[tuple[int, int, int], list[Any]]:
        """Check the arguments; return the grid and the launch argument list."""
        meta = self.artifact.meta
        params = meta["params"]
        dims: dict[str, int] = {}
        kernel_args: list[Any] = []
        tensors = [a for a in meta["args"] if a["kind"] == "tensor"]
        known = {a["name"] for a in meta["args"] if a["kind"] != "dim"}
        for name in args:
            if name not in known:
                raise LaunchError(f"'{self.artifact.name}' has no parameter '{name}' "
                                  f"(it has: {', '.join(sorted(known))})")
        decl = {p.name: p for p in self.artifact.tensor_params}
        for a in tensors:
            name = a["name"]
            if name not in args:
                raise LaunchError(f"missing argument '{name}'")
            iface = _interface(args[name], name)
            p = decl[name]
            if iface["typestr"] not in _TYPESTR[p.dtype]:
                raise LaunchError(f"'{name}' is {p.dtype} but the array is {iface['typestr']} "
                                  f"({getattr(args[name], 'dtype', '?')}); expected {_TORCH[p.dtype]} or equivalent")
            shape = tuple(iface["shape"])
            if len(shape) != len(p.dims):
                raise LaunchError(f"'{name}' must have {len(p.dims)} dims {p.dims}, got shape {shape}")
            if not _contiguous(iface, DTYPE_BYTES[p.dtype]):
                raise LaunchError(f"'{name}' must be contiguous (row-major)")
            for d, n in zip(p.dims, shape):
                if n > MAX_DIM:
                    raise LaunchError(f"'{name}' of shape {list(shape)} has {d}={n}; the kernel takes dims as "
                                      f"32-bit integers, so at most {MAX_DIM} (2^31-1) each")
            for d, n in zip(p.dims, shape):
                want = d if isinstance(d, int) else params.get(d)
                if want is not None and int(want) != n:
                    raise LaunchError(f"'{name}' has {d}={n} but the kernel was compiled for {d}={want}")
                if isinstance(d, str) and want is None:
                    if d in dims and dims[d] != n:
                        raise LaunchError(f"dim {d} is {dims[d]} elsewhere but {n} in '{name}'")
                    dims[d] = int(n)
        for a in meta["args"]:
            if a["kind"] == "tensor":
                kernel_args.append(np.uint64(_interface(args[a["name"]], a["name"])["data"][0]))
            elif a["kind"] == "scalar":
                if a["name"] not in args:
                    raise LaunchError(f"missing argument '{a['name']}'")
                kernel_args.append(_scalar(a["name"], a["dtype"], args[a["name"]]))
            else:
                if a["name"] not in dims:
                    raise LaunchError(f"no tensor gives the size of dim '{a['name']}'")
                kernel_args.append(np.int32(dims[a["name"]]))
        # The grid may read i32 scalar parameters (``grid (cdiv(max_seqlen, BM))``), by name.
        ints = {a["name"]: int(args[a["name"]]) for a in meta["args"]
                if a["kind"] == "scalar" and a["dtype"] == "i32" and a["name"] in args}
        grid = [grid_value(g, {**dims, **{k: v for k, v in params.items() if isinstance(v, int)}, **ints})
                for g in meta["grid"]]
        for axis, n in enumerate(grid):
            if n < 0:
                raise LaunchError(f"grid axis {axis} has extent {n} ({meta['grid'][axis]} with "
                                  f"{', '.join(f'{k}={v}' for k, v in sorted(dims.items()))}); "
                                  f"a grid extent must not be negative")
        grid += [1] * (3 - len(grid))
        return (grid[0], grid[1], grid[2]), kernel_args

    def __call__(self, stream: Any = None, **args: Any) -> None:
        grid, kernel_args = self.prepare(args)
        if 0 in grid:
            return
        fn = self._load()
        block = (self.artifact.block_threads, 1, 1)
        fn(grid, block, tuple(kernel_args), shared_mem=self.artifact.lds_bytes, stream=stream)

    def bound(self, stream: Any = None, **args: Any) -> Callable[[], None]:
        """Check ``args`` once and return a function of no arguments that launches the kernel with
        them. The checks of a call (dtypes, shapes, the grid) cost tens of microseconds of Python,
        longer than a decode kernel runs; a benchmark or a loop that launches the same arrays again
        calls the bound function instead (the arrays must stay alive and keep their shapes)."""
        grid, kernel_args = self.prepare(args)
        if 0 in grid:
            return lambda: None
        fn = self._load()
        block = (self.artifact.block_threads, 1, 1)
        packed, lds = tuple(kernel_args), self.artifact.lds_bytes
        return lambda: fn(grid, block, packed, shared_mem=lds, stream=stream)


class ProgramLauncher:
    """``program.launcher(target)``: launches ``program`` specialised for each call's arrays as
    ``program.interpret`` specialises it (``Program.bind``): an unbound const takes its dim's size,
    a dtype parameter not in the program's params the dtype of its arrays (f16 ``<f2``, bf16 a
    PyTorch bfloat16 tensor, f32 ``<f4``, i32 ``<i4``). Each specialisation is compiled once."""

    def __init__(self, program: Any, target: str, autotune: bool = False) -> None:
        self.program = program
        self.target = target
        self.autotune = autotune
        self._kernels: dict[tuple, CudaKernel] = {}

    def kernel_for(self, args: dict[str, Any]) -> CudaKernel:
        """The compiled kernel for arguments ``args`` (compiled on first use)."""
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, str | None] = {}
        for p in self.program.tensor_params:
            if p.name not in args:
                raise LaunchError(f"missing argument '{p.name}'")
            iface = _interface(args[p.name], p.name)
            shapes[p.name] = tuple(iface["shape"])
            dtypes[p.name] = _DTYPE_OF_TYPESTR.get(iface["typestr"])
        try:
            prog, dims = self.program.bind(shapes, dtypes)
        except ArgumentError as e:
            raise LaunchError(str(e)) from None
        from tiledsl.tune import choose
        prog = choose(prog, dims, self.target, args, self.autotune)
        key = tuple(sorted(prog.params.items()))
        if key not in self._kernels:
            self._kernels[key] = CudaKernel(prog.compile(target=self.target))
        return self._kernels[key]

    def __call__(self, stream: Any = None, **args: Any) -> None:
        self.kernel_for(args)(stream=stream, **args)

    def bound(self, stream: Any = None, **args: Any) -> Callable[[], None]:
        """:meth:`CudaKernel.bound` of the kernel for ``args``."""
        return self.kernel_for(args).bound(stream=stream, **args)
