"""The fp8 and small/wide integer dtypes at block level and at thread level on five targets, against
references written without tiledsl's numerics (``dtype_cases.py``): casts between every pair, bit
operations, tiles through LDS (1- and 8-byte elements: vector widths, byte offsets, transposed
reads), int4 unpacking, i64 arithmetic and indices, fp8 arithmetic; every program also compiles to
native code for six targets (``tests/llvm/test_lower_dtypes.py`` runs the lowered code)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from dtype_cases import CASES, INTS, NUMPY, expected, run_level, same

import tiledsl
from tiledsl.ir.printer import print_op
from tiledsl.thread import compile_thread_ir

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]


@pytest.mark.parametrize("name", list(CASES))
def test_block_level_matches_the_reference(name: str) -> None:
    case = CASES[name]
    got, want = run_level(case, "block"), expected(case)
    for k in case.outs:
        assert same(got[k], want[k]), k


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize("name", list(CASES))
def test_thread_level_matches_the_reference(name: str, target: str) -> None:
    case = CASES[name]
    got, want = run_level(case, "thread", target), expected(case)
    for k in case.outs:
        assert same(got[k], want[k]), k


@pytest.mark.parametrize("name", ["casts-f8e4m3", "casts-i64", "bits-u8", "lds-i8", "lds-i64-64x16", "int4", "wide",
                                  "fp8"])
def test_thread_level_with_shuffled_blocks_and_nan_filled_lds(name: str) -> None:
    case = CASES[name]
    args = case.inputs(np.random.default_rng(1))
    assert case.program().interpret(level="thread", target="gfx942", shuffle_blocks=True, nan_fill=True, seed=3,
                                    **args).ok
    want = case.reference(case.inputs(np.random.default_rng(1)))
    for k in case.outs:
        assert same(args[k], want[k]), k


ROWS = """
kernel rows(X: T[M, C], out Y: T[M, C])
  const C
  param BM = 8
  grid (cdiv(M, BM)) as (i)
  block 2 waves
{
  lds xs: T[BM, C]
  xs <- X[i*BM : +BM, :]
  sync
  Y[i*BM : +BM, :] <- xs
}
"""


@pytest.mark.parametrize("dtype, vec", [("u8", 16), ("f8e5m2", 16), ("i16", 8), ("i64", 2)])
@pytest.mark.parametrize("target", ["gfx942", "sm_90"])
def test_whole_rows_move_in_16_byte_vectors(dtype: str, vec: int, target: str) -> None:
    """A row of a compile-time width is loaded, stored to LDS, read back and stored in 16-byte
    groups whatever the element size: 16 bytes, 8 halves, 2 i64."""
    prog = tiledsl.load(ROWS.replace("T[", f"{dtype}["), params={"C": 256})
    text = print_op(compile_thread_ir(prog, target)[0])
    widths = {op: {int(v) for v in re.findall(rf"= {op}\(.*vec = (\d+)", text) +
                   re.findall(rf"^\s*{op}\(.*vec = (\d+)", text, re.MULTILINE)}
              for op in ("global_load", "lds_store", "lds_load", "global_store")}
    for op in ("lds_store", "lds_load", "global_store"):
        assert widths[op] == {vec}, (op, widths)
    if target == "gfx942":      # sm_90 copies into LDS with cp.async
        assert widths["global_load"] == {vec}
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (21, 256)).astype(np.uint8).view(NUMPY[dtype]) if dtype == "f8e5m2" else
         rng.integers(-100, 100, (21, 256)).astype(NUMPY[dtype]))
    y = np.zeros_like(x)
    assert prog.interpret(level="thread", target=target, X=x, Y=y).ok
    assert same(y, x)


def test_an_i64_index_is_checked_in_64_bits() -> None:
    """A slice start past 2^31 is out of range, not wrapped back in: the masked row reads the pad."""
    prog = tiledsl.load("""
kernel pick(X: i32[N], s: i64, out Y: i32[64])
  grid (1) as (g)
  block 1 waves
{
  Y[0 : +64] <- X[s : +64] pad -5
}""")
    x = np.arange(100, dtype=np.int32)
    for level, target in (("block", None), ("thread", "gfx942"), ("thread", "sm_90")):
        for s, want in ((60, np.r_[np.arange(60, 100), [-5] * 24]), (2**32 + 10, [-5] * 64),
                        (-2**32 + 10, [-5] * 64)):
            y = np.zeros(64, np.int32)
            assert prog.interpret(level=level, target=target, X=x, Y=y, s=s).ok
            np.testing.assert_array_equal(y, want)


def test_small_integer_sums_wrap_at_their_width() -> None:
    """A sum of i8 is computed in i8 (wrapping: the same modulo 2^8 in any order), at both levels."""
    prog = tiledsl.load("""
kernel total(X: i8[N], out S: i8[G], out W: i32[G])
  param BN = 256
  grid (cdiv(N, BN)) as (g)
  block 4 waves
{
  x = X[g*BN : +BN]
  S[g : +1] <- fill(sum(x, axis=0), i8[1])
  W[g : +1] <- fill(sum(i32(x), axis=0), i32[1])
}""")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, 700).astype(np.int8)
    padded = np.zeros(768, np.int64)
    padded[:700] = x
    wide = padded.reshape(3, 256).sum(axis=1)
    for level, target in (("block", None), ("thread", "gfx942"), ("thread", "sm_90"), ("thread", "generic")):
        s, w = np.zeros(3, np.int8), np.zeros(3, np.int32)
        assert prog.interpret(level=level, target=target, X=x, S=s, W=w).ok
        np.testing.assert_array_equal(w, wide)
        np.testing.assert_array_equal(s, ((wide + 128) % 256 - 128).astype(np.int8))


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("name", ["casts-f8e4m3", "casts-u32", "casts-i64", "bits-i8", "bits-u32", "lds-f8e5m2",
                                  "lds-i64-64x16", "int4", "wide", "offsets", "fp8"])
def test_native_code_for_every_target(name: str, target: str) -> None:
    art = CASES[name].program().compile(target=target)
    assert art.binary
    sizes = {a["name"]: a["size"] for a in art.meta["args"]}
    if name == "wide":
        assert sizes["off"] == 8
    if name == "fp8":
        assert sizes["s"] == 1


def test_every_integer_dtype_has_a_case() -> None:
    assert {f"bits-{d}" for d in INTS} <= set(CASES)
    assert {f"casts-{d}" for d in NUMPY} <= set(CASES) and {f"lds-{d}" for d in NUMPY} <= set(CASES)
