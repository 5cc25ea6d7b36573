"""The interpreters behind the launcher's call: arrays of any kind in, results written back.

``Program.interpret`` takes, for a tensor parameter, a NumPy array, a PyTorch tensor (CPU or
CUDA: a CUDA tensor is copied to the host and its result copied back), a DLPack producer on the
CPU, or anything with ``__array__`` (read-only: not for an ``out`` parameter, whose result could
not be written back). ``TDSL_INTERPRET=1`` makes ``program.launcher()`` call
:func:`interpret_in_place` instead of the GPU: the thread-level interpreter with all its checks
(races, bounds, uninitialised reads, coverage) runs on copies of the tensors, the results are
written back into the caller's ``out`` tensors, and a failed check raises
:class:`InterpretCheckFailed` (after the write-back, so the partial result can be inspected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError
from tiledsl.runtime.arrays import torch_tensor_type


class InterpretCheckFailed(RuntimeError):
    """A launch run by the interpreter (``TDSL_INTERPRET=1``) failed a check; ``report`` holds
    the findings."""

    def __init__(self, report: Any) -> None:
        super().__init__(f"the thread-level interpreter found problems:\n{report}")
        self.report = report


#: PyTorch dtypes NumPy has no type for: viewed as ml_dtypes' type of the same bits (the same
#: memory, and the dtype a dtype parameter binds to), through an integer view of the tensor.
_ML_DTYPES = {"torch.bfloat16": ("bfloat16", "int16"), "torch.float8_e4m3fn": ("float8_e4m3fn", "uint8"),
              "torch.float8_e5m2": ("float8_e5m2", "uint8")}


def host_array(x: Any, name: str, out: bool) -> tuple[np.ndarray, bool]:
    """Array ``x`` as a NumPy array, and whether it shares ``x``'s memory (then writing the array
    writes ``x``). Raises ArgumentError for what is not an array, or an ``out`` array that would
    not receive the result."""
    if isinstance(x, np.ndarray):
        return x, True
    if isinstance(x, torch_tensor_type()):
        t = x.detach()
        shared = t.device.type == "cpu"
        if not shared:
            t = t.cpu()
        if str(t.dtype) in _ML_DTYPES:
            import ml_dtypes
            import torch
            ml, bits = _ML_DTYPES[str(t.dtype)]
            return t.view(getattr(torch, bits)).numpy().view(getattr(ml_dtypes, ml)), shared
        return t.numpy(), shared
    if hasattr(x, "__dlpack__"):
        try:
            arr = np.from_dlpack(x)
        except (TypeError, ValueError, BufferError, RuntimeError) as e:
            raise ArgumentError(f"'{name}': NumPy cannot read this DLPack array ({e}); interpreting needs it "
                                f"on the CPU") from None
        if out and not arr.flags.writeable:
            raise ArgumentError(f"out array '{name}' is read-only through DLPack: pass a NumPy array or a "
                                f"PyTorch tensor")
        return arr, True
    if hasattr(x, "__array__"):
        if out:
            raise ArgumentError(f"out array '{name}' must be written in place: pass a NumPy array, a PyTorch "
                                f"tensor or a DLPack array, not {type(x).__name__}")
        return np.asarray(x), False
    raise ArgumentError(f"'{name}' must be an array (NumPy, a PyTorch tensor, DLPack or anything with "
                        f"__array__), got {type(x).__name__}")


def host_arguments(program: Any, args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """``args`` with every tensor argument as a NumPy array (:func:`host_array`), and for each
    whether it shares the caller's memory."""
    out = {p.name for p in program.tensor_params if p.out}
    host, shared = dict(args), {}
    for p in program.tensor_params:
        if p.name in args:
            host[p.name], shared[p.name] = host_array(args[p.name], p.name, p.name in out)
    return host, shared


def write_result(dest: Any, host: np.ndarray, shared: bool, data: np.ndarray) -> None:
    """Put an out tensor's result into the caller's array ``dest`` (whose NumPy form is ``host``)."""
    if shared:
        host[...] = data
        return
    import torch
    if str(dest.dtype) in _ML_DTYPES:      # through float32, which holds every value exactly
        data = np.asarray(data, dtype=np.float32)
    dest.copy_(torch.from_numpy(np.ascontiguousarray(data)).to(dtype=dest.dtype))


def interpret_in_place(program: Any, target: str, args: Mapping[str, Any]) -> None:
    """Run ``program`` in the thread-level interpreter for ``target`` on ``args`` as a launch
    would (out tensors written); raise :class:`InterpretCheckFailed` if a check failed."""
    report = program.interpret(level="thread", target=target, **args)
    if not report.ok:
        raise InterpretCheckFailed(report)
