"""Programs on the fp8 and small/wide integer dtypes, with references written in NumPy, ml_dtypes and
plain Python integers (not with ``tiledsl.interp.numerics``): shared by the interpreter tests
(``test_dtypes.py``), the lowering run on the CPU (``tests/llvm/test_lower_dtypes.py``) and the GPU
tests (``tests/runtime/test_cuda_dtypes.py``).

- ``casts-SRC``: an SRC tile cast to every dtype (i1 through an i32), special and out-of-range
  values included;
- ``bits-T``: ``& | ^ ~ << >>`` and integer arithmetic and comparisons, shift counts past the width
  and negative;
- ``lds-T``: a tile through LDS (a cooperative copy, a read, a transposed read), a fill and a select;
- ``int4``: packed int4 weights unpacked in registers (offset-binary and two's complement nibbles)
  and scaled per group, the kernel an int4 GEMM starts with;
- ``wide``: i64 arithmetic past 2^31, comparisons, an i64 scalar argument, i64 slice starts, and an
  i64 row sum across waves (its LDS scratch has 8-byte slots);
- ``offsets``: one-element loads of an i64 (a row index) and a u8 (a loop bound) steering a kernel;
- ``fp8``: fp8 tiles through LDS, arithmetic on them (saturating), row maxima.

Shapes are not multiples of the tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

import tiledsl

FP8 = {"f8e4m3": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2}
FP8_MAX = {"f8e4m3": 448.0, "f8e5m2": 57344.0}
INTS = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "u32": np.uint32, "i64": np.int64}
FLOATS = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, **FP8}
#: Every dtype a tensor may have, as the NumPy type of the arrays the tests pass.
NUMPY = {**FLOATS, **INTS}


@dataclass
class Case:
    """A program, its inputs (out arrays filled with a sentinel) and a reference of its outs."""

    source: str
    params: dict[str, int]
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[[dict[str, Any]], dict[str, np.ndarray]]
    outs: list[str] = field(default_factory=list)

    def program(self) -> tiledsl.Program:
        return tiledsl.load(self.source, params=self.params)


def same(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal values (NaN equal to NaN, -0 to 0), whatever the arrays' types."""
    if np.dtype(want.dtype).kind in "iub" and np.dtype(got.dtype).kind in "iub":
        return bool(np.array_equal(got.astype(np.int64), want.astype(np.int64)))
    return bool(np.array_equal(np.asarray(got).astype(np.float64), np.asarray(want).astype(np.float64), equal_nan=True))


