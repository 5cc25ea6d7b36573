"""Tile IR text: print → parse → print is the identity for every example, before and after
every pass; each pass does its one job; the verifier rejects malformed ops."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.diagnostics import Loc
from tiledsl.ir import ops
from tiledsl.ir.core import Block, VerifyError, verify_tree
from tiledsl.ir.parser import IRParseError, parse_op
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import LdsType, TensorType, TileType, scalar
from tiledsl.stages import DEFAULT_TILE_PASSES as DEFAULT_PIPELINE
from tiledsl.stages import PASSES, TILE_PASSES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Several compile-time settings per example: defaults (attention's const D stays
# symbolic), a fixed D, CAUSAL=1 (its `if` survives until fold), odd tile sizes.
CASES = [
    ("attention", {}),
    ("attention", {"CAUSAL": 1}),
    ("attention", {"D": 64}),
    ("attention", {"D": 128, "BM": 32, "BN": 16, "CAUSAL": 1}),
    ("gemm", {}),
    ("gemm", {"BM": 16, "BN": 48, "BK": 24}),
    ("softmax", {}),
    ("softmax", {"BM": 1, "BN": 7}),
    ("layernorm", {}),
    ("layernorm", {"BM": 3, "BN": 33}),
    ("reduce_atomic", {}),
    ("reduce_atomic", {"BM": 5, "BN": 20}),
]


def case_id(name: str, params: dict[str, int]) -> str:
    return f"{name}-{'-'.join(f'{k}{v}' for k, v in params.items()) or 'default'}"


IDS = [case_id(name, params) for name, params in CASES]


@functools.cache
def load(name: str, params: tuple[tuple[str, int], ...]) -> tiledsl.Program:
    return tiledsl.load(EXAMPLES / f"{name}.tdsl", params=dict(params))


def count(text: str, opname: str) -> int:
    """How many ``opname(`` ops the IR text holds."""
    return len(re.findall(rf"(?<![\w.]){re.escape(opname)}\(", text))


def assert_roundtrip(text: str) -> None:
    op = parse_op(text)
    verify_tree(op)
    again = print_op(op)
    assert again == text
    assert print_op(parse_op(again)) == text


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_roundtrip_raw_and_after_every_pass(name: str, params: dict[str, int]) -> None:
    prog = load(name, tuple(sorted(params.items())))
    raw = print_op(prog.tile_ir())
    assert_roundtrip(raw)
    _, snapshots = prog.lower(DEFAULT_PIPELINE, record=True)
    assert [p for p, _ in snapshots] == list(DEFAULT_PIPELINE)
    for pass_name, text in snapshots:
        assert text.startswith("kernel("), pass_name
        assert_roundtrip(text)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_roundtrip_after_every_registered_pass(name: str, params: dict[str, int]) -> None:
    """Passes outside the default pipeline (e.g. sink-broadcast) print parseable IR too."""
    prog = load(name, tuple(sorted(params.items())))
    _, snapshots = prog.lower(TILE_PASSES, record=True)
    assert [p for p, _ in snapshots] == list(TILE_PASSES)
    for _, text in snapshots:
        assert_roundtrip(text)


# The thread level needs every const, and tiles that fit the mma layout (BM >= 64 with 4 waves).
THREAD_CASES = [("attention", {"D": 64}), ("attention", {"D": 32, "BM": 64, "BN": 32, "CAUSAL": 1}),
                ("gemm", {}), ("gemm", {"BM": 16, "BN": 48, "BK": 24}), ("softmax", {}), ("layernorm", {}),
                ("reduce_atomic", {})]


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_80"])
@pytest.mark.parametrize(("name", "params"), THREAD_CASES, ids=[case_id(n, p) for n, p in THREAD_CASES])
def test_roundtrip_of_layout_and_thread_ir(name: str, params: dict[str, int], target: str) -> None:
    """After layout assignment and LDS allocation (tile IR), and after distribution (thread IR)."""
    from tiledsl.thread import compile_thread_ir, layout_ir
    prog = load(name, tuple(sorted(params.items())))
    with_layouts, _ = layout_ir(prog, target)
    text = print_op(with_layouts)
    assert " #" in text and "lds_bytes = " in text
    assert_roundtrip(text)
    thread, _ = compile_thread_ir(prog, target)
    assert_roundtrip(print_op(thread))


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_passes_are_idempotent_on_examples(name: str, params: dict[str, int]) -> None:
    """A second run of the whole pipeline finds nothing more to do."""
    kernel, _ = load(name, tuple(sorted(params.items()))).lower()
    before = print_op(kernel)
    for p in DEFAULT_PIPELINE:
        assert PASSES[p].run(kernel, None) is False, p
    assert print_op(kernel) == before


def test_symbolic_const_prints_and_parses() -> None:
    text = print_op(load("attention", ()).tile_ir())
    assert "lds<f16[128,D]>" in text
    assert "extents = [0, 0, 128, D]" in text
    op = parse_op(text)
    lds = [o for o in op.walk() if isinstance(o, ops.LdsAllocOp)]
    assert lds and all(str(o.result.type.shape[1]) == "D" for o in lds)


def test_a_source_location_is_an_attribute_value_that_prints_and_parses() -> None:
    kernel = load("softmax", ()).tile_ir()
    assert kernel.attrs["block_loc"].line == 7          # `block 4 waves` in examples/softmax.tdsl
    assert "block_loc = loc(" in print_op(kernel)
    op = ops.SyncOp([], [], {"at": Loc('a "quoted" name.tdsl', 3, 5)})
    text = print_op(op)
    back = parse_op(text)
    assert back.attrs["at"] == Loc('a "quoted" name.tdsl', 3, 5)
    assert print_op(back) == text


def test_parse_error_is_reported() -> None:
    text = print_op(load("gemm", ()).tile_ir())
    with pytest.raises(IRParseError, match="undefined value"):
        parse_op(text.replace("dot(%", "dot(%nosuchvalue, %", 1))
    with pytest.raises(IRParseError, match="unknown op"):
        parse_op(text.replace("dot(", "frobnicate(", 1))


# ---------------------------------------------------------------- fold

FOLD_SRC = """\
kernel folds(X: f32[M], out Y: f32[M])
  param C = 1
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  n = 0
  big = 0
  if C { n = 3; big = 2147483647 }
  k = n * 4 + 1
  w = big + 1
  if C == 0 { Y[b*16 : +16] <- X[b*16 : +16] } else { Y[b*16 + k - k + w - w : +16] <- X[b*16 : +16] }
}
"""


def test_fold_removes_constant_ifs_and_folds_scalar_arithmetic() -> None:
    prog = tiledsl.load(FOLD_SRC)
    raw = print_op(prog.tile_ir())
    assert count(raw, "if") == 2
    assert count(raw, "mul") >= 2 and count(raw, "add") >= 2
    kernel, snapshots = prog.lower(("fold",), record=True)
    folded = snapshots[0][1]
    assert count(folded, "if") == 0
    # n * 4 + 1 with n = 3 after the if is inlined: one constant 13, no arithmetic on it.
    assert "{value = 13}" in folded
    # i32 arithmetic wraps as the dtype does: 2147483647 + 1.
    assert "{value = -2147483648}" in folded
    # The else branch was taken: exactly one store remains, and it is the else branch's.
    stores = [o for o in kernel.walk() if isinstance(o, ops.StoreOp)]
    assert len(stores) == 1 and stores[0].loc is not None and stores[0].loc.line == 11
    assert stores[0].loc.col == FOLD_SRC.splitlines()[10].index("Y[b*16 + k") + 1
    # b*16 is not constant: the block-id arithmetic stays.
    assert count(folded, "block_id") == 1 and count(folded, "mul") >= 1


def test_fold_then_runs_the_branch_it_kept() -> None:
    x = np.arange(40, dtype=np.float32)
    y = np.zeros(40, dtype=np.float32)
    report = tiledsl.load(FOLD_SRC).interpret(X=x, Y=y)
    assert report.ok, str(report)
    np.testing.assert_array_equal(y, x)


def test_fold_keeps_if_on_a_runtime_condition() -> None:
    src = """\
