"""The verifiers of the attributes that make a global access a gather (``gather``) or a ragged slice
(``bounded``), and of ``scalar_arg``; their IR text round-trips."""

from __future__ import annotations

import re

import pytest

import tiledsl
from tiledsl.ir import ops
from tiledsl.ir.core import Block, VerifyError, verify_tree
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import LdsType, TensorType, TileType, scalar

I32 = scalar("i32")


def _block() -> tuple[Block, list]:
    blk = Block([TensorType("f32", ("T", "D")), TensorType("f32", ("T", "D"), out=True), TileType("i32", (16,)),
                 TileType("i32", (8,)), I32, I32, TileType("f32", (16, 4)), LdsType("f32", (16, 4))])
    return blk, blk.args


def test_a_well_formed_gather_scatter_and_copy_verify() -> None:
    _, (x, y, idx, _, s, b, v, lds) = _block()
    ops.LoadOp([x, idx, s, b], [TileType("f32", (16, 4))], {"extents": [16, 4], "gather": [0], "bounded": [0],
                                                             "pad": 0.0}).verify()
    ops.StoreOp([y, idx, s, v], [], {"extents": [16, 4], "gather": [0]}).verify()
    ops.CopyOp([x, s, s, b, lds], [], {"extents": [16, 4], "bounded": [0], "pad": 0.0}).verify()


@pytest.mark.parametrize(("operands", "attrs", "message"), [
    ("x idx s", {"extents": [16, 4], "gather": [1]}, "slice starts must be i32 or i64 scalars"),
    ("x s s", {"extents": [16, 4], "gather": [0]}, "must be a 1-D i32 tile"),
    ("x idx s", {"extents": [8, 4], "gather": [0]}, "the first gathered dim has the tiles' one length"),
    ("x idx idx8", {"extents": [16, 0], "gather": [0, 1]}, "the first gathered dim has the tiles' one length"),
    ("x idx s", {"extents": [16, 4], "gather": [1, 0]}, "gather must list tensor dims in increasing order"),
    ("x idx s", {"extents": [16, 4], "gather": [2]}, "gather must list tensor dims in increasing order"),
    ("x s s b", {"extents": [0, 4], "bounded": [0]}, "a bound cuts a slice or an index tile"),
    ("x s s", {"extents": [16, 4], "bounded": [0]}, "missing bound operands"),
    ("x s s idx", {"extents": [16, 4], "bounded": [1]}, "bounds must be i32 scalars"),
])
def test_malformed_gathers_and_bounds_are_verifier_errors(operands: str, attrs: dict, message: str) -> None:
    _, (x, _, idx, idx8, s, b, _, _) = _block()
    names = {"x": x, "idx": idx, "idx8": idx8, "s": s, "b": b}
    shape = tuple(e for e in attrs["extents"] if e != 0)
    op = ops.LoadOp([names[n] for n in operands.split()], [TileType("f32", shape)], {**attrs, "pad": 0.0})
    with pytest.raises(VerifyError, match=re.escape(message)):
        op.verify()


def test_scalar_arg_verifier() -> None:
    ops.ScalarArgOp([], [I32], {"name": "max_seqlen"}).verify()
    for types, attrs in (([scalar("f32")], {"name": "x"}), ([I32], {})):
        with pytest.raises(VerifyError, match="scalar_arg"):
            ops.ScalarArgOp([], types, attrs).verify()


SRC = """
kernel k(X: f32[T, D], Perm: i32[T], Off: i32[G1], out Y: f32[T, D], n: i32)
  const D = 4
  grid (cdiv(n, 16), G1 - 1) as (t, g)
  block 1 waves
{
  lds xs: f32[16, D]
  idx = Perm[t*16 : +16 until Off[g + 1]] pad -1
  xs <- X[idx until T, :]
  Y[idx until n, :] <- xs
}
"""


def test_gathers_bounds_and_grid_scalars_print_and_parse_back() -> None:
    kernel = tiledsl.load(SRC).tile_ir()
    text = print_op(kernel)
    again = parse_op(text)
    verify_tree(again)
    assert print_op(again) == text
    assert 'scalar_arg() {name = "n"} : i32' in text
    assert "gather = [0], bounded = [0]" in text
    assert [op.name for op in kernel.grid.ops].count("scalar_arg") == 1
