"""Helpers of the LLVM lowering tests: the examples, the targets, FileCheck, references.

A module with a unique name rather than conftest.py, so that ``from lower_testing import ...``
cannot pick up another test folder's conftest.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

import tiledsl
from tiledsl.backend_amdgpu import AmdgpuTarget
from tiledsl.backend_nvptx import NvptxTarget
from tiledsl.llvm.lower import LoweredKernel, lower_kernel
from tiledsl.llvm.target_base import GpuTarget
from tiledsl.targets import GFX942, Target
from tiledsl.testing import filecheck  # noqa: F401  (the tests import it from here)
from tiledsl.thread import compile_thread_ir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: gfx942 without its MFMAs: a wave64 tiledsl target whose thread IR uses the FMA fallback, for
#: ``AmdgpuTarget("gfx942", matrix=False)`` (the ``generic`` target is wave32 and cannot run there).
GFX942_FMA = dataclasses.replace(GFX942, name="gfx942-fma", matrix_instrs=())


@dataclass(frozen=True)
class LlvmTarget:
    """One row of the test matrix: the tiledsl target the thread IR is made for, and the LLVM
    target it is lowered to."""

    key: str
    thread_target: str | Target
    make: Callable[[], GpuTarget]
    matrix: bool

    @property
    def amd(self) -> bool:
        return self.key.startswith("gfx")


TARGETS: dict[str, LlvmTarget] = {t.key: t for t in (
    LlvmTarget("gfx90a", "gfx90a", lambda: AmdgpuTarget("gfx90a"), True),
    LlvmTarget("gfx942", "gfx942", lambda: AmdgpuTarget("gfx942"), True),
    LlvmTarget("gfx1100", "gfx1100", lambda: AmdgpuTarget("gfx1100"), True),
    LlvmTarget("gfx942-fma", GFX942_FMA, lambda: AmdgpuTarget("gfx942", matrix=False), False),
    # The generic target's wave32 FMA thread IR on an RDNA2 part, which has no matrix unit.
    LlvmTarget("gfx1030-generic", "generic", lambda: AmdgpuTarget("gfx1030"), False),
    LlvmTarget("sm_80", "sm_80", lambda: NvptxTarget("sm_80"), True),
    LlvmTarget("sm_90", "sm_90", lambda: NvptxTarget("sm_90"), True),
)}


@functools.cache
def gpu_target(key: str) -> GpuTarget:
    """One GpuTarget per key, so that its TargetMachine is created once."""
    return TARGETS[key].make()


@functools.cache
def program(source: str, params: tuple[tuple[str, int], ...] = ()) -> tiledsl.Program:
    """An example by name (``attention``) or a program's source text, with params."""
    if "\n" in source:
        return tiledsl.load(source, params=dict(params))
    return tiledsl.load(EXAMPLES / f"{source}.tdsl", params=dict(params))


def lower(source: str, key: str, **params: int) -> LoweredKernel:
    """The example (or source) lowered for the target row ``key``."""
    prog = program(source, tuple(sorted(params.items())))
    kernel, ctx = compile_thread_ir(prog, TARGETS[key].thread_target)
    return lower_kernel(kernel, ctx, gpu_target(key))


def attention_with_swap(swap: bool) -> str:
    """examples/attention.tdsl with ``mma(waves=[4, 1], swap=...)`` written out. Unswapped on AMD, the
    S accumulator spreads each row over 32 lanes and P goes through an LDS scratch to become the
    P·V operand; swapped (the AMD default, docs/targets/matrix-layouts.md §7.1) a lane holds part of a row."""
    text = (EXAMPLES / "attention.tdsl").read_text()
    changed = text.replace("layout rows = mma(waves=[WAVES, 1])",
                           f"layout rows = mma(waves=[WAVES, 1], swap={'true' if swap else 'false'})")
    assert changed != text
    return changed