kernel k(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  v = fill(1.0, f32[16])
  if b > 0 { v = fill(2.0, f32[16]) }
  Y[b*16 : +16] <- v
}
"""
    kernel, _ = tiledsl.load(src).lower(("fold",))
    assert count(print_op(kernel), "if") == 1


def test_causal_ifs_fold_away_and_the_mask_stays() -> None:
    causal = load("attention", (("CAUSAL", 1),))
    plain = load("attention", ())
    assert count(print_op(plain.tile_ir()), "if") == 3       # two on CAUSAL, one on QREGS
    assert count(plain.ir(("fold",)), "if") == 0
    # With CAUSAL=1 the ifs are inlined too (their condition is the constant 1), and the
    # causal mask's compare survives in the loop body.
    assert count(causal.ir(("fold",)), "if") == 0
    assert count(causal.ir(), "le") > count(plain.ir(), "le")


# ---------------------------------------------------------------- CSE / DCE

CSE_SRC = """\
kernel k(X: f32[M, N], out Y: f32[M, N])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  x = X[b*16 : +16, 0 : +16]
  x2 = X[b*16 : +16, 0 : +16]
  Y[b*16 : +16, 0 : +16] <- exp(x) * 2.0 + exp(x) * 2.0 + x2
}
"""


def test_cse_merges_duplicate_pure_ops_but_not_loads() -> None:
    prog = tiledsl.load(CSE_SRC)
    before = print_op(prog.tile_ir())
    assert count(before, "exp") == 2 and count(before, "mul") == 5 and count(before, "load") == 2
    after = prog.ir(("cse",))
    assert count(after, "exp") == 1
    # the three b*16 computations and the two `exp(x) * 2.0` products become one each
    assert count(after, "mul") == 2
    # memory reads are pure but never merged
    assert count(after, "load") == 2


def test_cse_does_not_hoist_out_of_a_region() -> None:
    src = """\
