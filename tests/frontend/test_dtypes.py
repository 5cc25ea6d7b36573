"""The new dtypes in the language: names from the one table (``tiledsl.ir.types.DTYPES``), the
precedence of bit operations, compile-time folding with the run-time rules, located errors for
every misuse, and the IR's text form of the new types and ops (print → parse → print)."""

from __future__ import annotations

import pytest

import tiledsl
from tiledsl.frontend import ast
from tiledsl.frontend.parser import parse
from tiledsl.ir import ops
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import DTYPES
from tiledsl.thread import compile_thread_ir

HEAD = "kernel k(X: T[N], Y: u32[N], Z: f8e4m3[N], out O: T[N], s: i64)\n  grid (cdiv(N, 64)) as (g)\n  block 1 waves\n{\n"


def body(text: str, dtype: str = "i32") -> str:
    return HEAD.replace("T[", f"{dtype}[") + "  x = X[g*64 : +64]\n" + text + "\n}\n"


def error(source: str) -> tiledsl.TdslError:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(source)
    return info.value


def test_every_dtype_name_parses_as_a_dtype() -> None:
    for d in DTYPES:
        k = parse(f"kernel k(a: {d})\n  grid (1) as (g)\n  block 1 waves\n{{ }}")
        assert k.params[0].dtype == d


def test_bit_operations_bind_as_in_python() -> None:
    k = parse(body("  y = x >> 4 & 15 | x << 2 ^ ~x + 1 < x\n  z = x^Tb\n  w = x^T"))
    y, z, w = (s.value for s in k.body[1:])
    assert isinstance(y, ast.BinOp) and y.op == "<"
    bor = y.lhs
    assert bor.op == "|" and bor.lhs.op == "&" and bor.lhs.lhs.op == ">>" and bor.rhs.op == "^"
    assert bor.rhs.lhs.op == "<<" and bor.rhs.rhs.op == "+" and isinstance(bor.rhs.rhs.lhs, ast.Invert)
    assert isinstance(z, ast.BinOp) and z.op == "^" and z.rhs.id == "Tb"     # x ^ Tb, not x^T b
    assert isinstance(w, ast.Transpose)


def _consts(prog: tiledsl.Program) -> list[tuple[str, object]]:
    return [(str(op.result.type), op.attrs["value"]) for op in prog.tile_ir().walk() if isinstance(op, ops.ConstOp)]


@pytest.mark.parametrize("expr, dtype, value", [
    ("u8(200) + 100", "u8", 44),                        # wraps, as at run time
    ("i8(-128) // i8(-1)", "i8", -128),
    ("i64(1) << 40", "i64", 2**40),
    ("u32(1) << 33", "u32", 0),                        # a count past the width shifts every bit out
    ("i16(-5) >> 100", "i16", -1),
    ("~u8(5)", "u8", 250),
    ("i8(300)", "i8", 44),                              # int -> int wraps
    ("i8(-1.5)", "i8", -1),                             # float -> int truncates
    ("bitcast(f32(1.0), u32)", "u32", 1065353216),
    ("bitcast(u8(126), f8e4m3)", "f8e4m3", 448.0),
    ("f8e4m3(1000.0)", "f8e4m3", 448.0),                # saturates
    ("f8e5m2(1.0 / 0.0)", "f8e5m2", 57344.0),
    ("(3 << 30) + 5", "i64", 3 * 2**30 + 5),            # literals are exact, then fit the dtype they meet
    ("(12 & -1) | (1 ^ 3) + (-8 >> 1)", "i32", 12 | (1 ^ 3) + (-8 >> 1)),
])
def test_compile_time_values_follow_the_run_time_rules(expr: str, dtype: str, value: object) -> None:
    prog = tiledsl.load(HEAD.replace("T[", f"{dtype}[") + f"  O[g*64 : +64] <- fill({expr}, {dtype}[64])\n}}\n")
    assert (dtype, value) in _consts(prog)