@functools.cache
def reference() -> ModuleType:
    """examples/reference.py: the float64 NumPy references."""
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference_llvm", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    """Relative Frobenius error; non-finite output fails."""
    out64, ref64 = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out64.shape == ref64.shape
    assert np.isfinite(out64).all(), "non-finite values in the output (unwritten elements?)"
    denom = np.linalg.norm(ref64)
    return float(np.linalg.norm(out64 - ref64) / (denom if denom > 0 else 1.0))


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values (already bf16-rounded) as their bf16 bit patterns."""
    return (np.ascontiguousarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def bf16_values(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- small programs the tests share

BF16_GEMM = """
kernel gemm_bf16(A: bf16[M, K], B: bf16[K, N], out C: f32[M, N], out D: bf16[M, N])
  param BM = 64, BN = 64, BK = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 4 waves
{
  lds a_s: bf16[BM, BK]
  lds b_s: bf16[BK, BN]
  acc = fill(0, f32[BM, BN])
  for k in 0 .. K step BK {
    sync
    a_s <- A[bm*BM : +BM, k : +BK]
    b_s <- B[k : +BK, bn*BN : +BN]
    sync
    acc = dot(a_s, b_s, acc)
  }
  C[bm*BM : +BM, bn*BN : +BN] <- acc
  D[bm*BM : +BM, bn*BN : +BN] <- bf16(acc)
}
"""

F32_GEMM = """
kernel mm(A: f32[M, K], B: f32[K, N], out C: f32[M, N])
  param BM = 32, BN = 32, BK = 16
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 2 waves
{
  lds a_s: f32[BM, BK]
  lds b_s: f32[BK, BN]
  acc = fill(0, f32[BM, BN])
  for k in 0 .. K step BK {
    sync
    a_s <- A[bm*BM : +BM, k : +BK]
    b_s <- B[k : +BK, bn*BN : +BN]
    sync
    acc = dot(a_s, b_s, acc)
  }
  C[bm*BM : +BM, bn*BN : +BN] <- acc
}
"""

COPY = """
kernel copy(X: {dt}[M, N], out Y: {dt}[M, N])
  param BM = 32, BN = 64
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{{
  lds t: {dt}[BM, BN]
  t <- X[i*BM : +BM, j*BN : +BN]
  sync
  Y[i*BM : +BM, j*BN : +BN] <- t
}}
"""

OPS = """
kernel ops(X: f32[M, N], I: i32[M, N], out Y: f32[M, N], out J: i32[M, N], out H: f16[M, N],
           out G: bf16[M, N], out P: i32[M, N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{
  x = X[i*BM : +BM, j*BN : +BN]
  k = I[i*BM : +BM, j*BN : +BN]
  a = abs(x)
  y = sqrt(a) + rsqrt(a + 1.0) + log2(a + 2.0) + exp(x) + exp2(-x) + max(x, 0.5) - min(x, -0.5)
  y = where((x > 0.0 and not (x >= 1.0)) or x == 2.0 or x != x or x <= -1.0, y / (x + 3.0), -y)
  Y[i*BM : +BM, j*BN : +BN] <- y
  J[i*BM : +BM, j*BN : +BN] <- k // 7 + k % 5 - k // (k % 3) + k % (k % 4) + i32(x * 100.0) + max(k, 3)
                                - min(k, -3) + abs(k) * 2 - (-k)
  h = f16(x * 3.0)
  H[i*BM : +BM, j*BN : +BN] <- h * h - f16(k) / f16(7.0) + max(h, f16(0.25))
  g = bf16(x)
  G[i*BM : +BM, j*BN : +BN] <- g * bf16(3.0) + exp(g) - bf16(k)
  P[i*BM : +BM, j*BN : +BN] <- i32(x > 0.5) + i32(f16(x) < f16(0.0)) * 2 + i32(g >= bf16(0.0)) * 4
                                + i32(k == 3) * 8 + i32(k != 0 and k < 10) * 16
}
"""
