"""tiledsl kernels as PyTorch operators.

    import tiledsl, tiledsl.torch
    o = tiledsl.torch.attention(q, k, v, is_causal=True)          # drop-in for SDPA, with autograd
    softmax = tiledsl.torch.register(tiledsl.load("examples/softmax.tdsl"))
    y = softmax(x)                                                  # torch.ops.tiledsl.softmax(x)

:func:`register` makes any kernel a ``torch.library`` custom op whose inputs are the kernel's
non-``out`` tensors and scalars (in parameter order) and whose results are its ``out`` tensors,
allocated by the op: shapes from the dims the inputs give (or compile-time values), or from the
``outputs`` rule the caller declares; dtypes from the parameter (a dtype parameter: the dtype of
the inputs declared with it). The op has a fake (meta) implementation computing the same shapes,
so it runs inside ``torch.compile(fullgraph=True)``. On CUDA tensors it launches the kernel (on
the current stream of their device); on CPU tensors it runs the thread-level interpreter with
all its checks (``cpu="block"``: the faster block-level one).

:func:`attention` is ``scaled_dot_product_attention`` for ``[B, H, N, D]`` f16/bf16 tensors
(views such as ``x.transpose(1, 2)`` of ``[B, N, H, D]`` are read in place), through
``examples/attention.tdsl``. Its backward launches ``examples/attention_bwd.tdsl`` (preprocess,
dK/dV and dQ kernels, from the forward's log-sum-exp) on CUDA tensors; on CPU tensors gradients
come from recomputing attention in PyTorch (float32, N×N memory). Both are replaceable
(:func:`set_attention_backward`).

Importing this module registers ``tiledsl::attention_fwd`` (its schema; the kernels load on first
use); :func:`register` registers the ops it is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch

from tiledsl.diagnostics import ArgumentError
from tiledsl.program import Program

_TORCH_DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32, "i32": torch.int32,
                 "i8": torch.int8, "u8": torch.uint8, "i16": torch.int16, "i64": torch.int64}
_DTYPE_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}
_SCHEMA_SCALARS = {"f32": "float", "f16": "float", "bf16": "float", "i32": "int", "i1": "bool"}
#: Where ``examples/attention.tdsl`` and its backward are (a source checkout or an editable install).
ATTENTION_SOURCE = Path(__file__).resolve().parents[1] / "examples" / "attention.tdsl"
ATTENTION_BWD_SOURCE = ATTENTION_SOURCE.with_name("attention_bwd.tdsl")

#: A shape rule: from the op's inputs by name (tensors and scalars) to the shape of each output,
#: ``{"Y": lambda X, **_: X.shape}``; an output it leaves out gets the derived shape.
OutputRule = Mapping[str, Callable[..., Sequence[int]]]

_registered: dict[str, KernelOp] = {}


def default_target(device: torch.device | int | None = None) -> str:
    """The NVPTX target of a CUDA device: sm_90 on Hopper, sm_80 before (tiledsl's NVIDIA targets)."""
    major, _ = torch.cuda.get_device_capability(device)
    return "sm_90" if major >= 9 else "sm_80"


class KernelOp:
    """A kernel registered as ``torch.ops.<namespace>.<name>``; call it with the inputs
    (positionally in parameter order, or by name) to get the outputs (one tensor, or a tuple)."""

    def __init__(self, program: Program, name: str, namespace: str, outputs: OutputRule | None, target: str | None,
                 cpu: str) -> None:
        self.program = program
        self.name = name
        self.qualname = f"{namespace}::{name}"
        self.rules = dict(outputs or {})
        self.target = target
        self.cpu = cpu
        params = program.ast.params
        self.inputs = [p for p in params if not getattr(p, "out", False)]
        self.outs = [p for p in program.tensor_params if p.out]
        self.accumulators = set(program.accumulators())
        self._launchers: dict[tuple[str, bool], Any] = {}
        unknown = set(self.rules) - {p.name for p in self.outs}
        if unknown:
            raise ArgumentError(f"outputs: {sorted(unknown)} are not out tensors of '{program.name}' "
                                f"(its out tensors: {', '.join(p.name for p in self.outs)})")
        self._check_derivable()
        self.library = torch.library.Library(namespace, "FRAGMENT")
        self.library.define(self.schema())
        self.library.impl(name, self._run, "CompositeExplicitAutograd")
        torch.library.register_fake(self.qualname, self._fake, lib=self.library)
        self.op = getattr(getattr(torch.ops, namespace), name)

    def schema(self) -> str:
        """The op's schema: the input tensors and scalars, then one Tensor per out tensor."""
        args = []
        for p in self.inputs:
            if hasattr(p, "dims"):
                args.append(f"Tensor {p.name}")
            else:
                dtype = self.program.dtypes.get(p.dtype, p.dtype)
                if dtype not in _SCHEMA_SCALARS:
                    raise ArgumentError(f"scalar '{p.name}' of dtype {dtype} cannot be an op argument")
                args.append(f"{_SCHEMA_SCALARS[dtype]} {p.name}")
        results = ", ".join("Tensor" for _ in self.outs)
        return f"{self.name}({', '.join(args)}) -> {results if len(self.outs) == 1 else f'({results})'}"

    def _check_derivable(self) -> None:
        given = {d for p in self.inputs if hasattr(p, "dims") for d in p.dims}
        for p in self.outs:
            if p.name in self.rules:
                continue
            for d in p.dims:
                if not isinstance(d, int) and d not in given and not isinstance(self.program.params.get(d), int):
                    raise ArgumentError(f"the shape of out tensor '{p.name}' {p.dims}: no input gives dim '{d}'; "
                                        f"declare it: outputs={{'{p.name}': lambda **inputs: (...)}}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.op(*args, **kwargs)

    # ------------------------------------------------------------------ implementations
    def _bound(self, args: Sequence[Any]) -> dict[str, Any]:
        return {p.name: a for p, a in zip(self.inputs, args)}

    def _allocate(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The out tensors for these inputs (real or fake): zeros where the kernel accumulates."""
        tensors = [(p, inputs[p.name]) for p in self.inputs if hasattr(p, "dims")]
        ref = tensors[0][1]
        dims: dict[str, Any] = {}
        for p, t in tensors:
            for d, n in zip(p.dims, t.shape):
                if isinstance(d, str):
                    dims.setdefault(d, n)
        outs = {}
        for p in self.outs:
            if p.name in self.rules:
                shape = tuple(self.rules[p.name](**inputs))
            else:
                shape = tuple(d if isinstance(d, int) else dims.get(d, self.program.params.get(d)) for d in p.dims)
            dtype = self._out_dtype(p, tensors)
            make = ref.new_zeros if p.name in self.accumulators else ref.new_empty
            outs[p.name] = make(shape, dtype=dtype)
        return outs

    def _out_dtype(self, p: Any, tensors: list[tuple[Any, torch.Tensor]]) -> torch.dtype:
        dtype = p.dtype
        if dtype in self.program.dtypes and dtype not in self.program.params:
            for q, t in tensors:
                if q.dtype == dtype and t.dtype in _DTYPE_NAMES:
                    return t.dtype
        return _TORCH_DTYPES[self.program.dtypes.get(dtype, dtype)]

    def _results(self, outs: Mapping[str, torch.Tensor]) -> Any:
        values = tuple(outs[p.name] for p in self.outs)
        return values[0] if len(values) == 1 else values

    def _fake(self, *args: Any) -> Any:
        return self._results(self._allocate(self._bound(args)))

    def _run(self, *args: Any) -> Any:
        inputs = self._bound(args)
        outs = self._allocate(inputs)
        tensors = [t for t in inputs.values() if isinstance(t, torch.Tensor)]
        self.launcher(tensors[0].device)(**inputs, **outs)
        return self._results(outs)

    def launcher(self, device: torch.device) -> Any:
        """The program's launcher for tensors on ``device`` (the interpreter on the CPU)."""
        key = (str(device.type), device.type == "cpu")
        if key not in self._launchers:
            if device.type == "cpu":
                self._launchers[key] = _CpuRunner(self.program, self.cpu)
            else:
                self._launchers[key] = self.program.launcher(target=self.target or default_target(device))
        return self._launchers[key]


class _CpuRunner:
    """Runs a program in an interpreter on CPU tensors, as an op's CPU implementation."""

    def __init__(self, program: Program, level: str) -> None:
        self.program, self.level = program, level

    def __call__(self, **args: Any) -> None:
        from tiledsl.runtime.interpret import InterpretCheckFailed
        report = self.program.interpret(level=self.level, target="sm_90" if self.level == "thread" else None,
                                        **args)
        if not report.ok:
            raise InterpretCheckFailed(report)


def register(program: Program, name: str | None = None, *, namespace: str = "tiledsl",
             outputs: OutputRule | None = None, target: str | None = None, cpu: str = "thread") -> KernelOp:
    """Register ``program`` as the custom op ``torch.ops.<namespace>.<name>`` (``name``: the
    kernel's) and return it. ``outputs``: shape rules for out tensors whose dims no input gives.
    ``target``: the NVPTX target (default: from the device's compute capability). ``cpu``: the
    interpreter level that runs the op on CPU tensors ("thread": all checks; "block": faster).
    Registering one name twice returns the first op if it is the same program, else raises."""
    if not isinstance(program, Program):
        raise ArgumentError(f"register takes a tiledsl Program (tiledsl.load(...)), got {type(program).__name__}")
    if cpu not in ("thread", "block"):
        raise ArgumentError(f"cpu must be 'thread' or 'block', got {cpu!r}")
    name = name or program.name
    qualname = f"{namespace}::{name}"
    if qualname in _registered:
        if _registered[qualname].program is program:
            return _registered[qualname]
        raise ArgumentError(f"an op '{qualname}' is registered already (for another program): pass name=")
    op = KernelOp(program, name, namespace, outputs, target, cpu)
    _registered[qualname] = op
    return op


# ---------------------------------------------------------------------------------- attention

#: ``backward(q, k, v, o, lse, do, scale, is_causal) -> (dq, dk, dv)``; None: the backward kernels on
#: CUDA tensors, recomputation in PyTorch on CPU ones.
AttentionBackward = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_attention_backward: list[AttentionBackward | None] = [None]


def set_attention_backward(fn: AttentionBackward | None) -> None:
    """Plug in the backward of :func:`attention` (e.g. one launching ``examples/attention_bwd.tdsl``):
    ``fn(q, k, v, o, lse, do, scale, is_causal) -> (dq, dk, dv)``, with ``lse`` the forward's
    log-sum-exp per row (``[B, H, N]`` f32; empty where the forward kernel does not write one).
    None restores the default: :func:`kernel_attention_backward` on CUDA tensors,
    :func:`reference_attention_backward` on CPU ones."""
    _attention_backward[0] = fn


def reference_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
                                 lse: torch.Tensor, do: torch.Tensor, scale: float, is_causal: bool
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of attention by recomputing it in float32 PyTorch (the default backward)."""
    with torch.enable_grad():
        qf, kf, vf = (x.detach().float().requires_grad_() for x in (q, k, v))
        s = (qf @ kf.transpose(-1, -2)) * scale
        if is_causal:
            n = s.shape[-1]
            s = s.masked_fill(~torch.ones(n, n, dtype=torch.bool, device=s.device).tril(), float("-inf"))
        out = torch.softmax(s, dim=-1) @ vf
        dq, dk, dv = torch.autograd.grad(out, (qf, kf, vf), do.float())
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _AttentionBackwardKernels:
    """The three kernels of ``examples/attention_bwd.tdsl`` (per causality), and their launchers."""

    NAMES = ("attention_bwd_preprocess", "attention_bwd_dkdv", "attention_bwd_dq")

    def __init__(self) -> None:
        if not ATTENTION_BWD_SOURCE.is_file():
            raise ArgumentError(f"tiledsl.torch.attention's backward needs {ATTENTION_BWD_SOURCE} (a source "
                                f"checkout of tiledsl)")
        import tiledsl
        self.programs = {(name, c): tiledsl.load(ATTENTION_BWD_SOURCE, kernel=name,
                                                 params={} if name == self.NAMES[0] else {"CAUSAL": c})
                         for name in self.NAMES for c in (0, 1)}
        self.launchers: dict[tuple, Any] = {}

    def launcher(self, name: str, causal: bool, device: torch.device, level: str) -> Any:
        target = "cpu" if device.type == "cpu" else default_target(device)
        key = (name, causal, target, level)
        if key not in self.launchers:
            prog = self.programs[name, int(causal)]
            self.launchers[key] = _CpuRunner(prog, level) if target == "cpu" else prog.launcher(target=target)
        return self.launchers[key]


@cache
def _backward_kernels() -> _AttentionBackwardKernels:
    return _AttentionBackwardKernels()


def kernel_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
                              lse: torch.Tensor, do: torch.Tensor, scale: float, is_causal: bool,
                              cpu_level: str = "block") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of attention from ``examples/attention_bwd.tdsl``: Delta = rowsum(O * dO), then
    dK/dV (a block per key tile) and dQ (a block per query tile) from Q, K, V, dO, the forward's
    log-sum-exp and Delta. On CPU tensors the kernels run in the ``cpu_level`` interpreter."""
    if lse.numel() == 0:
        return reference_attention_backward(q, k, v, o, lse, do, scale, is_causal)
    kernels = _backward_kernels()
    q, k, v, o, do = (x.contiguous() for x in (q, k, v, o, do.to(q.dtype)))
    delta = q.new_empty(q.shape[:-1], dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

    def run(name: str, **args: Any) -> None:
        kernels.launcher(name, is_causal, q.device, cpu_level)(**args)
    run("attention_bwd_preprocess", O=o, dO=do, Delta=delta)
    run("attention_bwd_dkdv", Q=q, K=k, V=v, dO=do, L=lse, Delta=delta, dK=dk, dV=dv, scale=scale)
    run("attention_bwd_dq", Q=q, K=k, V=v, dO=do, L=lse, Delta=delta, dQ=dq, scale=scale)
    return dq, dk, dv


class _AttentionKernels:
    """The forward program per causality, its launchers, and the op ``tiledsl::attention_fwd``."""

    def __init__(self) -> None:
        if not ATTENTION_SOURCE.is_file():
            raise ArgumentError(f"tiledsl.torch.attention needs {ATTENTION_SOURCE} (a source checkout of tiledsl)")
        import tiledsl
        self.programs = {c: tiledsl.load(ATTENTION_SOURCE, params={"CAUSAL": c}) for c in (0, 1)}
        lse = [p for p in self.programs[0].tensor_params if p.out and p.name != "O"]
        #: The kernel's log-sum-exp output, where it has one (for a backward kernel).
        self.lse = lse[0].name if lse else None
        self.launchers: dict[tuple, Any] = {}

    def launcher(self, causal: bool, device: torch.device, shape_key: dict[str, int]) -> Any:
        """The launcher for this causality on ``device``; tuned tile parameters (``tdslc tune``'s
        cache, ``tiledsl.tune.best_params``) where there are some for the shape."""
        target = "cpu" if device.type == "cpu" else default_target(device)
        key = (causal, target, tuple(sorted(shape_key.items())))
        if key not in self.launchers:
            prog = self.programs[int(causal)]
            if target == "cpu":
                self.launchers[key] = _CpuRunner(prog, "thread")
            else:
                from tiledsl.tune import best_params
                tuned = best_params("attention", {**shape_key, "CAUSAL": int(causal)}, target) or {}
                self.launchers[key] = (prog.specialize(**tuned) if tuned else prog).launcher(target=target)
        return self.launchers[key]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, is_causal: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        o = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        lse = self.empty_lse(q)
        outs = {"O": o} if self.lse is None else {"O": o, self.lse: lse}
        n, d = q.shape[-2:]
        q, k, v = (_launchable(x) for x in (q, k, v))
        self.launcher(is_causal, q.device, {"N": n, "D": d})(Q=q, K=k, V=v, scale=scale, **outs)
        return o, lse

    def empty_lse(self, q: torch.Tensor) -> torch.Tensor:
        b, h, n, _ = q.shape
        shape = (b, h, n) if self.lse is not None else (0,)
        return q.new_empty(shape, dtype=torch.float32)


def _launchable(x: torch.Tensor) -> torch.Tensor:
    """``x``, or a contiguous copy where the kernel could not read it in place (a last dim that is
    not contiguous, a base or a stride off the 16 bytes of the vector accesses)."""
    if x.is_contiguous():
        return x
    size = x.element_size()
    if x.stride(-1) != 1 or x.data_ptr() % 16 or any(s * size % 16 for n, s in zip(x.shape[:-1], x.stride()) if n > 1):
        return x.contiguous()
    return x


@cache
def _kernels() -> _AttentionKernels:
    return _AttentionKernels()


# Registered when this module is imported, as PyTorch extensions register theirs, so that a first
# call inside ``torch.compile`` finds the op (Dynamo cannot trace a registration); the kernels are
# loaded on first use, inside the op and its fake implementation, which Dynamo does not trace.
@torch.library.custom_op("tiledsl::attention_fwd", mutates_args=())
def _attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, is_causal: bool
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    return _kernels().forward(q, k, v, scale, is_causal)


@_attention_fwd.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, is_causal: bool
      ) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(q, memory_format=torch.contiguous_format), _kernels().empty_lse(q)


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, scale, is_causal = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.scale, ctx.is_causal = scale, is_causal


def _backward(ctx: Any, do: torch.Tensor, _dlse: torch.Tensor) -> tuple:
    q, k, v, o, lse = ctx.saved_tensors
    fn = _attention_backward[0] or (kernel_attention_backward if q.is_cuda else reference_attention_backward)
    dq, dk, dv = fn(q, k, v, o, lse, do, ctx.scale, ctx.is_causal)
    return dq, dk, dv, None, None


_attention_fwd.register_autograd(_backward, setup_context=_setup_context)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False,
              scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
    """``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=, scale=, enable_gqa=)``
    for ``[B, H, N, D]`` float16/bfloat16 tensors, queries and keys of one length N (self-attention),
    through ``examples/attention.tdsl``; differentiable. ``enable_gqa``: K and V may have fewer heads
    (a divisor of H), each shared by H/Hkv query heads (repeated before the kernel, so their
    gradients sum). Views with a contiguous last dim are read in place."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ArgumentError(f"attention takes [B, H, N, D] tensors, got q {tuple(q.shape)}, k {tuple(k.shape)}, "
                            f"v {tuple(v.shape)}")
    if q.dtype not in (torch.float16, torch.bfloat16) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ArgumentError(f"attention takes float16 or bfloat16 tensors of one dtype, got {q.dtype}, {k.dtype}, "
                            f"{v.dtype}")
    if k.shape[-2] != q.shape[-2] or v.shape[-2] != q.shape[-2]:
        raise ArgumentError(f"attention needs keys as long as queries (N={q.shape[-2]}), got {k.shape[-2]}: "
                            f"examples/attention.tdsl is self-attention")
    if k.shape[1] != q.shape[1]:
        if not enable_gqa or q.shape[1] % k.shape[1]:
            raise ArgumentError(f"q has {q.shape[1]} heads and k {k.shape[1]}: pass enable_gqa=True with a "
                                f"divisor of the query heads")
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    if v.shape != q.shape or k.shape != q.shape:
        raise ArgumentError(f"q, k, v must have one shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    o, _ = _attention_fwd(q, k, v, scale, bool(is_causal))
    return o