kernel k(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  v = fill(0.0, f32[16])
  if b > 0 { v = exp(X[b*16 : +16]) }
  w = exp(X[b*16 : +16])
  Y[b*16 : +16] <- v + w
}
"""
    after = tiledsl.load(src).ir(("cse",))
    # the exp inside the if cannot stand in for the one after it
    assert count(after, "exp") == 2


def test_dce_removes_unused_computation_and_keeps_stores() -> None:
    src = """\
kernel k(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  x = X[b*16 : +16]
  unused = rsqrt(exp2(x) + 1.0)
  Y[b*16 : +16] <- x
}
"""
    prog = tiledsl.load(src)
    before = print_op(prog.tile_ir())
    line6 = 'loc("<string>":6:'
    assert count(before, "rsqrt") == 1 and count(before, "exp2") == 1 and before.count(line6) >= 4
    after = prog.ir(("dce",))
    assert count(after, "rsqrt") == 0 and count(after, "exp2") == 0
    assert line6 not in after   # every op of the dead line is gone (add, its constant, broadcast)
    assert count(after, "store") == 1 and count(after, "load") == 1


def test_dce_keeps_side_effects_in_dead_looking_loops() -> None:
    after = load("gemm", ()).ir(("dce",))
    assert count(after, "copy") == 2 and count(after, "sync") == 2 and count(after, "store") == 1


def test_unknown_pass_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pass 'nosuch'"):
        load("gemm", ()).lower(("nosuch",))


# ---------------------------------------------------------------- verifier

def test_verifier_rejects_dot_with_mismatched_inner_dims() -> None:
    b = Block([TileType("f16", (16, 32)), TileType("f16", (16, 32))])
    bad = ops.DotOp(list(b.args), [TileType("f32", (16, 32))])
    with pytest.raises(VerifyError, match="cannot multiply"):
        bad.verify()
    good = ops.DotOp([b.args[0], ops.TransposeOp([b.args[1]], [TileType("f16", (32, 16))]).result],
                     [TileType("f32", (16, 16))])
    good.verify()


@pytest.mark.parametrize(("build", "message"), [
    (lambda a: ops.FillOp([a["s16"]], [TileType("f32", (4,))]), "fill value"),
    (lambda a: ops.DotOp([a["t"], a["t"]], [TileType("f16", (4, 4))]), "result must be f32"),
    (lambda a: ops.BINARY_OPS["add"]([a["t"], a["u"]], [TileType("f16", (4, 4))]), "differ"),
    (lambda a: ops.ReduceSumOp([a["t"]], [TileType("f16", (4, 4))], {"axis": 1}), "reduction"),
    (lambda a: ops.LdsWriteOp([a["lds"], a["u"]], []), "cannot write"),
    (lambda a: ops.StoreOp([a["X"], a["i"], a["t"]], [], {"extents": [4]}), "one entry per tensor dim"),
    (lambda a: ops.StoreOp([a["X"], a["i"], a["i"], a["t"]], [], {"extents": [4, 4]}), "out tensor"),
    (lambda a: ops.CastOp([a["t"], a["t"]], [TileType("f32", (4, 4))]), "operands"),
], ids=["fill", "dot-result", "add-dtypes", "reduce-shape", "lds-write", "store-extents", "store-not-out",
        "arity"])
def test_verifier_rejects_malformed_ops(build, message: str) -> None:  # type: ignore[no-untyped-def]
    blk = Block([TileType("f16", (4, 4)), TileType("f32", (4, 4)), scalar("f16"), scalar("i32"),
                 LdsType("f16", (4, 4)), TensorType("f16", ("M", "N"))])
    args = dict(zip(["t", "u", "s16", "i", "lds", "X"], blk.args, strict=True))
    with pytest.raises(VerifyError, match=message):
        build(args).verify()


def test_verify_tree_catches_use_before_definition() -> None:
    kernel, _ = load("softmax", ()).lower(())
    body = kernel.body
    # Move the first op that uses another body op's result to the front of the body.
    user = next(o for o in body.ops if any(v.owner in body.ops for v in o.operands))
    body.ops.remove(user)
    body.ops.insert(0, user)
    with pytest.raises(VerifyError, match="before it is defined"):
        verify_tree(kernel)


def test_parsed_ir_with_a_wrong_type_fails_verification() -> None:
    text = print_op(load("gemm", ()).tile_ir())
    assert " : f32[64,64] loc" in text
    broken = re.sub(r"(= dot\([^)]*\)) : f32\[64,64\]", r"\1 : f32[64,32]", text, count=1)
    assert broken != text
    with pytest.raises(VerifyError):
        verify_tree(parse_op(broken))