def run_level(case: Case, level: str, target: str | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    args = case.inputs(np.random.default_rng(seed))
    report = case.program().interpret(level=level, target=target, **args)
    assert report.ok, str(report)
    return {k: args[k] for k in case.outs}


def expected(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    return case.reference(case.inputs(np.random.default_rng(seed)))


# ---------------------------------------------------------------- reference conversions

def ref_cast(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """tiledsl's conversion rules (README, "Casts"), from NumPy, ml_dtypes and Python integers."""
    if src == dst:
        return x                        # no conversion (an e5m2 infinity stays)
    if dst == "i1":
        return x.astype(np.float64) != 0 if src in FLOATS else x != 0
    if dst in INTS:
        if src in INTS:
            return _wrap(x, dst)
        return np.array([_float_to_int(v, dst) for v in x.astype(np.float64).reshape(-1)],
                        dtype=INTS[dst]).reshape(x.shape)
    f32 = x.astype(np.float32)          # an integer goes through f32, as every float op does
    if dst in FP8:
        return np.clip(f32, -FP8_MAX[dst], FP8_MAX[dst]).astype(FP8[dst])
    with np.errstate(over="ignore"):    # to inf, as f16 overflows
        return f32.astype(FLOATS[dst])


def _wrap(x: np.ndarray, dst: str) -> np.ndarray:
    bits = 8 * np.dtype(INTS[dst]).itemsize
    out = []
    for v in x.reshape(-1).tolist():
        w = int(v) % (1 << bits)
        if dst[0] == "i" and w >= 1 << (bits - 1):
            w -= 1 << bits
        out.append(w)
    return np.array(out, dtype=INTS[dst]).reshape(x.shape)


def _float_to_int(v: float, dst: str) -> int:
    info = np.iinfo(INTS[dst])
    if math.isnan(v):
        return 0
    if math.isinf(v):
        return int(info.max) if v > 0 else int(info.min)
    return max(int(info.min), min(int(info.max), math.trunc(v)))


# ---------------------------------------------------------------- values

def special_floats(dtype: str) -> np.ndarray:
    """Values at the edges of every conversion: NaN, infinities, zeros, fp8/f16 subnormals and
    limits, ties, integer limits."""
    v = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.75, 127.5, -128.7, 255.9, 256.0,
         -129.0, 448.0, 449.0, 464.0, 465.0, 480.0, -500.0, 57344.0, 61440.0, 61439.0, 1e5, -1e6, 65504.0, 65520.0,
         2.0 ** -6, 2.0 ** -9, 2.0 ** -10, 3 * 2.0 ** -10, 2.0 ** -14, 2.0 ** -16, 2.0 ** -17, 2.0 ** -24, 1e-30,
         -1e-30, 32767.5, -32768.9, 2.0 ** 31, -(2.0 ** 31), 2.0 ** 31 - 128, 4294967040.0, 4294967296.0, 2.0 ** 62,
         2.0 ** 63, -(2.0 ** 63), 1e20, -1e20, 3e38]
    with np.errstate(over="ignore"):
        return np.array(v, dtype=np.float64).astype(np.float32).astype(FLOATS[dtype])


def special_ints(dtype: str) -> np.ndarray:
    info = np.iinfo(INTS[dtype])
    v = {int(info.min), int(info.max), 0, 1, 2, 3, 7, 8, 15, 16, 127, 128, 255, 256, 448, 449, 2**24 + 1,
         2**31 - 1, 2**31, 2**32 - 1, 2**53 + 1, -1, -2, -8, -128, -129, -(2**31)}
    return np.array(sorted(x for x in v if info.min <= x <= info.max), dtype=object).astype(INTS[dtype])


def values(dtype: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random values of ``dtype`` with the special ones first."""
    n = math.prod(shape)
    if dtype in FP8:
        pool = np.arange(256, dtype=np.uint8).view(FP8[dtype])       # every fp8 value
        rand = pool[rng.integers(0, 256, n)]
        special = pool
    elif dtype in FLOATS:
        with np.errstate(over="ignore"):
            rand = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)).astype(np.float32).astype(FLOATS[dtype])
        special = special_floats(dtype)
    else:
        info = np.iinfo(INTS[dtype])
        rand = rng.integers(int(info.min), int(info.max), n, endpoint=True, dtype=INTS[dtype])
        special = special_ints(dtype)
    out = rand.copy()
    out[:min(n, special.size)] = special[:n]
    return out.reshape(shape)


def _sentinel(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype in INTS:
        return np.full(shape, 123, INTS[dtype])
    return np.full(shape, np.nan, np.float32).astype(NUMPY[dtype])


# ---------------------------------------------------------------- casts

CAST_DSTS = [*NUMPY, "i1"]


def _cast_name(d: str) -> str:
    return f"Y_{d}"


def casts(src: str, m: int = 37, n: int = 45) -> Case:
    lines = []
    params = [f"X: {src}[M, N]"]
    for d in CAST_DSTS:
        dtype = "i32" if d == "i1" else d
        params.append(f"out {_cast_name(d)}: {dtype}[M, N]")
        value = "i32(i1(x))" if d == "i1" else f"{d}(x)"
        lines.append(f"  {_cast_name(d)}[i*BM : +BM, j*BN : +BN] <- {value}")
    source = (f"kernel casts({', '.join(params)})\n  param BM = 16, BN = 32\n"
              "  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)\n  block 2 waves\n{\n"
              "  x = X[i*BM : +BM, j*BN : +BN]\n" + "\n".join(lines) + "\n}\n")

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        args: dict[str, Any] = {"X": values(src, rng, (m, n))}
        for d in CAST_DSTS:
            args[_cast_name(d)] = _sentinel("i32" if d == "i1" else d, (m, n))
        return args

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"]
        out = {_cast_name(d): ref_cast(x, src, d) for d in CAST_DSTS if d != "i1"}
        out[_cast_name("i1")] = ref_cast(x, src, "i1").astype(np.int32)
        return out
    return Case(source, {}, inputs, reference, [_cast_name(d) for d in CAST_DSTS])


# ---------------------------------------------------------------- bit operations and integer arithmetic

BIT_OUTS = ["AND", "OR", "XOR", "NOT", "SHL", "SHR", "ADD", "MUL", "DIV", "MOD", "MAX", "LT"]


def bits(dtype: str, n: int = 300) -> Case:
    params = ", ".join([f"A: {dtype}[N]", f"B: {dtype}[N]", *(f"out {o}: {'i32' if o == 'LT' else dtype}[N]"
                                                              for o in BIT_OUTS)])
    source = f"""
kernel bits({params})
  param BN = 128
  grid (cdiv(N, BN)) as (g)
  block 2 waves
{{
  a = A[g*BN : +BN]
  b = B[g*BN : +BN]
  AND[g*BN : +BN] <- a & b
  OR[g*BN : +BN] <- a | b
  XOR[g*BN : +BN] <- a ^ b
  NOT[g*BN : +BN] <- ~a
  SHL[g*BN : +BN] <- a << b
  SHR[g*BN : +BN] <- a >> b
  ADD[g*BN : +BN] <- a + b * 3
  MUL[g*BN : +BN] <- a * b
  DIV[g*BN : +BN] <- a // b
  MOD[g*BN : +BN] <- a % b
  MAX[g*BN : +BN] <- max(a, b) - min(a, b)
  LT[g*BN : +BN] <- i32(a < b) + 2 * i32(a == b)
}}
"""
    width = 8 * np.dtype(INTS[dtype]).itemsize

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        a = values(dtype, rng, (n,))
        b = values(dtype, rng, (n,))
        # Shift counts: in range, the width and past it, negative (huge when unsigned), zero.
        counts = np.array([0, 1, 3, width - 1, width, width + 1, 2 * width, 100, -1, -width], dtype=np.int64)
        b[:counts.size] = _wrap(counts, dtype)
        b[counts.size:2 * counts.size] = _wrap(rng.integers(0, width, counts.size), dtype)
        a[-5:] = a[:5]
        b[-5:] = a[:5]                 # equal pairs for the comparison
        return {"A": a, "B": b, **{o: _sentinel("i32" if o == "LT" else dtype, (n,)) for o in BIT_OUTS}}

    def reference(args: dict[str, Any]) -> dict[str, np.ndarray]:
        a, b = (np.array([int(v) for v in args[k]], dtype=object) for k in ("A", "B"))
        unsigned = dtype[0] == "u"

        def shl(x: int, c: int) -> int:
            c = c % (1 << width)            # the count as unsigned
            return 0 if c >= width else x << c

        def shr(x: int, c: int) -> int:
            c = c % (1 << width)
            if c >= width:
                return -1 if x < 0 and not unsigned else 0
            return x >> c                   # Python's >> floors: arithmetic

        def floordiv(x: int, y: int) -> int:
            return 0 if y == 0 else x // y

        def mod(x: int, y: int) -> int:
            return 0 if y == 0 else x % y

        rows = {"AND": [x & y for x, y in zip(a, b)], "OR": [x | y for x, y in zip(a, b)],
                "XOR": [x ^ y for x, y in zip(a, b)], "NOT": [~x for x in a],
                "SHL": [shl(x, y) for x, y in zip(a, b)], "SHR": [shr(x, y) for x, y in zip(a, b)],
                "ADD": [x + y * 3 for x, y in zip(a, b)], "MUL": [x * y for x, y in zip(a, b)],
                "DIV": [floordiv(x, y) for x, y in zip(a, b)], "MOD": [mod(x, y) for x, y in zip(a, b)],
                "MAX": [max(x, y) - min(x, y) for x, y in zip(a, b)]}
        out = {k: _wrap(np.array(v, dtype=object), dtype) for k, v in rows.items()}
        out["LT"] = np.array([int(x < y) + 2 * int(x == y) for x, y in zip(a, b)], np.int32)
        return out
    return Case(source, {}, inputs, reference, BIT_OUTS)


# ---------------------------------------------------------------- LDS

def lds(dtype: str, m: int = 45, n: int = 77, bm: int = 32, bn: int = 64) -> Case:
    zero = "0" if dtype in INTS else "0.0"
    source = f"""
kernel through_lds(X: {dtype}[M, N], out Y: {dtype}[M, N], out Yt: {dtype}[N, M], out Z: {dtype}[M, N])
  param BM = {bm}, BN = {bn}
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 4 waves
{{
  lds xs: {dtype}[BM, BN]
  xs <- X[i*BM : +BM, j*BN : +BN]
  sync
  Y[i*BM : +BM, j*BN : +BN] <- xs
  Yt[j*BN : +BN, i*BM : +BM] <- xs^T
  x = xs
  Z[i*BM : +BM, j*BN : +BN] <- where(x > {zero}, x, fill({dtype}(3), {dtype}[BM, BN]))
}}
"""

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": values(dtype, rng, (m, n)), "Y": _sentinel(dtype, (m, n)), "Yt": _sentinel(dtype, (n, m)),
                "Z": _sentinel(dtype, (m, n))}

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x = a["X"]
        wide = x.astype(np.float64) if dtype in FLOATS else x.astype(object)
        return {"Y": x, "Yt": x.T, "Z": np.where(wide > 0, x, np.array(3).astype(NUMPY[dtype]))}
    return Case(source, {}, inputs, reference, ["Y", "Yt", "Z"])


# ---------------------------------------------------------------- int4 unpacking

INT4 = """
kernel int4_dequant(W: u8[KH, N], S: f16[G, N], out Y: f16[2, KH, N], out T: i8[2, KH, N])
  param BK = 32, BN = 64
  grid (cdiv(KH, BK), cdiv(N, BN)) as (k, n)
  block 2 waves
{
  w = W[k*BK : +BK, n*BN : +BN]
  s = S[k : +1, n*BN : +BN]
  lo = f16(i8(w & 15) - 8)
  hi = f16(i8(w >> 4) - 8)
  Y[0, k*BK : +BK, n*BN : +BN] <- lo * s
  Y[1, k*BK : +BK, n*BN : +BN] <- hi * s
  v = bitcast(w, i8)
  T[0, k*BK : +BK, n*BN : +BN] <- (v << 4) >> 4
  T[1, k*BK : +BK, n*BN : +BN] <- v >> 4
}
"""


def int4(kh: int = 70, n: int = 100, bk: int = 32) -> Case:
    """Byte W[k, n] packs two 4-bit weights: the low nibble is row k of the first half of the
    weights, the high nibble row k of the second half; S has one f16 scale per group of ``bk`` rows.
    Y: offset-binary weights (nibble - 8) times their group's scale; T: the nibbles as two's
    complement (arithmetic shifts)."""
    g = -(-kh // bk)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"W": rng.integers(0, 256, (kh, n)).astype(np.uint8),
                "S": (rng.standard_normal((g, n)) * 0.1).astype(np.float16),
                "Y": np.full((2, kh, n), np.nan, np.float16), "T": np.full((2, kh, n), 99, np.int8)}

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        w = a["W"].astype(np.int64)
        scale = np.repeat(a["S"].astype(np.float32), bk, axis=0)[:kh]
        nibbles = np.stack([w & 15, w >> 4])
        y = ((nibbles - 8).astype(np.float16).astype(np.float32) * scale).astype(np.float16)
        t = np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.int8)
        return {"Y": y, "T": t}
    return Case(INT4, {"BK": bk}, inputs, reference, ["Y", "T"])


# ---------------------------------------------------------------- i64

WIDE = """
kernel wide(X: i32[M, N], off: i64, out Y: i64[M, N], out C: i32[M, N], out R: i64[M, G])
  param BM = 16, BN = 64
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 4 waves
{
  layout cols = blocked(spt=[1, 4], order=[1, 0], waves=[1, 4])
  r0 = i64(i) * BM
  x = X[r0 : +BM, i64(j * BN) : +BN]
  y = i64(x) * 3000000000 + off @ cols
  Y[r0 : +BM, j*BN : +BN] <- y
  C[i*BM : +BM, j*BN : +BN] <- i32(y > 4000000000) + 2 * i32(y // 1000000007 % 3 == 1) + 4 * i32(y < -off)
  R[i*BM : +BM, j] <- rowsum(y)
}
"""


def wide(m: int = 37, n: int = 150) -> Case:
    g = -(-n // 64)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        x = rng.integers(-2**31, 2**31, (m, n), dtype=np.int64).astype(np.int32)
        x[0, :8] = [0, 1, -1, 2**31 - 1, -2**31, 2, 3, 7]
        return {"X": x, "off": np.int64(-7_000_000_000_123), "Y": np.zeros((m, n), np.int64),
                "C": np.zeros((m, n), np.int32), "R": np.zeros((m, g), np.int64)}

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        off = int(a["off"])
        y = [[int(v) * 3000000000 + off for v in row] for row in a["X"].tolist()]
        wrap = lambda v: _wrap(np.array(v, dtype=object), "i64")
        yy = wrap(y)
        c = [[int(v > 4000000000) + 2 * int(v // 1000000007 % 3 == 1) + 4 * int(v < -off) for v in row]
             for row in yy.tolist()]
        # Columns past N load as 0, so they add ``off`` to the last block's sum.
        r = [[sum(row[k * 64:(k + 1) * 64]) + max(0, (k + 1) * 64 - n) * off for k in range(g)] for row in yy.tolist()]
        return {"Y": yy, "C": np.array(c, np.int32), "R": wrap(r)}
    return Case(WIDE, {}, inputs, reference, ["Y", "C", "R"])


# ---------------------------------------------------------------- i64 and u8 elements steering the kernel

OFFSETS = """
kernel segments(X: f32[R, C], Off: i64[G], K: u8[G], out Y: f32[G, C])
  param BC = 64
  grid (G, cdiv(C, BC)) as (g, c)
  block 2 waves
{
  lo = Off[g]
  acc = fill(0.0, f32[BC])
  for r in 0 .. i32(K[g]) {
    acc = acc + X[lo + i64(r), c*BC : +BC]
  }
  Y[g, c*BC : +BC] <- acc
}
"""


def offsets(r: int = 40, c: int = 150) -> Case:
    """One-element loads of an i64 and a u8 (uniform scalars: a row offset, a loop bound)."""
    off = np.array([0, 3, 3, 17, 39], np.int64)
    k = np.array([3, 0, 14, 22, 1], np.uint8)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": rng.standard_normal((r, c)).astype(np.float32), "Off": off.copy(), "K": k.copy(),
                "Y": np.full((5, c), np.nan, np.float32)}

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        y = np.zeros((5, c), np.float32)
        for g in range(5):
            for row in range(int(off[g]), int(off[g]) + int(k[g])):
                y[g] += a["X"][row]
        return {"Y": y}
    return Case(OFFSETS, {}, inputs, reference, ["Y"])


# ---------------------------------------------------------------- fp8 arithmetic

FP8_OPS = """
kernel fp8(X: f8e4m3[M, N], E: f8e5m2[M, N], s: f8e4m3, out Y: f8e4m3[M, N], out Z: f32[M, N],
           out P: f8e5m2[M, N], out R: f32[M, G])
  param BM = 16, BN = 64
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{
  lds xs: f8e4m3[BM, BN]
  xs <- X[i*BM : +BM, j*BN : +BN]
  sync
  x = xs
  e = E[i*BM : +BM, j*BN : +BN] pad -inf
  Y[i*BM : +BM, j*BN : +BN] <- x * s
  Z[i*BM : +BM, j*BN : +BN] <- f32(x) * 2.0 + f32(e)
  P[i*BM : +BM, j*BN : +BN] <- e + f8e5m2(x)
  R[i*BM : +BM, j] <- f32(rowmax(e))
}
"""


def fp8(m: int = 21, n: int = 150) -> Case:
    g = -(-n // 64)

    def inputs(rng: np.random.Generator) -> dict[str, Any]:
        return {"X": values("f8e4m3", rng, (m, n)), "E": values("f8e5m2", rng, (m, n)),
                "s": ml_dtypes.float8_e4m3fn(1.5),
                "Y": _sentinel("f8e4m3", (m, n)), "Z": np.full((m, n), np.nan, np.float32),
                "P": _sentinel("f8e5m2", (m, n)), "R": np.full((m, g), np.nan, np.float32)}

    def reference(a: dict[str, Any]) -> dict[str, np.ndarray]:
        x, e = a["X"].astype(np.float32), a["E"].astype(np.float32)

        def e4m3(v: np.ndarray) -> np.ndarray:
            return ref_cast(np.asarray(v, np.float32), "f32", "f8e4m3")

        def e5m2(v: np.ndarray) -> np.ndarray:
            return ref_cast(np.asarray(v, np.float32), "f32", "f8e5m2")
        with np.errstate(invalid="ignore", over="ignore"):
            ypos = e4m3(x * np.float32(1.5))
            z = x * np.float32(2.0) + e
            p = e5m2(e + e5m2(x).astype(np.float32))
            # The pad -inf is converted to e5m2 as a cast converts: it saturates to -57344.
            padded = np.full((m, g * 64), -57344.0, np.float32)
            padded[:, :n] = e
            # The row maximum is rounded to e5m2 as every op's result is: an infinity saturates.
            r = e5m2(np.fmax.reduce(padded.reshape(m, g, 64), axis=2)).astype(np.float32)
        return {"Y": ypos, "Z": z, "P": p, "R": r}
    return Case(FP8_OPS, {}, inputs, reference, ["Y", "Z", "P", "R"])


CASES: dict[str, Case] = {
    **{f"casts-{d}": casts(d) for d in NUMPY},
    **{f"bits-{d}": bits(d) for d in INTS},
    **{f"lds-{d}": lds(d) for d in NUMPY},
    "lds-u8-8x128": lds("u8", m=19, n=300, bm=8, bn=128),
    "lds-i64-64x16": lds("i64", m=70, n=33, bm=64, bn=16),
    "int4": int4(),
    "wide": wide(),
    "offsets": offsets(),
    "fp8": fp8(),
}
