"""The lowering's pieces on their own: the op table, the kernel ABI, the grid, the target checks,
the layout-query formulas (hypothesis), constants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lower_testing import GFX942_FMA, gpu_target, lower, program

from tiledsl.backend_amdgpu import AmdgpuTarget
from tiledsl.backend_nvptx import NvptxTarget
from tiledsl.interp.numerics import ELEMENTWISE
from tiledsl.ir.core import OPS
from tiledsl.llvm import UnsupportedOnTarget
from tiledsl.llvm.lower import lower_kernel, runtime_dims
from tiledsl.llvm.lower_core import constant, load_lowerings
from tiledsl.llvm.lower_layout import BitLinear, fit_bit_linear, fit_bit_tests
from tiledsl.llvm.lower_matrix import check_plan, matrix_plan
from tiledsl.thread import compile_thread_ir
from tiledsl.thread import ops as thread_ops

SHARED_OPS = {"const", "dim", "block_id", "for", "if"}


def test_every_thread_ir_op_has_a_lowering() -> None:
    thread_op_names = {name for name, cls in OPS.items() if issubclass(cls, thread_ops.ThreadOp)}
    assert {"mma_tile", "lds_dot", "coord", "global_load"} <= thread_op_names
    missing = (thread_op_names | set(ELEMENTWISE) | SHARED_OPS) - set(load_lowerings())
    assert not missing


def test_an_op_without_lowering_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(load_lowerings(), "barrier")
    with pytest.raises(NotImplementedError, match="no LLVM lowering for 'barrier'"):
        lower("gemm", "sm_90")


def test_abi_order_tensors_scalars_runtime_dims() -> None:
    src = """
