"""How distribution spreads atomics over threads: one atomic per element by its first holder
(``valid`` with ``owner="block"``), one per block for a single element, and old values brought to
the other holders through an LDS scratch only where some thread needs one it did not make."""

from __future__ import annotations

import pytest

import tiledsl
from tiledsl.ir import ops
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.thread import compile_thread_ir, layout_ir

OLD_VALUES = """
kernel k(X: f32[M, N], out Y: f32[N], out C: i32[1], out O: f32[G, N], out Q: i32[G])
  param BM = 16, BN = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 4 waves
{
  x = X[bm*BM : +BM, bn*BN : +BN]
  O[bm, bn*BN : +BN] <- atomic_add(Y[bn*BN : +BN], colsum(x))
  Q[bm : +1] <- fill(atomic_max(C[0], bm), i32[1])
  atomic_min(Y[bn*BN : +BN], colmax(x))
}
"""


def names(kernel: ops.KernelOp) -> list[str]:
    return [op.name for op in kernel.walk()]


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "generic"])
def test_old_values_reach_the_replicas_through_lds(target: str) -> None:
    prog = tiledsl.load(OLD_VALUES)
    with_layouts, _ = layout_ir(prog, target)
    atomics = [op for op in with_layouts.walk() if isinstance(op, ops.AtomicOp)]
    # colsum's layout replicates each column over the rows' threads, and the scalar is held by all:
    # both used results get a scratch; the unused one none.
    assert [op.scratch is not None for op in atomics] == [True, True, False]
    assert [op.scratch.type.shape for op in atomics[:2]] == [(32,), (1,)]
    text = print_op(with_layouts)
    assert print_op(parse_op(text)) == text
    thread, _ = compile_thread_ir(prog, target)
    assert print_op(parse_op(print_op(thread))) == print_op(thread)
    seq = [n for n in names(thread) if n in ("global_atomic", "lds_store", "lds_load", "barrier", "uniform")]
    first = seq.index("global_atomic")
    # Owners write, a barrier, every holder reads; no second barrier outside a loop.
    assert seq[first:first + 4] == ["global_atomic", "lds_store", "barrier", "lds_load"]
    assert seq.count("global_atomic") == 3 and seq.count("uniform") == 1


def test_a_single_element_is_updated_by_thread_zero() -> None:
    thread, _ = compile_thread_ir(tiledsl.load(OLD_VALUES), "gfx942")
    scalar = [op for op in thread.walk() if op.name == "global_atomic"][1]
    mask = scalar.operands[-2].owner
    assert mask.name == "valid" and mask.attrs["layout"] == "replicated" and mask.attrs["owner"] == "block"
    assert scalar.attrs == {"kind": "max", "vec": 1}


def test_an_element_held_once_needs_no_lds() -> None:
    """A layout that gives every element one holder: the old values are where they are wanted."""
    src = """
kernel k(X: f32[N], out Y: f32[N], out O: f32[N])
  grid (cdiv(N, 256)) as (b)
  block 4 waves
{
  x = X[b*256 : +256] @ blocked(spt=[1], waves=[4])
  O[b*256 : +256] <- atomic_add(Y[b*256 : +256], x)
}
"""
    with_layouts, _ = layout_ir(tiledsl.load(src), "gfx942")
    assert all(op.scratch is None for op in with_layouts.walk() if isinstance(op, ops.AtomicOp))
    assert with_layouts.attrs["lds_bytes"] == 0