@pytest.mark.parametrize("text, dtype, where, message", [
    ("  O[g*64 : +64] <- x & 3", "f32", (6, 22), "'&' is for integers; got f32"),
    ("  O[g*64 : +64] <- ~x", "f16", (6, 20), "'~' needs an integer tile, got f16[64]"),
    ("  O[g*64 : +64] <- i32((x < 0) & (x > 1))", "i32", (6, 32), "'&' does not take booleans"),
    ("  O[g*64 : +64] <- bitcast(x, f16)", "f32", (6, 20), "bitcast() of f32 to f16: the sizes differ (4 and 2 bytes)"),
    ("  O[g*64 : +64] <- bitcast(1.0, u32)", "u32", (6, 28), "bitcast() of 1.0, which has no dtype yet"),
    ("  O[g*64 : +64] <- bitcast(x, 3)", "u32", (6, 31), "bitcast() takes a dtype as its second argument"),
    ("  O[g*64 : +64] <- x + 300", "u8", (6, 22), "integer 300 does not fit in u8 ([0, 255])"),
    ("  O[g*64 : +64] <- x - 1", "u32", (6, 22), None),
    ("  O[g*64 : +64] <- X[Y[g] : +64]", "i32", (6, 22), "a slice start must be an i32 or i64 scalar, got u32"),
    ("  O[g*64 : +64] <- fill(1 << 64, i64[64])", "i64", (6, 27), "shift count 64 is out of range (0 to 63)"),
    ("  O[g*64 : +64] <- fill(9223372036854775808, i64[64])", "i64", (6, 25),
     "integer 9223372036854775808 does not fit in i64"),
    ("  O[g*64 : +64] <- fill(i8(300.0), i8[64])", "i8", (6, 28), "i8(300.0) is out of the range of i8"),
    ("  O[g*64 : +64] <- fill(u8(1) + i8(1), u8[64])", "u8", (6, 31), "'+' of u8 and i8: dtypes differ"),
    ("  O[g*64 : +64] <- x >> f32(1.0)", "i32", (6, 22), "'>>' of i32 and f32: dtypes differ"),
])
def test_misuses_are_located_errors(text: str, dtype: str, where: tuple[int, int], message: str | None) -> None:
    source = body(text, dtype)
    if message is None:          # legal: a u32 minus one wraps at run time
        tiledsl.load(source)
        return
    err = error(source)
    assert err.message.startswith(message), err.message
    assert (err.loc.line, err.loc.col) == where, err.format()


def test_error_notes_say_what_to_do() -> None:
    err = error(body("  O[g*64 : +64] <- x | 1", "f32"))
    assert err.diagnostics[0].notes == ["to see the bits of a float, bitcast it: bitcast(x, u32)"]
    err = error(body("  O[g*64 : +64] <- i32((x > 0) ^ (x < 5))", "i32"))
    assert err.diagnostics[0].notes == ["for booleans use 'and', 'or' and 'not'"]
    err = error(body("  O[g*64 : +64] <- bitcast(x, u8)", "f16"))
    assert err.diagnostics[0].notes == ["f16 has the size of bf16, i16"]
    err = error(body("  O[g*64 : +64] <- X[Y[g] : +64]", "i32"))
    assert err.diagnostics[0].notes == ["cast it: i32(...)"]


def test_dot_on_fp8_and_integers_is_not_yet_a_dot() -> None:
    src = """
kernel mm(A: T[16, 16], B: T[16, 16], out C: f32[16, 16])
  grid (1) as (g)
  block 1 waves
{
  C[0 : +16, 0 : +16] <- dot(A[0 : +16, 0 : +16], B[0 : +16, 0 : +16])
}
"""
    for d in ("f8e4m3", "i8"):
        assert error(src.replace("T[", f"{d}[")).message == f"dot() takes f16, bf16 or f32 operands, got {d}"


def test_i64_indices_and_scalars() -> None:
    prog = tiledsl.load(body("  O[s : +64] <- X[s + 1 : +64] + i32(s)"))
    loads = [op for op in prog.tile_ir().walk() if isinstance(op, (ops.LoadOp, ops.StoreOp))]
    assert [str(op.operands[1].type) for op in loads] == ["i32", "i64", "i64"]     # x's load, then these two


KERNEL = """
kernel mix(W: u8[N], E: f8e5m2[N], out Y: f16[N], out Z: i64[N], out B: u32[N], off: i64, h: f8e4m3)
  param BN = 128
  grid (cdiv(N, BN)) as (g)
  block 2 waves
{
  w = W[g*BN : +BN]
  lo = i8(w & 15) - 8
  Y[g*BN : +BN] <- f16(lo) * f16(E[g*BN : +BN]) + f16(h)
  Z[i64(g) * BN : +BN] <- i64(w) * 4294967296 + off
  B[g*BN : +BN] <- bitcast(f32(lo), u32) ^ ~u32(w) << 3 >> 1
}
"""


@pytest.mark.parametrize("target", [None, "gfx942", "sm_90"])
def test_the_ir_prints_and_parses_back(target: str | None) -> None:
    prog = tiledsl.load(KERNEL)
    kernel = prog.lowered() if target is None else compile_thread_ir(prog, target)[0]
    text = print_op(kernel)
    assert print_op(parse_op(text)) == text
    for needle in ("bitcast(", "bitand(", "bitxor(", "bitnot(", "shl(", "shr(", "i64", "f8e5m2", "u32"):
        assert needle in text, needle
