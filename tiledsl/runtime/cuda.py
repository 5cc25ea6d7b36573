"""Launch compiled kernels on an NVIDIA GPU.

    kernel = program.launcher(target="sm_90")          # binds consts and dtypes from the arrays
    kernel(Q=q, K=k, V=v, O=o, scale=0.125)           # PyTorch CUDA tensors (or CuPy), by name
    kernel = program.compile(target="sm_90").launcher()    # one compiled specialisation

Arrays are PyTorch CUDA tensors, anything exposing ``__cuda_array_interface__`` (CuPy, Numba)
or DLPack on a CUDA device. A launch goes to the current stream of the tensors' device
(``torch.cuda.current_stream(device)``; CuPy's current stream for CuPy arrays), or to ``stream=``
(an int handle, a ``torch.cuda.Stream``, a CuPy or ``cuda.core`` stream). It records nothing but
the launch, so it works under CUDA-graph capture (after a warm-up call outside the capture:
loading the module is not allowed while capturing).

**The fast path.** Everything a launch needs but the pointers and scalars is decided by the
arrays' *signature* — dtype, shape, strides and device of each tensor (four attribute reads on a
PyTorch tensor). The first call with a signature builds a :class:`LaunchPlan`: all the checks
(dtypes, ranks, compile-time dims, equal dims, 32-bit sizes, one device, alignment), the grid
(or a grid function where it reads i32 scalars), the kernel-argument format with the dims and
strides already in place, and the loaded function; a later call with the same signature packs
the pointers and scalars into the plan's kernarg buffer and makes one ``cuLaunchKernel``.

**Strided tensors.** A tensor whose last dim is contiguous but which is not dense (``x.transpose(1,
2)`` of a ``[B, N, H, D]`` tensor) is launched without a copy: a program's launcher compiles the
specialisation that takes that tensor's strides as arguments (``Program.compile(strided=...)``).
Every stride but the last, and the base pointer, must keep the kernel's vector accesses aligned;
an array that does not is refused with the reason (``x.contiguous()`` fixes it).

A program's launcher (:class:`ProgramLauncher`) first binds from the arrays what ``interpret``
binds — unbound consts from the shapes, dtype parameters from the dtypes — and compiles each
specialisation once. ``TDSL_INTERPRET=1`` (or ``program.launcher(interpret=True)``) runs the
thread-level interpreter instead, with all its checks, on copies of the tensors, and writes the
results back (``tiledsl.runtime.interpret``).
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError
from tiledsl.interp.limits import MAX_DIM
from tiledsl.interp.numerics import STORAGE, round_to, to_bits
from tiledsl.ir.types import DTYPE_BYTES, INT_DTYPES
from tiledsl.runtime import driver
from tiledsl.runtime.arrays import (
    CPU,
    DTYPE_OF_TYPESTR,
    TORCH_NAMES,
    TYPESTRS,
    ArrayInfo,
    describe,
    pointer_reader,
    signature,
    torch_tensor_type,
)

#: struct codes of the kernel arguments (``tiledsl.llvm.lower``'s ABI): bf16 and fp8 as their bit
#: patterns, i1 as an i32; struct refuses an integer outside its code's range.
_FORMAT = {"tensor": "Q", "f32": "f", "i32": "i", "f16": "e", "bf16": "H", "i1": "i", "i8": "b", "u8": "B",
           "i16": "h", "u32": "I", "i64": "q", "f8e4m3": "B", "f8e5m2": "B"}
_MAX_PLANS = 4096      # signatures kept per launcher; past that the table starts again


class LaunchError(ArgumentError):
    """An argument does not fit the kernel (a user mistake, reported without a traceback)."""


def grid_function(exprs: list[str], names: list[str]) -> Callable[..., tuple[int, ...]]:
    """The grid expressions of the launch metadata (C integer syntax) as one Python function of
    ``names`` (dims, compile-time values, i32 scalars), made once per kernel."""
    body = ", ".join(e.replace("/", "//") for e in exprs)
    return eval(f"lambda {', '.join(names)}: ({body},)", {"__builtins__": {}, "max": max, "min": min})


def grid_value(expr: str, dims: Mapping[str, int]) -> int:
    """One grid expression evaluated with these values of its names."""
    names = sorted(dims)
    return grid_function([expr], names)(**{n: dims[n] for n in names})[0]


def _bits_of(dtype: str) -> Callable[[Any], int]:
    """A scalar argument of ``dtype`` (bf16, fp8) as the ABI passes it: its bit pattern, rounded
    (saturating for fp8) as a cast rounds."""
    def bits(x: Any) -> int:
        return int(to_bits(round_to(np.asarray(float(x), np.float32), dtype), dtype)[()])
    return bits


_CONVERT = {"bf16": _bits_of("bf16"), "f8e4m3": _bits_of("f8e4m3"), "f8e5m2": _bits_of("f8e5m2")}


def stream_handle(stream: Any) -> int:
    """The CUstream handle of an int, a ``torch.cuda.Stream``, a CuPy stream or a ``cuda.core``
    stream."""
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    return int(stream)


def _torch_stream_of(device: int) -> Callable[[], int]:
    import torch
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return lambda: raw(device)
    return lambda: torch.cuda.current_stream(device).cuda_stream


def _cupy_stream() -> int:
    import sys
    cupy = sys.modules.get("cupy")
    return cupy.cuda.get_current_stream().ptr if cupy is not None else 0


class LaunchPlan:
    """A launch of one kernel for one signature of the arrays (see the module docstring): the
    kernarg format with the dims and strides filled in, where the pointers and scalars go, the
    grid, the device and its stream. ``launch`` is the per-call work."""

    def __init__(self, kernel: CudaKernel, infos: Mapping[str, ArrayInfo], dims: Mapping[str, int],
                 device: int | None, torch: bool) -> None:
        art = kernel.artifact
        self.kernel = kernel
        self.device = device
        fmt, pos = "<", 0
        self.template: list[Any] = []
        self.pointers: list[tuple[int, str, Callable[[Any], int], int]] = []
        self.scalars: list[tuple[int, str, Callable[[Any], Any] | None]] = []
        for a in art.args:
            fmt += "x" * (a.offset - pos)
            pos = a.offset + a.size
            slot = len(self.template)
            if a.kind == "tensor":
                info = infos[a.name]
                self.pointers.append((slot, a.name, pointer_reader(info), kernel.alignment[a.name] - 1))
                self.template.append(0)
                fmt += _FORMAT["tensor"]
            elif a.kind == "scalar":
                self.scalars.append((slot, a.name, _CONVERT.get(a.dtype)))
                self.template.append(0)
                fmt += _FORMAT[a.dtype]
            elif a.kind == "dim":
                self.template.append(dims[a.name])
                fmt += "i"
            else:
                self.template.append(infos[a.name].strides[a.axis])
                fmt += "q"
        self.struct = struct.Struct(fmt)
        self.buffer = ctypes.create_string_buffer(max(self.struct.size, 8))
        base = ctypes.addressof(self.buffer)
        self._slots = (ctypes.c_void_p * max(len(art.args), 1))(*[base + a.offset for a in art.args])
        self.params = ctypes.addressof(self._slots) if art.args else 0
        self.threads, self.lds = art.block_threads, art.lds_bytes
        values = {**{k: v for k, v in art.params.items() if isinstance(v, int)}, **dims}
        self.grid_scalars = kernel.grid_scalars
        if self.grid_scalars:
            fixed = {n: values[n] for n in kernel.grid_names if n not in self.grid_scalars}
            fn = kernel.grid_fn
            self.grid_of: Callable[[Mapping[str, Any]], tuple[int, ...]] | None = \
                lambda args: fn(**fixed, **{n: int(args[n]) for n in self.grid_scalars})
            self.grid: tuple[int, int, int] = (1, 1, 1)
        else:
            self.grid_of = None
            self.grid = kernel.checked_grid(kernel.grid_fn(**{n: values[n] for n in kernel.grid_names}), dims)
        self.current_stream = (_torch_stream_of(device) if torch and device is not None else _cupy_stream)
        self.torch_device = device if torch else None
        self.current_device = _torch_current_device() if torch else None
        self.function: Any = None
        self.lock = threading.Lock()

    def grid_for(self, args: Mapping[str, Any]) -> tuple[int, int, int]:
        if self.grid_of is None:
            return self.grid
        return self.kernel.checked_grid(self.grid_of(args), {})

    def values(self, args: Mapping[str, Any]) -> list[Any]:
        """The kernel arguments in ABI order (pointers and scalars of ``args``)."""
        vals = self.template.copy()
        for slot, name, read, mask in self.pointers:
            p = read(args[name])
            if p & mask:
                raise LaunchError(f"'{name}' starts at 0x{p:x}, not aligned to the {mask + 1} bytes of the "
                                  f"kernel's vector accesses (a view at an odd offset?): pass a copy "
                                  f"(.contiguous() / .clone())")
            vals[slot] = p
        for slot, name, conv in self.scalars:
            vals[slot] = args[name] if conv is None else conv(args[name])
        return vals

    def pack(self, args: Mapping[str, Any]) -> bytes:
        """The kernarg bytes of a launch with ``args`` (what ``launch`` passes)."""
        try:
            return self.struct.pack(*self.values(args))
        except LaunchError:
            raise
        except (struct.error, TypeError, ValueError, OverflowError):
            raise self.kernel.scalar_error(args) from None

    def launch(self, args: Mapping[str, Any], stream: Any) -> None:
        try:
            vals = self.values(args)
        except LaunchError:
            raise
        except (TypeError, ValueError, OverflowError):      # a scalar's conversion (bf16, fp8)
            raise self.kernel.scalar_error(args) from None
        grid = self.grid if self.grid_of is None else self.grid_for(args)
        if 0 in grid:
            return
        handle = self.current_stream() if stream is None else stream_handle(stream)
        fn = self.function
        if fn is None:
            fn = self.function = self.kernel.function(self.device)
        with self.lock:      # one kernarg buffer per plan: two threads must not pack it at once
            try:
                self.struct.pack_into(self.buffer, 0, *vals)
            except (struct.error, TypeError, ValueError, OverflowError):
                raise self.kernel.scalar_error(args) from None
            if self.torch_device is not None and self.current_device() != self.torch_device:
                import torch
                with torch.cuda.device(self.torch_device):
                    driver.launch(fn, grid, self.threads, self.lds, handle, self.params, self.device)
            else:
                driver.launch(fn, grid, self.threads, self.lds, handle, self.params, self.device or 0)


def _torch_current_device() -> Callable[[], int]:
    """PyTorch's current CUDA device, as a function (its private reader where it has one: the
    public ``torch.cuda.current_device`` costs a lazy-init check per call)."""
    import torch
    return getattr(torch._C, "_cuda_getDevice", torch.cuda.current_device)


class _Launcher:
    """The per-call path shared by :class:`CudaKernel` and :class:`ProgramLauncher`: the
    signature of the arrays → a cached :class:`LaunchPlan` → one driver call."""

    _names: frozenset[str]
    _tensors: tuple[str, ...]

    def __init__(self) -> None:
        self._plans: dict[tuple, LaunchPlan] = {}

    def __call__(self, stream: Any = None, **args: Any) -> None:
        if args.keys() != self._names:
            self._check_names(args)
        tensor_type = torch_tensor_type()
        sig: tuple | None
        try:
            # PyTorch tensors inline (the common case; a call per tensor costs as much as its reads)
            sig = tuple([(x.dtype, x.shape, x.stride(), x.get_device()) if isinstance(x, tensor_type)
                         else signature(x, tensor_type) for x in map(args.__getitem__, self._tensors)])
        except (AttributeError, TypeError, ArgumentError):
            sig = None
        plan = self._plans.get(sig) if sig is not None else None
        if plan is None:
            plan = self.plan(args)
            if sig is not None:
                if len(self._plans) >= _MAX_PLANS:
                    self._plans.clear()
                self._plans[sig] = plan
        plan.launch(args, stream)

    def _check_names(self, args: Mapping[str, Any]) -> None:
        for name in args:
            if name not in self._names:
                raise LaunchError(f"'{self.name}' has no parameter '{name}' (it has: {', '.join(sorted(self._names))})")
        for name in sorted(self._names - args.keys()):
            raise LaunchError(f"missing argument '{name}'")

    def plan(self, args: Mapping[str, Any]) -> LaunchPlan:
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError


def _describe_all(names: tuple[str, ...], args: Mapping[str, Any]) -> dict[str, ArrayInfo]:
    infos = {}
    for name in names:
        if name not in args:
            raise LaunchError(f"missing argument '{name}'")
        try:
            infos[name] = describe(args[name], name)
        except ArgumentError as e:
            raise LaunchError(str(e)) from None
    return infos


def _device_of(infos: Mapping[str, ArrayInfo]) -> tuple[int | None, bool]:
    """The one CUDA device of the arrays (None where none says), and whether they are PyTorch's.
    A CPU tensor, or tensors on two devices, are refused."""
    where: dict[int, str] = {}
    for name, info in infos.items():
        if info.device == CPU:
            raise LaunchError(f"'{name}' is a CPU tensor; a GPU launch needs CUDA tensors (.cuda()), "
                              f"or run the interpreter: TDSL_INTERPRET=1")
        if info.device is not None:
            where.setdefault(info.device, name)
    if len(where) > 1:
        (d0, n0), (d1, n1) = list(where.items())[:2]
        raise LaunchError(f"the tensors are on different devices: '{n0}' on cuda:{d0}, '{n1}' on cuda:{d1}")
    torch = any(i.is_torch for i in infos.values())
    return (next(iter(where)) if where else None), torch


class CudaKernel(_Launcher):
    """A compiled kernel (an NVPTX :class:`~tiledsl.compile.Artifact`), callable with GPU arrays by
    parameter name: ``kernel(Q=q, ..., scale=0.125, stream=None)``."""

    def __init__(self, artifact: Any) -> None:
        super().__init__()
        self.artifact = artifact
        meta_args = artifact.args
        self._tensors = tuple(a.name for a in meta_args if a.kind == "tensor")
        self._names = frozenset(a.name for a in meta_args if a.kind in ("tensor", "scalar"))
        self.strided = frozenset(a.name for a in meta_args if a.kind == "stride")
        self._decl = {p.name: p for p in artifact.tensor_params}
        scalars = {a.name: a for a in meta_args if a.kind == "scalar"}
        self.grid_scalars = tuple(n for n, a in scalars.items() if a.dtype == "i32"
                                  and any(_mentions(g, n) for g in artifact.grid))
        self.grid_names = sorted({*(a.name for a in meta_args if a.kind == "dim"),
                                  *(k for k, v in artifact.params.items() if isinstance(v, int)),
                                  *self.grid_scalars})
        self.grid_fn = grid_function(artifact.grid, self.grid_names)
        self.alignment = _alignment(artifact)
        self._functions: dict[int, Any] = {}
        self._modules: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return self.artifact.name

    def function(self, device: int | None) -> Any:
        """The kernel loaded on ``device`` (the current context's device where None), once."""
        key = -1 if device is None else device
        fn = self._functions.get(key)
        if fn is None:
            where = driver.current_device() if device is None else device
            # The cubin where ptxas made one (no JIT at load), else the PTX; a cubin of a ptxas newer
            # than the driver is refused, and the PTX then goes to the driver's JIT.
            ptx = self.artifact.asm.encode() + b"\0"
            image = self.artifact.image()
            try:
                self._modules[key], fn = driver.load_function(image if image.startswith(b"\x7fELF") else ptx,
                                                              self.artifact.name, self.artifact.lds_bytes, where or 0)
            except driver.DriverError:
                if not image.startswith(b"\x7fELF"):
                    raise
                self._modules[key], fn = driver.load_function(ptx, self.artifact.name, self.artifact.lds_bytes,
                                                              where or 0)
            self._functions[key] = fn
        return fn

    def plan(self, args: Mapping[str, Any], infos: Mapping[str, ArrayInfo] | None = None) -> LaunchPlan:
        """Check ``args`` and build their launch plan (the slow path, once per signature)."""
        for name in args:
            if name not in self._names:
                raise LaunchError(f"'{self.name}' has no parameter '{name}' (it has: {', '.join(sorted(self._names))})")
        infos = infos or _describe_all(self._tensors, args)
        params = self.artifact.params
        dims: dict[str, int] = {}
        for name in self._tensors:
            info, p = infos[name], self._decl[name]
            if info.typestr not in TYPESTRS.get(p.dtype, ()):
                raise LaunchError(f"'{name}' is {p.dtype} but the array is {info.typestr} "
                                  f"({getattr(args[name], 'dtype', '?')}); expected {TORCH_NAMES.get(p.dtype, p.dtype)} "
                                  f"or equivalent")
            shape = info.shape
            if len(shape) != len(p.dims):
                raise LaunchError(f"'{name}' must have {len(p.dims)} dims {p.dims}, got shape {shape}")
            for d, n in zip(p.dims, shape):
                if n > MAX_DIM:
                    raise LaunchError(f"'{name}' of shape {list(shape)} has {d}={n}; the kernel takes dims as "
                                      f"32-bit integers, so at most {MAX_DIM} (2^31-1) each")
                want = d if isinstance(d, int) else params.get(d)
                if want is not None and int(want) != n:
                    raise LaunchError(f"'{name}' has {d}={n} but the kernel was compiled for {d}={want}")
                if isinstance(d, str) and want is None:
                    if d in dims and dims[d] != n:
                        raise LaunchError(f"dim {d} is {dims[d]} elsewhere but {n} in '{name}'")
                    dims[d] = int(n)
            self._check_strides(name, info)
        for a in self.artifact.args:
            if a.kind == "scalar" and a.name not in args:
                raise LaunchError(f"missing argument '{a.name}'")
            if a.kind == "dim" and a.name not in dims:
                raise LaunchError(f"no tensor gives the size of dim '{a.name}'")
        device, torch = _device_of(infos)
        plan = LaunchPlan(self, infos, dims, device, torch)
        plan.pack(args)        # a scalar that does not fit its type is refused here, by name
        plan.grid_for(args)
        return plan

    def _check_strides(self, name: str, info: ArrayInfo) -> None:
        if info.contiguous:
            return
        if name not in self.strided:
            raise LaunchError(f"'{name}' is not contiguous (strides {info.strides}) and this kernel was compiled "
                              f"for a dense '{name}': use program.launcher(), which compiles the strided "
                              f"specialisation, compile(strided=['{name}']), or pass {name}.contiguous()")
        if info.shape[-1] > 1 and info.strides[-1] != 1:
            raise LaunchError(f"'{name}' has stride {info.strides[-1]} along its last dim: kernels read the "
                              f"last dim contiguously; pass {name}.contiguous()")
        align = self.alignment[name]
        for axis, (n, s) in enumerate(zip(info.shape[:-1], info.strides[:-1])):
            if n > 1 and (s * info.itemsize) % align:
                raise LaunchError(f"'{name}' has stride {s} along dim {axis}: its {s * info.itemsize} bytes "
                                  f"break the kernel's {align}-byte vector accesses; pass {name}.contiguous()")

    def checked_grid(self, grid: tuple[int, ...], dims: Mapping[str, int]) -> tuple[int, int, int]:
        for axis, n in enumerate(grid):
            if n < 0:
                raise LaunchError(f"grid axis {axis} has extent {n} ({self.artifact.grid[axis]} with "
                                  f"{', '.join(f'{k}={v}' for k, v in sorted(dims.items()))}); "
                                  f"a grid extent must not be negative")
        full = (*grid, 1, 1, 1)
        return full[0], full[1], full[2]

    def scalar_error(self, args: Mapping[str, Any]) -> LaunchError:
        """The error for a scalar argument that does not fit its parameter's type."""
        for a in self.artifact.args:
            if a.kind == "scalar":
                value = args[a.name]
                if a.dtype in INT_DTYPES and isinstance(value, (int, np.integer)):
                    info = np.iinfo(STORAGE[a.dtype])
                    if not info.min <= int(value) <= info.max:
                        return LaunchError(f"'{a.name}' is {a.dtype} but {value} is outside [{info.min}, {info.max}]")
                try:
                    convert = _CONVERT.get(a.dtype)
                    struct.pack("<" + _FORMAT[a.dtype], convert(value) if convert else value)
                except (struct.error, TypeError, ValueError, OverflowError) as e:
                    return LaunchError(f"'{a.name}' is a scalar {a.dtype} parameter; {value!r} does not "
                                       f"fit it ({e})")
        return LaunchError("a scalar argument does not fit its parameter")

    def prepare(self, args: Mapping[str, Any]) -> tuple[tuple[int, int, int], bytes]:
        """Check the arguments; return the grid and the packed kernel arguments (nothing launched)."""
        plan = self.plan(args)
        return plan.grid_for(args), plan.pack(args)

    def bound(self, stream: Any = None, **args: Any) -> Callable[[], None]:
        """Check ``args`` once and return a function of no arguments that launches the kernel with
        them: the plan is built and the arguments packed now, so a benchmark or a loop that launches
        the same arrays again pays one driver call (the arrays must stay alive and keep their shapes)."""
        plan = self.plan(args)
        return lambda: plan.launch(args, stream)


def _mentions(expr: str, name: str) -> bool:
    import re
    return re.search(rf"\b{re.escape(name)}\b", expr) is not None


def _alignment(artifact: Any) -> dict[str, int]:
    """Per tensor, the bytes its base and strides must be a multiple of: the widest vector access
    the kernel makes to it (the element size at least)."""
    align = {p.name: DTYPE_BYTES[p.dtype] for p in artifact.tensor_params}
    kernel = artifact.thread_kernel
    if kernel is None:
        return {n: max(a, 16) for n, a in align.items()}
    for op in kernel.walk():
        if op.name in ("global_load", "global_store", "global_atomic", "async_copy"):
            t = op.operands[0]
            if t.hint in align:
                align[t.hint] = max(align[t.hint], int(op.attrs.get("vec", 1)) * DTYPE_BYTES[t.type.dtype])
    return align


class ProgramLauncher(_Launcher):
    """``program.launcher(target)``: launches ``program`` specialised for each call's arrays as
    ``program.interpret`` specialises it (``Program.bind``): an unbound const takes its dim's size,
    a dtype parameter not in the program's params the dtype of its arrays (f16 ``<f2``, bf16 a
    PyTorch bfloat16 tensor, f32 ``<f4``, i32 ``<i4``); non-contiguous tensors select the strided
    specialisation. Each specialisation is compiled once.

    ``interpret``: run the thread-level interpreter for ``target`` instead of the GPU (None: the
    ``TDSL_INTERPRET`` environment variable, set to 1). ``tuned``: the hook of a tuning cache —
    given the specialised program and the run-time dims, the tile parameters to compile it with
    (consulted once per specialisation and shape; ``{}``: the program's own); without one, the
    tuning kept by ``tdslc tune`` for this source, shape and GPU (:func:`tiledsl.tune.choose`; with
    ``autotune``, a shape without one is tuned on its first launch).
    """

    def __init__(self, program: Any, target: str, interpret: bool | None = None,
                 tuned: Callable[[Any, Mapping[str, int]], Mapping[str, Any]] | None = None,
                 autotune: bool = False) -> None:
        super().__init__()
        self.program = program
        self.target = target
        self.tuned = tuned
        self.autotune = autotune
        self.interpret = os.environ.get("TDSL_INTERPRET", "0") not in ("", "0") if interpret is None else interpret
        self._kernels: dict[tuple, CudaKernel] = {}
        self._tensors = tuple(p.name for p in program.tensor_params)
        self._names = frozenset(p.name for p in program.ast.params)

    @property
    def name(self) -> str:
        return self.program.name

    def __call__(self, stream: Any = None, **args: Any) -> None:
        if self.interpret:
            from tiledsl.runtime.interpret import interpret_in_place
            interpret_in_place(self.program, self.target, args)
            return
        super().__call__(stream, **args)

    def kernel_for(self, args: Mapping[str, Any], infos: Mapping[str, ArrayInfo] | None = None) -> CudaKernel:
        """The compiled kernel for arguments ``args`` (compiled on first use)."""
        infos = infos or _describe_all(self._tensors, args)
        shapes = {n: i.shape for n, i in infos.items()}
        dtypes = {n: DTYPE_OF_TYPESTR.get(i.typestr) for n, i in infos.items()}
        try:
            prog, dims = self.program.bind(shapes, dtypes)
        except ArgumentError as e:
            raise LaunchError(str(e)) from None
        if self.tuned is not None:
            params = self.tuned(prog, dims)
            prog = prog.specialize(**params) if params else prog
        else:
            from tiledsl.tune import choose
            prog = choose(prog, dims, self.target, args, self.autotune)
        strided = frozenset(n for n, i in infos.items() if not i.contiguous)
        key = (tuple(sorted(prog.params.items())), strided)
        if key not in self._kernels:
            self._kernels[key] = CudaKernel(prog.compile(target=self.target, strided=strided))
        return self._kernels[key]

    def plan(self, args: Mapping[str, Any]) -> LaunchPlan:
        infos = _describe_all(self._tensors, args)
        return self.kernel_for(args, infos).plan(args, infos)

    def bound(self, stream: Any = None, **args: Any) -> Callable[[], None]:
        """:meth:`CudaKernel.bound` of the kernel for ``args``."""
        return self.kernel_for(args).bound(stream=stream, **args)
