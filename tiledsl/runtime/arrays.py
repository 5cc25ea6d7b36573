"""What a launch reads from an array argument: pointer, shape, strides, dtype and device.

Three kinds of GPU arrays are taken: PyTorch tensors (read directly: PyTorch does not export
bf16 through ``__cuda_array_interface__``, and its attributes are the cheapest to read), anything
with ``__cuda_array_interface__`` (CuPy, Numba), and DLPack producers on a CUDA device (through
CuPy). :func:`signature` is what a launch reads on every call — a tuple that decides everything
but the pointers and scalars (see ``tiledsl.runtime.cuda``); :func:`describe` is the slow, complete
reading made once per signature.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tiledsl.diagnostics import ArgumentError

#: The array interface type strings a tensor of each dtype takes: bf16 and fp8 also as raw bits
#: (CuPy has neither type); PyTorch's fp8 tensors by their dtype's name (no type string exists).
#: The first is the dtype's own, which binds a dtype parameter (bf16: PyTorch's).
TYPESTRS = {"f16": ("<f2",), "bf16": ("<V2", "<u2", "<i2"), "f32": ("<f4",), "i32": ("<i4",),
            "f8e4m3": ("torch.float8_e4m3fn", "|u1", "|i1", "|V1", "<V1"),
            "f8e5m2": ("torch.float8_e5m2", "|u1", "|i1", "<f1"), "i8": ("|i1",), "u8": ("|u1",),
            "i16": ("<i2",), "u32": ("<u4",), "i64": ("<i8",)}
DTYPE_OF_TYPESTR = {typestrs[0]: dtype for dtype, typestrs in TYPESTRS.items()}
TORCH_NAMES = {"f16": "torch.float16", "bf16": "torch.bfloat16", "f32": "torch.float32", "i32": "torch.int32",
               "f8e4m3": "torch.float8_e4m3fn (or uint8 bits)", "f8e5m2": "torch.float8_e5m2 (or uint8 bits)",
               "i8": "torch.int8", "u8": "torch.uint8", "i16": "torch.int16", "u32": "torch.uint32",
               "i64": "torch.int64"}
_TORCH_TYPESTR = {"torch.float16": "<f2", "torch.bfloat16": "<V2", "torch.float32": "<f4", "torch.int32": "<i4",
                  "torch.int8": "|i1", "torch.uint8": "|u1", "torch.int16": "<i2", "torch.uint32": "<u4",
                  "torch.int64": "<i8"}
_DLPACK_CUDA = (2, 13)     # kDLCUDA, kDLCUDAManaged
CPU = -1                   # the device of a host array (PyTorch's get_device() of a CPU tensor)


class _NoTensor:
    """Stands for ``torch.Tensor`` while PyTorch is not imported (no argument can be one)."""


def torch_tensor_type() -> type:
    """``torch.Tensor`` if PyTorch is imported, else a class no argument is an instance of (a
    launch never imports PyTorch itself)."""
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", _NoTensor)


@dataclass(frozen=True)
class ArrayInfo:
    """One array argument as a launch sees it; ``strides`` in elements, ``device`` the CUDA ordinal
    (``CPU`` for a host array, None where the array does not say)."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    typestr: str
    itemsize: int
    device: int | None
    is_torch: bool

    @property
    def contiguous(self) -> bool:
        """Row-major dense (a stride along a dim of size 1 does not matter)."""
        want = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != want:
                return False
            want *= n
        return True


def describe(x: Any, name: str) -> ArrayInfo:
    """The complete reading of a GPU array argument. Raises ArgumentError for what is not one."""
    if isinstance(x, torch_tensor_type()):
        size = x.element_size()
        return ArrayInfo(x.data_ptr(), tuple(x.shape), tuple(x.stride()),
                         _TORCH_TYPESTR.get(str(x.dtype), str(x.dtype)), size, x.get_device(), True)
    iface = interface(x, name)
    shape = tuple(int(n) for n in iface["shape"])
    itemsize = int(iface["typestr"][2:])
    if iface.get("strides") is None:
        strides, s = [], 1
        for n in reversed(shape):
            strides.append(s)
            s *= n
        elem = tuple(reversed(strides))
    else:
        elem = tuple(int(b) // itemsize for b in iface["strides"])
    device = getattr(getattr(x, "device", None), "id", None)
    return ArrayInfo(int(iface["data"][0]), shape, elem, iface["typestr"], itemsize, device, False)


def interface(x: Any, name: str) -> dict[str, Any]:
    """The CUDA array interface of a non-PyTorch GPU array (CuPy, Numba, a DLPack producer)."""
    if hasattr(x, "__cuda_array_interface__"):
        return x.__cuda_array_interface__
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__") and x.__dlpack_device__()[0] in _DLPACK_CUDA:
        import cupy
        return cupy.from_dlpack(x).__cuda_array_interface__
    raise ArgumentError(f"'{name}' must be a GPU array (a PyTorch CUDA tensor, CuPy, or DLPack on a CUDA "
                        f"device), got {type(x).__name__}")


def signature(x: Any, tensor_type: type) -> tuple:
    """What decides a launch plan about array ``x``, read as cheaply as possible (a PyTorch tensor:
    four attribute reads). Equal signatures mean equal dtype, shape, strides and device."""
    if isinstance(x, tensor_type):
        return (x.dtype, x.shape, x.stride(), x.get_device())
    iface = x.__cuda_array_interface__ if hasattr(x, "__cuda_array_interface__") else interface(x, "?")
    return (iface["typestr"], tuple(iface["shape"]), iface.get("strides"), type(x),
            getattr(getattr(x, "device", None), "id", None))


def pointer_reader(info: ArrayInfo) -> Any:
    """A function from the array to its device pointer, for an array read as ``info`` was."""
    if info.is_torch:
        return torch_tensor_type().data_ptr
    return _cai_pointer


def _cai_pointer(x: Any) -> int:
    return interface(x, "?")["data"][0]
