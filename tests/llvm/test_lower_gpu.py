"""The examples compiled for sm_90 run on an NVIDIA GPU (through CuPy) and agree with the thread
interpreter and with the NumPy references, at shapes that are not multiples of the tiles.

Needs CuPy and a GPU (skipped otherwise). The PTX is loaded with ``cuModuleLoadData``
(``cupy.cuda.function.Module.load``: ``cupy.RawModule(code=...)`` would hand the text to NVRTC
as CUDA C++); the dynamic shared memory is the kernel's ``lds_bytes``, opted into above 48 KiB.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from lower_testing import (
    BF16_GEMM,
    COPY,
    F32_GEMM,
    OPS,
    bf16_bits,
    bf16_values,
    program,
    reference,
    rel_error,
)

from tiledsl.backend_nvptx import NvptxTarget
from tiledsl.interp.numerics import round_bf16
from tiledsl.llvm.lower import LoweredKernel, lower_kernel
from tiledsl.testing import require_cuda
from tiledsl.thread import compile_thread_ir

pytestmark = pytest.mark.gpu

cp = require_cuda()

ARCH = "sm_90"
TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-4}
_NUMPY = {"f16": np.float16, "bf16": np.uint16, "f32": np.float32, "i32": np.int32}
_SENTINEL = {"f16": np.float16(np.nan), "bf16": np.uint16(0x7FC0), "f32": np.float32(np.nan), "i32": np.int32(-12345)}
_SCALAR = {"f32": np.float32, "i32": np.int32}


class GpuKernel:
    """A lowered kernel loaded on the GPU."""

    def __init__(self, lk: LoweredKernel) -> None:
        self.lk = lk
        self.compiled = lk.compile()
        self.module = cp.cuda.function.Module()
        self.module.load(self.compiled.ptx.encode())
        self.fn = self.module.get_function(lk.name)
        self.shared = self.compiled.dynamic_lds_bytes
        assert self.shared == lk.lds_bytes
        if self.shared > 48 * 1024:   # above 48 KiB a kernel must opt in
            attr = getattr(cp.cuda.driver, "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", 8)
            cp.cuda.driver.funcSetAttribute(self.fn.ptr, attr, self.shared)

    def __call__(self, arrays: dict[str, Any], scalars: dict[str, Any], dims: dict[str, int]) -> None:
        args: list[Any] = []
        for a in self.lk.args:
            if a.kind == "tensor":
                args.append(arrays[a.name])
            elif a.kind == "scalar":
                args.append(_SCALAR[a.dtype](scalars[a.name]))
            else:
                args.append(np.int32(dims[a.name]))
        self.fn(self.lk.grid(dims), (self.lk.block_threads,), tuple(args), shared_mem=self.shared)


def run_gpu_and_interpreter(source: str, inputs: dict[str, np.ndarray], scalars: dict[str, Any] | None = None,
                            **params: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Outputs (float64/int64) of the GPU run and of the thread interpreter for sm_90.

    ``inputs``: values by parameter name (f16 as float16, bf16 as bf16-rounded float32)."""
    scalars = scalars or {}
    prog = program(source, tuple(sorted(params.items())))
    kernel, ctx = compile_thread_ir(prog, ARCH)
    gpu = GpuKernel(lower_kernel(kernel, ctx, NvptxTarget(ARCH)))
    dims = {d: n for p in prog.tensor_params if p.name in inputs for d, n in zip(p.dims, inputs[p.name].shape)}
    dev: dict[str, Any] = {}
    interp: dict[str, np.ndarray] = {}
    for p in prog.tensor_params:
        shape = inputs[p.name].shape if p.name in inputs else tuple(dims[d] for d in p.dims)
        if p.out:
            init = np.full(shape, _SENTINEL[p.dtype])
            interp[p.name] = bf16_values(init) if p.dtype == "bf16" else init.copy()
        else:
            x = inputs[p.name]
            init = bf16_bits(x) if p.dtype == "bf16" else x.astype(_NUMPY[p.dtype])
            interp[p.name] = x.copy()
        dev[p.name] = cp.asarray(init)
    gpu(dev, scalars, dims)
    cp.cuda.runtime.deviceSynchronize()
    report = prog.interpret(level="thread", target=ARCH, **interp, **scalars)
    assert report.ok, str(report)
    out_gpu, out_interp = {}, {}
    for p in prog.tensor_params:
        if p.out:
            got = dev[p.name].get()
            got = bf16_values(got) if p.dtype == "bf16" else got
            kind = np.int64 if p.dtype == "i32" else np.float64
            out_gpu[p.name], out_interp[p.name] = got.astype(kind), interp[p.name].astype(kind)
    return out_gpu, out_interp


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("d", [64, 128])
def test_attention(d: int, causal: int) -> None:
    rng = np.random.default_rng(d + causal)
    q, k, v = (rng.standard_normal((2, 3, 333, d)).astype(np.float16) for _ in range(3))
    scale = np.float32(1 / np.sqrt(d))
    out, interp = run_gpu_and_interpreter("attention", {"Q": q, "K": k, "V": v}, {"scale": scale},
                                          D=d, BM=128, BN=64, CAUSAL=causal)
    err_i = rel_error(out["O"], interp["O"])
    ref = reference().attention(q, k, v, scale, CAUSAL=causal)
    err_r = rel_error(out["O"], ref["O"])
    assert rel_error(out["L"], ref["L"]) <= 1e-5 and rel_error(out["L"], interp["L"]) <= 1e-5
    print(f"\nattention D={d} causal={causal}: vs interpreter {err_i:.2e}, vs reference {err_r:.2e}")
    assert err_i <= 2e-3 and err_r <= TOLERANCE["f16"]


