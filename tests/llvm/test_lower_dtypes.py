"""The lowered code of the new dtypes, run on the CPU (``host_simt``) and read as IR and asm:

- fp8 ↔ f32 through native code, the bit-exact software sequence (``tiledsl.llvm.fp8``), over all
  256 patterns of each format and over arbitrary f32 values (hypothesis) against ml_dtypes;
- the programs of ``tests/thread/dtype_cases.py`` (casts between every pair, bit operations, LDS
  round trips of 1- and 8-byte elements, int4 unpacking, i64, fp8 arithmetic) for the thread IR of
  generic, gfx942 and sm_90, against their references;
- where the hardware conversion is used (sm_90, sm_90a: ``cvt.rn.satfinite.e4m3x2.f32``,
  ``cvt.rn.f16x2.e4m3x2``) and where it is not (sm_80, AMD: gfx942's fp8 instructions convert
  the FNUZ formats);
- the address of an element past 2^32 of a tensor, computed in 64 bits by the native code.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import multiprocessing
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from host_simt import _BARRIER_BYTES, _LIBC, HostKernel, HostSimtTarget
from hypothesis import given, settings
from hypothesis import strategies as st
from lower_testing import filecheck, lower

import tiledsl
from tiledsl.llvm.lower import LoweredKernel, lower_kernel
from tiledsl.thread import compile_thread_ir


def _dtype_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "thread" / "dtype_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_dtype_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CASES = _dtype_cases()
FP8 = {"f8e4m3": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2}
ALL_BITS = np.arange(256, dtype=np.uint8)


def host_kernel(prog: tiledsl.Program, like: str) -> HostKernel:
    kernel, ctx = compile_thread_ir(prog, like)
    return HostKernel(lower_kernel(kernel, ctx, HostSimtTarget(like)))


def run_on_host(prog: tiledsl.Program, like: str, args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run ``prog`` on the host with ``args`` (fp8 as ml_dtypes, bf16 as ml_dtypes or float32 values);
    returns every tensor as the test's own types again."""
    types = {p.name: p.dtype for p in [*prog.tensor_params, *prog.scalar_params]}
    arrays, scalars = {}, {}
    for name, v in args.items():
        dtype = types[name]
        if isinstance(v, np.ndarray):
            if dtype in FP8:
                v = np.asarray(v).astype(FP8[dtype]).view(np.uint8)
            elif dtype == "bf16":
                v = np.asarray(v).astype(ml_dtypes.bfloat16).view(np.uint16)
            arrays[name] = np.ascontiguousarray(v)
        else:
            scalars[name] = int(np.array(v).astype(FP8[dtype]).view(np.uint8)) if dtype in FP8 else v
    host_kernel(prog, like)(arrays, scalars)
    out = {}
    for name, v in arrays.items():
        dtype = types[name]
        out[name] = v.view(FP8[dtype]) if dtype in FP8 else v.view(ml_dtypes.bfloat16) if dtype == "bf16" else v
    return out


# ---------------------------------------------------------------- fp8 conversions, exhaustively

CONVERT = """
kernel convert(X: u8[N], F: f32[N], out Y: f32[N], out B: u8[N])
  grid (cdiv(N, 64)) as (g)
  block 1 waves
{
  Y[g*64 : +64] <- f32(bitcast(X[g*64 : +64], T))
  B[g*64 : +64] <- bitcast(T(F[g*64 : +64]), u8)
}
"""


@functools.cache
def converter(dtype: str) -> HostKernel:
    return host_kernel(tiledsl.load(CONVERT.replace("T", dtype)), "generic")


