"""The f32 math sequences (``tiledsl.llvm.math_f32``) JIT-compiled for the CPU, one function over
arrays, to measure them on millions of inputs (a kernel through ``host_simt`` runs an OS thread
per GPU thread and could not). The sequences are the target-independent code every GPU target
runs; the host's ``exp2`` is ``llvm.exp2.f32`` (libm, correctly rounded in practice), so what is
measured here is the sequences' own error, without the GPU's exp2 primitive.

A module with a unique name rather than conftest.py, as ``host_simt``.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np
from host_simt import HostSimtTarget

from tiledsl.llvm import binding, ir
from tiledsl.llvm.irgen import F32, I32


@functools.cache
def _target() -> HostSimtTarget:
    return HostSimtTarget("generic")


@functools.cache
def _compiled(name: str, arity: int) -> tuple[Any, Any]:
    """``void run(float *x0, ..., float *out, i32 n)``: out[i] = name(x0[i], ...)."""
    target = _target()
    module = ir.Module(name)
    module.triple = target.triple
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.PointerType()] * (arity + 1) + [I32]), "run")
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    n = fn.args[-1]
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I32, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I32)
    i.add_incoming(ir.Constant(I32, 0), entry)
    args = [b.load(b.gep(fn.args[k], [i], source_etype=F32), typ=F32) for k in range(arity)]
    b.store(target.math(b, name, args, "f32"), b.gep(fn.args[arity], [i], source_etype=F32))
    nxt = b.add(i, ir.Constant(I32, 1))
    i.add_incoming(nxt, b.block)          # the sequence may have branched (sin/cos' slow path)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    tm = binding.Target.from_triple(target.triple).create_target_machine(
        cpu=binding.get_host_cpu_name(), features=binding.get_host_cpu_features().flatten(), opt=2)
    mod = binding.parse_assembly(str(module))
    mod.verify()
    engine = binding.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (arity + 1)), ctypes.c_int32)
    return proto(engine.get_function_address("run")), engine


def host_math(name: str, *xs: np.ndarray) -> np.ndarray:
    """``name`` of f32 arrays (of one shape), computed by the sequence on the CPU."""
    xs32 = [np.ascontiguousarray(x, np.float32).reshape(-1) for x in xs]
    out = np.empty_like(xs32[0])
    fn, _ = _compiled(name, len(xs))
    fn(*[x.ctypes.data for x in xs32], out.ctypes.data, out.size)
    return out.reshape(np.shape(xs[0]))


def ulp_error(got: np.ndarray, want64: np.ndarray) -> np.ndarray:
    """|got - want| in ulps of the f32 result (the spacing at the correctly rounded value; subnormal
    spacing below 2^-126); 0 where both are the same non-finite value or NaN."""
    want32 = np.abs(want64).astype(np.float32)
    spacing = np.spacing(np.where(np.isfinite(want32), want32, np.float32(3e38))).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.float64) - want64) / np.maximum(spacing, 2.0 ** -149)
    with np.errstate(over="ignore"):
        rounded = want64.astype(np.float32)
    same = (np.isnan(got) & np.isnan(want64)) | (got.astype(np.float64) == want64) | (got == rounded)
    return np.where(same, 0.0, err)


__all__ = ["host_math", "ulp_error"]
