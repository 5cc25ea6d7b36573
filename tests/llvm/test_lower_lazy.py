"""Dot operands read from LDS are loaded next to the matrix instructions that use them (LazyRegs):
which LDS loads may be deferred (``can_defer``, decided on the thread IR), and the order of loads
and matrix calls in the lowered LLVM IR. That the results stay right is test_lower_host's job."""

from __future__ import annotations

import re

import pytest
from lower_testing import TARGETS, attention_with_swap, lower, program

from tiledsl.ir.core import Op
from tiledsl.llvm.lower_core import LazyRegs, can_defer
from tiledsl.thread import compile_thread_ir

MATRIX_CALL = re.compile(r"call .*@\"?llvm\.(amdgcn\.mfma|amdgcn\.wmma|nvvm\.mma|fmuladd)")
LDS_LOAD = re.compile(r"= load .*ptr addrspace\(3\)")
BARRIER = re.compile(r"call .*barrier")


def lds_loads(source: str, key: str, **params: int) -> list[Op]:
    prog = program(source, tuple(sorted(params.items())))
    kernel, _ = compile_thread_ir(prog, TARGETS[key].thread_target)
    return [op for op in kernel.walk() if op.name == "lds_load"]


def after_last_barrier(source: str, key: str, **params: int) -> str:
    """The lowered (not optimised) kernel as a string of events after its last barrier before the
    first matrix call: L = LDS load, M = matrix instruction (or FMA)."""
    text = str(lower(source, key, **params).module)
    events = []
    for line in text.splitlines():
        if LDS_LOAD.search(line):
            events.append("L")
        elif MATRIX_CALL.search(line):
            events.append("M")
        elif BARRIER.search(line):
            events.append("|")
    s = "".join(events)
    first_matrix = s.index("M")
    return s[s.rindex("|", 0, first_matrix) + 1:]


@pytest.mark.parametrize("key", ["gfx942", "gfx1100", "sm_90", "gfx942-fma"])
def test_gemm_operands_are_loaded_between_matrix_calls(key: str) -> None:
    """Both operands come from LDS inside the loop: the first call's loads come before it, later
    k-steps' loads after it (eagerly, every L would precede the first M)."""
    s = after_last_barrier("gemm", key)
    first_matrix = s.index("M")
    assert "L" in s[first_matrix:], s
    assert s.count("L", 0, first_matrix) * 4 <= s.count("L"), s


def test_attention_k_is_loaded_between_matrix_calls() -> None:
    """S = Q·Kᵀ on gfx942 at D=128: 16 k-steps of K^T; each one's loads follow the calls before."""
    s = after_last_barrier("attention", "gfx942", D=128)
    s = s[:s.index("|")] if "|" in s else s
    first_matrix = s.index("M")
    assert s.count("L", 0, first_matrix) * 8 <= s.count("L"), s
    assert re.search("M+L+M", s), s


def test_which_attention_loads_are_deferred() -> None:
    """gfx942 attention (swapped by default), in program order: Q is read before the loops and used
    inside them (not deferred); in the full-tile loop and again in the tail loop, K^T and V right
    before their dots (deferred)."""
    loads = lds_loads("attention", "gfx942", D=64)
    assert [op.loc.col for op in loads] == [7, 16, 43, 16, 43]     # q = qs; ks^T; vs; ks^T; vs
    assert [can_defer(op) for op in loads] == [False, True, True, True, True]


def test_which_unswapped_attention_loads_are_deferred() -> None:
    """Unswapped, P's read back from its scratch tile has the conversion's last sync before the dot
    (not deferred); V is read after P's conversion rather than before it (deferred)."""
    loads = lds_loads(attention_with_swap(False), "gfx942", D=64)
    assert [op.loc.col for op in loads][:4] == [7, 16, 33, 43]     # q = qs; ks^T; dot(T(p), vs); vs
    assert [can_defer(op) for op in loads][:4] == [False, True, False, True]


DOT_AFTER = """
kernel k(A: f16[M, K], B: f16[K, N], out C: f32[M, N])
  grid (cdiv(M, 64), cdiv(N, 64)) as (bm, bn)
  block 4 waves
{{
  lds a_s: f16[64, 32]
  lds b_s: f16[32, 64]
  a_s <- A[bm*64 : +64, 0 : +32]
  b_s <- B[0 : +32, bn*64 : +64]
  sync
  acc = fill(0, f32[64, 64])
  a = a_s
  {between}
  C[bm*64 : +64, bn*64 : +64] <- acc
}}
"""


@pytest.mark.parametrize(("between", "deferred"), [
    ("acc = dot(a, b_s, acc)", True),
    ("x = fill(1, f32[64, 64])\n  acc = dot(a, b_s, acc + x)", True),
    ("sync\n  acc = dot(a, b_s, acc)", False),
    ("b_s <- B[0 : +32, bn*64 : +64]\n  acc = dot(a, b_s, acc)", False),
    ("if bm > 0 { acc = dot(a, b_s, acc) }", False),
    ("for i in 0 .. 2 { acc = dot(a, b_s, acc) }", False),
])
def test_can_defer_only_up_to_a_barrier_or_lds_write_in_the_same_block(between: str, deferred: bool) -> None:
    """``a`` is read from LDS before ``between``; it is deferred only when nothing but pure ops
    separate it from its dot in the same block."""
    loads = lds_loads(DOT_AFTER.format(between=between), "gfx942")
    a_load = loads[0]
    assert a_load.result.type.n == 16                       # a: 64x32 f16 over 256 threads, 8 each x 2
    assert can_defer(a_load) is deferred


def test_lazy_regs_load_each_group_once_on_first_read() -> None:
    loaded: list[int] = []

    def group(g: int) -> list[str]:   # stands in for the LLVM values of one vector load
        loaded.append(g)
        return [f"r{g + i}" for i in range(4)]

    regs = LazyRegs(8, 4, group)
    assert (regs[5], regs[4], regs[1]) == ("r5", "r4", "r1")
    assert loaded == [4, 0]
    assert regs.force() == [f"r{i}" for i in range(8)] and loaded == [4, 0]
    with pytest.raises(IndexError):
        regs[8]