kernel k(A: f32[N, M], out C: f32[N, K], B: f32[M, K], alpha: f32, n: i32)
  param BM = 16
  const K = 32
  grid (cdiv(N, BM)) as (bm)
  block 1 waves
{
  C[bm*BM : +BM, :] <- fill(0.0, f32[BM, K])
}
"""
    lk = lower(src, "sm_90")
    assert [(a.name, a.kind, a.dtype) for a in lk.args] == [
        ("A", "tensor", "f32"), ("C", "tensor", "f32"), ("B", "tensor", "f32"),
        ("alpha", "scalar", "f32"), ("n", "scalar", "i32"), ("N", "dim", "i32"), ("M", "dim", "i32")]
    assert runtime_dims(lk.kernel) == ["N", "M"]
    sig = next(line for line in str(lk.module).splitlines() if line.startswith("define"))
    # out tensors are writable, the others readonly; K is a compile-time constant, not an argument
    assert '%"C"' in sig and 'noalias %"C"' in sig and 'readonly %"B"' in sig and '"dim.K"' not in sig


def test_grid_from_the_grid_region() -> None:
    lk = lower("attention", "sm_90", D=64, BM=128)
    assert lk.grid({"Z": 2, "H": 3, "N": 300}) == (3, 3, 2)
    assert lk.grid({"Z": 1, "H": 1, "N": 128}) == (1, 1, 1)
    assert lk.block_threads == 128 and lk.lds_bytes == lk.kernel.attrs["lds_bytes"]


def test_thread_ir_must_match_the_target() -> None:
    prog = program("gemm")
    kernel, ctx = compile_thread_ir(prog, "gfx942")
    with pytest.raises(ValueError, match="wave64"):
        lower_kernel(kernel, ctx, NvptxTarget("sm_90"))
    with pytest.raises(UnsupportedOnTarget, match="mfma_f32_32x32x8_f16"):
        lower_kernel(kernel, ctx, AmdgpuTarget("gfx942", matrix=False))
    kernel, ctx = compile_thread_ir(prog, "generic")       # wave32 FMA thread IR ...
    with pytest.raises(ValueError, match="wave32"):         # ... does not fit gfx942's wave64
        lower_kernel(kernel, ctx, AmdgpuTarget("gfx942", matrix=False))
    kernel, ctx = compile_thread_ir(prog, GFX942_FMA)       # a wave64 FMA thread IR does
    assert lower_kernel(kernel, ctx, gpu_target("gfx942-fma")).stats["fma"] > 0


@pytest.mark.parametrize(("dtype", "value", "text"), [
    ("f16", float("-inf"), "half 0xfff0000000000000"), ("f16", 0.1, "half 0x3fb9980000000000"),
    ("bf16", 1.0, "i16 16256"), ("bf16", 1.00390625, "i16 16256"),     # a tie, to even
    ("bf16", 1.01171875, "i16 16258"), ("f32", 0.1, "float 0x3fb99999a0000000"),
    ("i32", 7, "i32 7"), ("i1", True, "i1 1"),
])
def test_constants_are_rounded_like_the_interpreter(dtype: str, value: float, text: str) -> None:
    assert str(constant(dtype, value)) == text


# ---------------------------------------------------------------- layout-query formulas

@settings(max_examples=60, deadline=None)
@given(threads=st.sampled_from([32, 64, 128, 256]), regs=st.integers(1, 8), data=st.data())
def test_bit_linear_forms_are_found(threads: int, regs: int, data: st.DataObject) -> None:
    bits = (threads - 1).bit_length()
    coef = data.draw(st.lists(st.integers(-300, 300), min_size=bits, max_size=bits))
    offsets = data.draw(st.lists(st.integers(-1000, 1000), min_size=regs, max_size=regs))
    ids = np.arange(threads)
    q = np.asarray(offsets)[None, :] + sum(c * ((ids >> i) & 1) for i, c in enumerate(coef))[:, None]
    form = fit_bit_linear(q)
    assert form == BitLinear(tuple(offsets), tuple(coef))


@settings(max_examples=60, deadline=None)
@given(threads=st.sampled_from([32, 64, 128]), regs=st.integers(1, 4), seed=st.integers(0, 2**16),
       holes=st.floats(0, 0.5))
def test_bit_linear_on_valid_slots_reproduces_them(threads: int, regs: int, seed: int, holes: float) -> None:
    """Whatever ``fit_bit_linear`` returns reproduces the table on the slots it was asked about,
    and it refuses tables that no form reproduces."""
    rng = np.random.default_rng(seed)
    ids = np.arange(threads)
    q = (ids % 5)[:, None] * 3 + np.arange(regs)[None, :]   # lane % 5: not linear in the bits
    care = rng.random(q.shape) >= holes
    form = fit_bit_linear(q, care)
    if form is not None:
        rec = np.asarray(form.offsets)[None, :] + sum(c * ((ids >> i) & 1) for i, c in enumerate(form.coef))[:, None]
        assert ((rec == q) | ~care).all()
    assert fit_bit_linear(q) is None


@settings(max_examples=60, deadline=None)
@given(threads=st.sampled_from([32, 64, 256]), data=st.data())
def test_bit_tests_are_found_and_exact(threads: int, data: st.DataObject) -> None:
    ids = np.arange(threads)
    tests = data.draw(st.lists(st.tuples(st.integers(0, threads - 1), st.integers(0, threads - 1)),
                               min_size=1, max_size=6))
    v = np.stack([(ids & m) == (val & m) for m, val in tests], axis=1)
    found = fit_bit_tests(v)
    assert found is not None
    for r, t in enumerate(found):
        want = np.full(threads, t) if isinstance(t, bool) else (ids & t[0]) == t[1]
        assert np.array_equal(want, v[:, r])
    assert fit_bit_tests(np.stack([ids % 3 == 0], axis=1)) is None


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90"])
def test_matrix_plans_are_checked_against_the_fragment_layouts(target: str) -> None:
    """The plan of the attention S = Q·Kᵀ tile passes; the same plan with two A elements swapped,
    or with the operands exchanged, is refused."""
    kernel, ctx = compile_thread_ir(program("attention", (("D", 64),)), target)
    attrs = next(op.attrs for op in kernel.walk() if op.name == "mma_tile")
    calls = matrix_plan(ctx, attrs)
    instr = ctx.target.matrix_instr(attrs["instr"])
    assert len(calls) == attrs["m"] * attrs["n"] * attrs["k"] // (ctx.num_waves * instr.m * instr.n * instr.k)
    first = calls[0]
    wrong = dataclasses.replace(first, a_regs=(first.a_regs[1], first.a_regs[0], *first.a_regs[2:]))
    with pytest.raises(RuntimeError, match="do not match the fragment layout"):
        check_plan(ctx, attrs, instr, [wrong, *calls[1:]])
    with pytest.raises(RuntimeError, match="do not match the fragment layout"):
        check_plan(ctx, attrs, instr, [dataclasses.replace(c, a_from_b=not c.a_from_b) for c in calls])
    with pytest.raises(RuntimeError, match="cover its accumulator once"):
        check_plan(ctx, attrs, instr, [c for c in calls if c.c_regs != first.c_regs])