def test_gemm() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((300, 200)).astype(np.float16), rng.standard_normal((200, 250)).astype(np.float16)
    out, interp = run_gpu_and_interpreter("gemm", {"A": a, "B": b})
    assert rel_error(out["C"], interp["C"]) <= 1e-5
    assert rel_error(out["C"], reference().gemm(a, b)) <= TOLERANCE["f32"]


@pytest.mark.parametrize("name", ["softmax", "layernorm"])
def test_row_kernels(name: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((77, 1000)).astype(np.float32)
    inputs, scalars = {"X": x}, {}
    if name == "layernorm":
        inputs.update(W=rng.standard_normal(1000).astype(np.float32), B=rng.standard_normal(1000).astype(np.float32))
        scalars = {"eps": 1e-5}
    out, interp = run_gpu_and_interpreter(name, inputs, scalars)
    # exp2/log2 are the hardware approximations (ex2.approx: 2 ulp): close to, not equal to, NumPy's.
    assert rel_error(out["Y"], interp["Y"]) <= 1e-5
    assert rel_error(out["Y"], getattr(reference(), name)(**inputs, **scalars)) <= TOLERANCE["f32"]


def test_bf16_and_f32_dots() -> None:
    """bf16 operands (mma.sync bf16) and f32 operands (the lds_dot FMA loop)."""
    rng = np.random.default_rng(3)
    a, b = (round_bf16(rng.standard_normal(s).astype(np.float32)) for s in ((150, 70), (70, 133)))
    out, interp = run_gpu_and_interpreter(BF16_GEMM, {"A": a, "B": b})
    assert rel_error(out["C"], a.astype(np.float64) @ b) <= 1e-5
    assert rel_error(out["D"], interp["D"]) <= 8e-3
    a, b = rng.standard_normal((45, 40)).astype(np.float32), rng.standard_normal((40, 50)).astype(np.float32)
    out, interp = run_gpu_and_interpreter(F32_GEMM, {"A": a, "B": b})
    assert rel_error(out["C"], a.astype(np.float64) @ b) <= 1e-5


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32", "i32"])
def test_data_movement_is_exact(dtype: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((45, 150)) * 100
    x = {"f16": x.astype(np.float16), "bf16": round_bf16(x.astype(np.float32)), "f32": x.astype(np.float32),
         "i32": x.astype(np.int32)}[dtype]
    out, interp = run_gpu_and_interpreter(COPY.format(dt=dtype), {"X": x})
    assert np.array_equal(out["Y"], interp["Y"]) and np.array_equal(out["Y"], x.astype(out["Y"].dtype))


def test_elementwise_ops() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((37, 75)) * 3).astype(np.float32)
    x[0, :6] = [np.nan, np.inf, -np.inf, 2.0, 1e30, -0.0]
    k = rng.integers(-1000, 1000, (37, 75)).astype(np.int32)
    k[1, :6] = [np.iinfo(np.int32).min, -7, 0, 3, 7, np.iinfo(np.int32).max]
    with np.errstate(all="ignore"):
        out, interp = run_gpu_and_interpreter(OPS, {"X": x, "I": k})
    for name in ("J", "P"):
        assert np.array_equal(out[name], interp[name]), name
    # f16/bf16 results go through the hardware exp2: at most a rounding step from the interpreter's.
    for name, step in (("H", 2e-3), ("G", 1.6e-2), ("Y", 1e-5)):
        finite = np.isfinite(interp[name])
        assert np.array_equal(np.isnan(out[name]), np.isnan(interp[name])), name
        assert np.allclose(out[name][finite], interp[name][finite], rtol=step, atol=1e-6), name


def test_attention_throughput() -> None:
    """Not a benchmark: one timing of a realistic shape, printed for the record."""
    z, h, n, d = 4, 16, 4096, 128
    prog = program("attention", (("BM", 128), ("BN", 64), ("CAUSAL", 0), ("D", d)))
    kernel, ctx = compile_thread_ir(prog, ARCH)
    gpu = GpuKernel(lower_kernel(kernel, ctx, NvptxTarget(ARCH)))
    q, k, v = (cp.random.standard_normal((z, h, n, d), dtype=cp.float32).astype(cp.float16) for _ in range(3))
    o = cp.zeros_like(q)
    lse = cp.zeros((z, h, n), dtype=cp.float32)
    dims = {"Z": z, "H": h, "N": n}
    gpu({"Q": q, "K": k, "V": v, "O": o, "L": lse}, {"scale": 1 / np.sqrt(d)}, dims)
    cp.cuda.runtime.deviceSynchronize()
    start = time.perf_counter()
    reps = 5
    for _ in range(reps):
        gpu({"Q": q, "K": k, "V": v, "O": o, "L": lse}, {"scale": 1 / np.sqrt(d)}, dims)
    cp.cuda.runtime.deviceSynchronize()
    seconds = (time.perf_counter() - start) / reps
    flops = 4 * z * h * n * n * d
    print(f"\nattention sm_90 Z={z} H={h} N={n} D={d}: {seconds * 1e3:.2f} ms, {flops / seconds / 1e12:.1f} TFLOP/s")
    assert bool(cp.isfinite(o).all())