def convert_on_host(dtype: str, x_bits: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x_bits.size
    arrays = {"X": np.ascontiguousarray(x_bits, np.uint8), "F": np.ascontiguousarray(f, np.float32),
              "Y": np.zeros(n, np.float32), "B": np.zeros(n, np.uint8)}
    converter(dtype)(arrays, {})
    return arrays["Y"], arrays["B"]


def saturated(f: np.ndarray, dtype: str) -> np.ndarray:
    """ml_dtypes' rounding of ``f`` after tiledsl's saturation."""
    top = {"f8e4m3": 448.0, "f8e5m2": 57344.0}[dtype]
    return np.clip(np.asarray(f, np.float32), -top, top).astype(FP8[dtype])


def assert_same_fp8(got_bits: np.ndarray, want: np.ndarray) -> None:
    want_bits = want.view(np.uint8)
    nan = np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(got_bits[~nan], want_bits[~nan])
    assert np.isnan(got_bits[nan].view(want.dtype).astype(np.float32)).all()


@pytest.mark.parametrize("dtype", list(FP8))
def test_every_fp8_pattern_through_native_code(dtype: str) -> None:
    values = ALL_BITS.view(FP8[dtype]).astype(np.float32)
    y, b = convert_on_host(dtype, ALL_BITS, values)
    np.testing.assert_array_equal(y, values)                     # fp8 → f32 exactly (NaN, -0 included)
    assert np.array_equal(np.signbit(y), np.signbit(values))     # the NaNs' signs too, though unspecified
    assert_same_fp8(b, saturated(values, dtype))                 # and back: every pattern but NaN's kept
    finite = np.isfinite(values)
    np.testing.assert_array_equal(b[finite], ALL_BITS[finite])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True), min_size=1,
                max_size=200), st.sampled_from(list(FP8)))
def test_f32_to_fp8_through_native_code(values: list[float], dtype: str) -> None:
    f = np.array(values, np.float32)
    # Values near the format's rounding points too: each value's neighbours in f32.
    with np.errstate(over="ignore"):
        f = np.concatenate([f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))])
    _, b = convert_on_host(dtype, np.zeros(f.size, np.uint8), f)
    assert_same_fp8(b, saturated(f, dtype))


@pytest.mark.parametrize("dtype", list(FP8))
def test_f32_to_fp8_at_every_midpoint(dtype: str) -> None:
    """Every halfway point between neighbouring fp8 values, and one f32 ulp either side of it."""
    values = np.sort(np.unique(ALL_BITS.view(FP8[dtype]).astype(np.float64)[np.isfinite(
        ALL_BITS.view(FP8[dtype]).astype(np.float32))]))
    mid = ((values[1:] + values[:-1]) / 2).astype(np.float32)
    f = np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))])
    _, b = convert_on_host(dtype, np.zeros(f.size, np.uint8), f)
    assert_same_fp8(b, saturated(f, dtype))


# ---------------------------------------------------------------- the dtype programs

HOST_CASES = [*[f"casts-{d}" for d in CASES.NUMPY], *[f"bits-{d}" for d in CASES.INTS], "lds-u8", "lds-f8e4m3",
              "lds-i64-64x16", "lds-i16", "int4", "wide", "offsets", "fp8"]


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
@pytest.mark.parametrize("name", HOST_CASES)
def test_lowered_code_matches_the_reference(name: str, like: str) -> None:
    case = CASES.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference(case.inputs(np.random.default_rng(0)))
    got = run_on_host(case.program(), like, args)
    for k in case.outs:
        assert CASES.same(got[k], want[k]), k


# ---------------------------------------------------------------- which instructions

CASTS_F32 = """
kernel casts(X: f32[N], out A: f8e4m3[N], out B: f8e5m2[N], out C: f32[N], out D: f16[N])
  grid (cdiv(N, 128)) as (g)
  block 2 waves
{
  x = X[g*128 : +128]
  a = f8e4m3(x)
  b = f8e5m2(x)
  A[g*128 : +128] <- a
  B[g*128 : +128] <- b
  C[g*128 : +128] <- f32(a) + f32(b)
  D[g*128 : +128] <- f16(a)
}
"""


@pytest.mark.parametrize("key", ["sm_90"])
def test_sm_90_converts_fp8_pairs_in_hardware(key: str) -> None:
    lk: LoweredKernel = lower(CASTS_F32, key)
    text = str(lk.module)
    filecheck(text, r"""
CHECK: call i16 @"llvm.nvvm.ff.to.e4m3x2.rn"(float
CHECK: call i16 @"llvm.nvvm.ff.to.e5m2x2.rn"(float
CHECK: call <2 x half> @"llvm.nvvm.e4m3x2.to.f16x2.rn"(i16
CHECK: call <2 x half> @"llvm.nvvm.e5m2x2.to.f16x2.rn"(i16
""")
    assert "llvm.roundeven" not in text               # no software conversion left
    ptx = lk.compile().asm
    filecheck(ptx, r"""
CHECK: cvt.rn.satfinite.e4m3x2.f32
CHECK: cvt.rn.satfinite.e5m2x2.f32
CHECK: cvt.rn.f16x2.e4m3x2
CHECK: cvt.rn.f16x2.e5m2x2
""")
    # Two registers an instruction: 4 registers of 128/64 threads take 2 conversions each way.
    calls = [text.count(f'call i16 @"llvm.nvvm.ff.to.{f}x2.rn"(') for f in ("e4m3", "e5m2")]
    assert calls == [2, 2]


