"""The lowered LLVM IR, run on the CPU (``host_simt``), computes what the thread interpreter
computes: every example at shapes that are not multiples of the tiles, on the thread IR of the
generic target (FMA), gfx942 (wave64, MFMA 32x32x8), gfx1100 (WMMA) and sm_90 (mma.sync), the
matrix instructions emulated from their lane layouts; every element-wise op and dtype;
``lds_dot``; and the table fallback of the layout queries.

Only the target intrinsics are not run here (the GPU tests run them on NVIDIA); which registers
feed which matrix instruction, layouts, masks, memory, loops and reductions are.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from host_simt import HostKernel, HostSimtTarget
from lower_testing import (
    BF16_GEMM,
    COPY,
    F32_GEMM,
    OPS,
    attention_with_swap,
    bf16_bits,
    bf16_values,
    program,
    reference,
    rel_error,
)

from tiledsl.interp.numerics import round_bf16
from tiledsl.llvm import lower_layout, static_ints
from tiledsl.llvm.lower import LoweredKernel, lower_kernel
from tiledsl.thread import compile_thread_ir

TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2, "f32": 1e-4}
_SENTINEL = {"f16": np.float16(np.nan), "bf16": np.uint16(0x7FC0), "f32": np.float32(np.nan), "i32": np.int32(-12345)}


def run_both(source: str, like: str, inputs: dict[str, np.ndarray], scalars: dict[str, Any] | None = None,
             **params: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], LoweredKernel]:
    """Run the program on the host (lowered for ``like``'s thread IR) and in the thread
    interpreter; return both sets of outputs as float64/int64 values, and the lowered kernel.

    ``inputs``: values by parameter name (f16 as float16, bf16 as bf16-rounded float32)."""
    scalars = scalars or {}
    prog = program(source, tuple(sorted(params.items())))
    kernel, ctx = compile_thread_ir(prog, like)
    lk = lower_kernel(kernel, ctx, HostSimtTarget(like))
    shapes = {p.name: inputs[p.name].shape for p in prog.tensor_params if p.name in inputs}
    dims = {d: n for p in prog.tensor_params if p.name in shapes for d, n in zip(p.dims, shapes[p.name])}
    host: dict[str, np.ndarray] = {}
    interp: dict[str, np.ndarray] = {}
    for p in prog.tensor_params:
        shape = inputs[p.name].shape if p.name in inputs else tuple(dims[d] for d in p.dims)
        if p.out:
            host[p.name] = np.full(shape, _SENTINEL[p.dtype])
            interp[p.name] = (bf16_values(host[p.name]) if p.dtype == "bf16" else host[p.name]).copy()
        else:
            x = inputs[p.name]
            host[p.name] = bf16_bits(x) if p.dtype == "bf16" else np.ascontiguousarray(x)
            interp[p.name] = x.copy()
    HostKernel(lk)(host, scalars)
    report = prog.interpret(level="thread", target=like, **interp, **scalars)
    assert report.ok, str(report)
    out_host, out_interp = {}, {}
    for p in prog.tensor_params:
        if p.out:
            h = bf16_values(host[p.name]) if p.dtype == "bf16" else host[p.name]
            out_host[p.name] = h.astype(np.int64 if p.dtype == "i32" else np.float64)
            out_interp[p.name] = interp[p.name].astype(np.int64 if p.dtype == "i32" else np.float64)
    return out_host, out_interp, lk


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    assert rel_error(got, want) <= rtol, f"relative error {rel_error(got, want):.3e}"


# ---------------------------------------------------------------- the examples

ROW_CASES = [("softmax", "generic"), ("softmax", "gfx942"), ("layernorm", "generic"), ("layernorm", "sm_90")]


@pytest.mark.parametrize(("name", "like"), ROW_CASES)
def test_row_kernels(name: str, like: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 300)).astype(np.float32)
    inputs = {"X": x}
    scalars = {}
    if name == "layernorm":
        inputs.update(W=rng.standard_normal(300).astype(np.float32), B=rng.standard_normal(300).astype(np.float32))
        scalars = {"eps": np.float32(1e-5)}
    host, interp, _ = run_both(name, like, inputs, scalars)
    assert_close(host["Y"], interp["Y"], 1e-6)
    assert_close(host["Y"], getattr(reference(), name)(**inputs, **scalars), TOLERANCE["f32"])


@pytest.mark.parametrize("like", ["generic", "gfx942", "gfx1100", "sm_90"])
def test_gemm(like: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((70, 45)).astype(np.float16), rng.standard_normal((45, 90)).astype(np.float16)
    host, interp, lk = run_both("gemm", like, {"A": a, "B": b})
    assert lk.stats.get("matrix" if like != "generic" else "fma")
    assert_close(host["C"], interp["C"], 1e-6)
    assert_close(host["C"], reference().gemm(a, b), TOLERANCE["f32"])


@pytest.mark.parametrize(("like", "d", "causal", "swap"), [
    # None: the target's default (swapped on AMD, not on NVIDIA)
    ("generic", 32, 1, None), ("gfx942", 64, 0, None), ("gfx942", 64, 1, None), ("gfx1100", 64, 1, None),
    ("sm_90", 64, 0, None), ("sm_90", 64, 1, None),
    # swap=true: the hardware computes Sᵀ, A and B operands exchanged (docs/targets/matrix-layouts.md §7.1)
    ("gfx942", 64, 1, False), ("gfx1100", 64, 0, False), ("sm_90", 64, 1, True)])
def test_attention(like: str, d: int, causal: int, swap: bool | None) -> None:
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 77, d)).astype(np.float16) for _ in range(3))
    scale = np.float32(1 / np.sqrt(d))
    bm, bn = (64, 32) if like == "generic" else (128, 64)
    host, interp, _ = run_both("attention" if swap is None else attention_with_swap(swap), like, {"Q": q, "K": k, "V": v},
                               {"scale": scale}, D=d, BM=bm, BN=bn, CAUSAL=causal)
    assert_close(host["O"], interp["O"], 1e-3)   # f16 output: a rounding step apart at most
    assert_close(host["O"], reference().attention(q, k, v, scale, CAUSAL=causal)["O"], TOLERANCE["f16"])




KERNELS = Path(__file__).resolve().parents[1] / "kernels"


@functools.cache
def kernels_reference() -> ModuleType:
    """tests/kernels/reference.py: the float64 references of the test kernels."""
    spec = importlib.util.spec_from_file_location("tdsl_test_kernels_reference_llvm",
                                                  KERNELS / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("like", ["generic", "gfx942", "gfx1100", "sm_90"])
def test_tiles_smaller_than_the_waves(like: str) -> None:
    """Attention with BM=16 over 4 waves (every wave holds all rows) and a decode kernel's 16x32
    scores (waves replicated in pairs, rows reduced across waves): the lowered code, run, agrees
    with the thread interpreter and the reference."""
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((1, 2, 77, 64)).astype(np.float16) for _ in range(3))
    scale = np.float32(0.125)
    host, interp, _ = run_both("attention", like, {"Q": q, "K": k, "V": v}, {"scale": scale},
                               D=64, BM=16, BN=32, CAUSAL=1)
    assert_close(host["O"], interp["O"], 1e-3)
    assert_close(host["O"], reference().attention(q, k, v, scale, CAUSAL=1)["O"], TOLERANCE["f16"])
    q = rng.standard_normal((2, 2, 16, 64)).astype(np.float16)
    k, v = (rng.standard_normal((2, 2, 45, 64)).astype(np.float16) for _ in range(2))
    host, interp, _ = run_both((KERNELS / "decode_attention.tdsl").read_text(), like,
                               {"Q": q, "K": k, "V": v}, {"scale": scale}, D=64)
    assert_close(host["O"], interp["O"], 1e-3)
    assert_close(host["O"], kernels_reference().decode_attention(q, k, v, scale), TOLERANCE["f16"])


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_block_sparse_attention(like: str) -> None:
    """An if inside the key loop that updates the carried tiles for the kept blocks only."""
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal((1, 2, 150, 64)).astype(np.float16) for _ in range(3))
    scalars = {"scale": np.float32(0.125), "dense": np.int32(70)}
    host, interp, _ = run_both((KERNELS / "block_sparse_attention.tdsl").read_text(), like,
                               {"Q": q, "K": k, "V": v}, scalars, D=64)
    assert_close(host["O"], interp["O"], 1e-3)
    want = kernels_reference().block_sparse_attention(q, k, v, 0.125, 70, BN=32)
    assert_close(host["O"], want, TOLERANCE["f16"])


@pytest.mark.parametrize("like", ["generic", "gfx942", "gfx1100", "sm_90"])
def test_sums_of_replicated_operands(like: str) -> None:
    """Sums of tiles in dot operand layouts (copies over waves, and over lanes on WMMA and FMA)."""
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((70, 32)).astype(np.float16), rng.standard_normal((64, 32)).astype(np.float16)
    host, interp, _ = run_both((KERNELS / "operand_sums.tdsl").read_text(), like, {"A": a, "B": b})
    for name, want in (("R", a.astype(np.float64).sum(axis=1)), ("S", b.astype(np.float64).sum(axis=1)),
                       ("X", a.astype(np.float64).max(axis=1))):
        assert_close(host[name], interp[name], 1e-6)
        assert_close(host[name], want, 1e-6)


@pytest.mark.parametrize("like", ["generic", "gfx942", "gfx1100", "sm_90"])
def test_bf16_gemm(like: str) -> None:
    rng = np.random.default_rng(4)
    a, b = (round_bf16(rng.standard_normal(s).astype(np.float32)) for s in ((50, 70), (70, 33)))
    host, interp, _ = run_both(BF16_GEMM, like, {"A": a, "B": b})
    assert_close(host["C"], interp["C"], 1e-6)
    assert_close(host["C"], a.astype(np.float64) @ b, 1e-6)
    assert_close(host["D"], interp["D"], 8e-3)    # bf16: at most one rounding step apart




@pytest.mark.parametrize("like", ["gfx942", "sm_90"])
def test_lds_dot(like: str) -> None:
    """An f32 dot on a matrix target: the FMA loop over k reading LDS (``lds_dot``)."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((45, 40)).astype(np.float32), rng.standard_normal((40, 50)).astype(np.float32)
    host, interp, lk = run_both(F32_GEMM, like, {"A": a, "B": b})
    assert lk.stats["lds_dot"] == 2      # the K loop's full tiles, and its tail
    assert_close(host["C"], interp["C"], 1e-6)
    assert_close(host["C"], a.astype(np.float64) @ b, 1e-6)


# ---------------------------------------------------------------- dtypes and element-wise ops



@pytest.mark.parametrize("like", ["generic", "gfx942"])
@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32", "i32"])
def test_data_movement_is_exact(like: str, dtype: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((45, 150)) * 100
    x = {"f16": x.astype(np.float16), "bf16": round_bf16(x.astype(np.float32)), "f32": x.astype(np.float32),
         "i32": x.astype(np.int32)}[dtype]
    host, interp, _ = run_both(COPY.format(dt=dtype), like, {"X": x})
    assert np.array_equal(host["Y"], interp["Y"])
    assert np.array_equal(host["Y"], x.astype(host["Y"].dtype))




@pytest.mark.parametrize("like", ["generic", "gfx942"])
def test_elementwise_ops(like: str) -> None:
    """Every element-wise op on every dtype, with the edge cases of the integer ops (INT_MIN,
    zero divisors, negative operands) and of the float ones (NaN, ±inf, -0, huge): bit-exact
    except where f32 transcendentals are involved."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((37, 75)) * 3).astype(np.float32)
    x[0, :6] = [np.nan, np.inf, -np.inf, 2.0, 1e30, -0.0]
    k = rng.integers(-1000, 1000, (37, 75)).astype(np.int32)
    k[1, :6] = [np.iinfo(np.int32).min, -7, 0, 3, 7, np.iinfo(np.int32).max]
    with np.errstate(all="ignore"):
        host, interp, _ = run_both(OPS, like, {"X": x, "I": k})
    for name in ("J", "H", "G", "P"):
        same = (host[name] == interp[name]) | (np.isnan(host[name]) & np.isnan(interp[name]))
        assert same.all(), f"{name}: {np.argwhere(~same)[:5].tolist()}"
    y, want = host["Y"], interp["Y"]
    finite = np.isfinite(want)
    assert np.array_equal(np.isnan(y), np.isnan(want)) and np.array_equal(y[~finite & ~np.isnan(want)],
                                                                          want[~finite & ~np.isnan(want)])
    assert np.allclose(y[finite], want[finite], rtol=2e-6, atol=0)


# ---------------------------------------------------------------- the table fallback

@pytest.mark.parametrize(("name", "like"), [("softmax", "generic"), ("attention", "gfx942")])
def test_layout_tables(name: str, like: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the formulas refused, every layout query reads its constant table: same results."""
    monkeypatch.setattr(lower_layout, "fit_bit_linear", lambda q, care=None: None)
    monkeypatch.setattr(lower_layout, "fit_bit_tests", lambda v: None)
    rng = np.random.default_rng(8)
    if name == "softmax":
        inputs = {"X": rng.standard_normal((20, 150)).astype(np.float32)}
        host, interp, lk = run_both(name, like, inputs)
        out = "Y"
    else:
        inputs = {n: rng.standard_normal((1, 1, 70, 64)).astype(np.float16) for n in "QKV"}
        host, interp, lk = run_both(name, like, inputs, {"scale": np.float32(0.125)}, D=64, CAUSAL=1)
        out = "O"
    assert lk.stats["coord:table"] and lk.stats["valid:table"] and not lk.stats.get("coord:linear")
    assert_close(host[out], interp[out], 1e-3)


# ---------------------------------------------------------------- thread-static integers

@pytest.mark.parametrize("like", ["gfx942", "sm_90"])
def test_thread_static_ints_and_split_addresses(like: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """LDS offsets as ``T + C[r]`` and global addresses split into uniform + per-thread + constant
    (``static_ints``) compute what the per-register arithmetic computes: attention with a tail
    tile (N=77: the masked, clamped addresses too), then again with the split refused."""
    rng = np.random.default_rng(9)
    inputs = {n: rng.standard_normal((1, 2, 77, 64)).astype(np.float16) for n in "QKV"}
    host, interp, lk = run_both("attention", like, inputs, {"scale": np.float32(0.125)}, D=64, CAUSAL=1)
    # Q, O, L, and K, V in both loops of split-tail; on sm_90 those are pipelined (cp.async): each loop
    # copies K and V in its prologue and in its two unrolled iterations.
    copies = 2 * 2 * (3 if like == "sm_90" else 1)
    assert lk.stats["static-int:linear"] and lk.stats["global:split"] == 3 + copies      # + the L store
    assert_close(host["O"], interp["O"], 1e-3)
    monkeypatch.setattr(static_ints, "fit_bit_linear", lambda q, care=None: None)
    host, interp, lk = run_both("attention", like, inputs, {"scale": np.float32(0.125)}, D=64, CAUSAL=1)
    assert not lk.stats.get("static-int:linear") and not lk.stats.get("global:split")
    assert_close(host["O"], interp["O"], 1e-3)