def test_sm_90a_converts_fp8_in_hardware_too() -> None:
    art = tiledsl.load(CASTS_F32).compile(target="sm_90a")
    assert "cvt.rn.satfinite.e4m3x2.f32" in art.asm and "cvt.rn.f16x2.e5m2x2" in art.asm


@pytest.mark.parametrize("target", ["sm_80", "gfx942", "gfx90a", "gfx1100"])
def test_the_software_conversion_elsewhere(target: str) -> None:
    """sm_80 has no fp8 conversion; gfx942's v_cvt_pk_fp8_f32 / v_cvt_f32_fp8 are FNUZ, not OCP."""
    art = tiledsl.load(CASTS_F32).compile(target=target)
    assert "llvm.roundeven.f32" in art.llvm_ir or "roundeven" in art.llvm_ir
    for instr in ("cvt.rn.satfinite", "e4m3x2", "v_cvt_pk_fp8_f32", "v_cvt_f32_fp8", "v_cvt_pk_bf8_f32"):
        assert instr not in art.asm


def test_unsigned_and_wide_integer_instructions() -> None:
    """u32 divides, shifts and compares unsigned; i64 is one 64-bit op, not two 32-bit ones, in IR."""
    lk = lower(CASES.CASES["bits-u32"].source, "sm_90")
    text = str(lk.module)
    for needle in ("udiv i32", "urem i32", "lshr i32", "icmp ult i32", "@\"llvm.umax.i32\""):
        assert needle in text, needle
    assert "ashr i32" not in text and "sdiv i32" not in text
    wide = str(lower(CASES.CASES["bits-i64"].source, "gfx942").module)
    for needle in ("sdiv i64", "ashr i64", "shl i64", "@\"llvm.smax.i64\"", "icmp slt i64"):
        assert needle in wide, needle


# ---------------------------------------------------------------- 64-bit addresses

FAR = """
kernel far(X: u8[R, C], r: i32, c: i32, out Y: u8[64])
  grid (1) as (g)
  block 1 waves
{
  Y[0 : +64] <- X[r, c : +64]
}
"""


def _far_read(conn: Any, rows: int, cols: int, r: int, c: int) -> None:
    """In a child process: run ``far`` on a tensor whose base lies ``r·cols + c`` bytes before a
    64-byte buffer; send back what it read (a wrong address would crash only this child)."""
    prog = tiledsl.load(FAR)
    kernel = host_kernel(prog, "generic")
    buf = (ctypes.c_uint8 * 64)(*range(1, 65))
    out = (ctypes.c_uint8 * 64)()
    base = ctypes.addressof(buf) - (r * cols + c)
    values = []
    for a in kernel.lowered.args:
        values.append({"X": base, "Y": ctypes.addressof(out), "r": r, "c": c, "R": rows, "C": cols}[a.name])
    barrier = ctypes.create_string_buffer(_BARRIER_BYTES)
    threads_n = kernel.lowered.block_threads
    assert _LIBC.pthread_barrier_init(barrier, None, threads_n) == 0
    threads = [threading.Thread(target=kernel.fn, args=(*values, t, 0, 0, 0, ctypes.addressof(barrier)))
               for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    conn.send(list(out))


def test_an_element_past_2_to_the_32_is_addressed_in_64_bits() -> None:
    rows, cols = 2**17 + 3, 2**15          # 2^32 + 3·2^15 bytes
    r, c = rows - 1, cols - 64
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_far_read, args=(child, rows, cols, r, c))
    proc.start()
    got = parent.recv() if parent.poll(120) else None
    proc.join(30)
    assert proc.exitcode == 0, f"the kernel's process ended with {proc.exitcode} (a wrong address?)"
    assert got == list(range(1, 65))
