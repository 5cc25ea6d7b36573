"""Legal programs at the edges of the tiling, at every level.

Rows whose width is not a power of two (padding lanes and registers in the reduction), tiles of
extent 1, loads of one element (a uniform scalar used as a loop bound, a slice start, an ``if``
condition), full reductions to a scalar, broadcasts of one-row and one-column tiles, and
reductions whose result is pinned to an unrelated layout. Each program runs at block level
against a plain NumPy reference, at thread level on five targets against the block level
(shapes that are not multiples of the tiles, 1 to 8 waves), and compiles natively on six.
The lowered code of the same programs runs on the CPU in ``tests/llvm/test_lower_edge_tiles.py``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from edge_cases import CASES, rel_error, run_level, segments
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.report import Report
from tiledsl.interp.thread import ThreadInterpreter
from tiledsl.ir.core import Block, VerifyError, verify_tree
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import RegsType, scalar
from tiledsl.thread import compile_thread_ir, layout_ir
from tiledsl.thread.ops import UniformOp

THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]


@pytest.mark.parametrize("name", list(CASES))
def test_block_level_matches_numpy(name: str) -> None:
    case = CASES[name]
    got = run_level(case, "block")
    want = case.reference(case.inputs(np.random.default_rng(0)))
    for k in case.outs:
        assert rel_error(got[k], want[k]) <= 1e-5, k


@pytest.mark.parametrize("target", THREAD_TARGETS)
@pytest.mark.parametrize("name", list(CASES))
def test_thread_level_matches_block_level(name: str, target: str) -> None:
    case = CASES[name]
    block = run_level(case, "block")
    thread = run_level(case, "thread", target)
    for k in case.outs:
        if block[k].dtype.kind == "i":
            assert np.array_equal(thread[k], block[k]), k
        else:
            assert rel_error(thread[k], block[k]) <= 1e-5, k


NATIVE_CASES = ["softmax-BN96", "softmax-BN1", "layernorm-BM1-BN2048", "segments-W1", "totals-W2-BN96",
                "one_row-W2-5x96", "pinned", "int_total-W8", "dot_stats-16x48x16-W2",
                "cube-BC512"]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("name", NATIVE_CASES)
def test_compiles_natively(name: str, target: str) -> None:
    art = CASES[name].program().compile(target=target)
    assert len(art.binary) > 0


def test_one_element_loads_are_scalar_loads_on_amdgpu() -> None:
    """Off[g] and Off[g + 1] have uniform addresses: LLVM makes them s_load (the two merged into
    one s_load_dwordx2 at the time of writing) and drops the readfirstlanes of 'uniform'. With one
    wave there is no other use of readfirstlane (the wave id), so none may be left."""
    asm = CASES["segments-W1"].program().compile(target="gfx942").asm
    assert re.search(r"s_load_dword(x2)?\s+s\[\d+:\d+\],\s+s\[\d+:\d+\],\s+0x0\b", asm)
    assert "v_readfirstlane" not in asm


def test_a_full_reduction_is_made_uniform_on_amdgpu() -> None:
    llvm = CASES["int_total-W8"].program().compile(target="gfx942").llvm_ir
    assert "llvm.amdgcn.readfirstlane" in llvm


@pytest.mark.parametrize("level,target", [("block", None), *(("thread", t) for t in THREAD_TARGETS)])
def test_an_element_out_of_bounds_is_reported(level: str, target: str | None) -> None:
    """Off one element short: Off[g + 1] of the last segment is outside the tensor."""
    case = segments(2)
    args = case.inputs(np.random.default_rng(0))
    args["Off"] = args["Off"][:-1].copy()
    report = case.program().interpret(level=level, target=target, **args)
    assert not report.ok
    assert any(e.kind == "out-of-bounds" and "'Off'" in e.message and e.loc.line == 8 for e in report.errors)


# ---------------------------------------------------------------- reductions of drawn layouts

REDUCE = """
kernel reduce(X: f32[M, N], out R: f32[{out}], out T: f32[1])
  param WAVES = 4
  grid (1) as (b)
  block WAVES waves
{{
  x = X[0 : +{m}, 0 : +{n}] pad {pad} @ blocked(spt=[{s0}, {s1}], order=[{o0}, {o1}], waves=[{w0}, {w1}])
  R[0 : +{ext}] <- {kind}(x, axis={axis})
  T[0 : +1] <- fill({kind}({kind}(x, axis={axis}), axis=0), f32[1])
}}
"""


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), n=st.integers(1, 40), spt=st.tuples(st.sampled_from([1, 2, 3, 4]), st.sampled_from([1, 2, 4])),
       order=st.sampled_from([(1, 0), (0, 1)]), waves=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 8), (8, 1)]),
       axis=st.sampled_from([0, 1]), kind=st.sampled_from(["sum", "max"]), target=st.sampled_from(THREAD_TARGETS))
def test_any_blocked_layout_reduces(m: int, n: int, spt: tuple[int, int], order: tuple[int, int],
                                    waves: tuple[int, int], axis: int, kind: str, target: str) -> None:
    """Along either axis and to a scalar, whatever the blocked layout: padding lanes and registers
    (a layout wider than the tile), several waves per line, spt that does not divide the tile."""
    out = n if axis == 0 else m
    src = REDUCE.format(out="P" if axis == 0 else "Q", m=m, n=n, s0=spt[0], s1=spt[1], o0=order[0], o1=order[1],
                        w0=waves[0], w1=waves[1], kind=kind, axis=axis, ext=out, pad="-inf" if kind == "max" else "0")
    prog = tiledsl.load(src, params={"WAVES": waves[0] * waves[1]})
    rng = np.random.default_rng(m * 41 + n)
    x = rng.standard_normal((m, n)).astype(np.float32)
    r, t = np.full(out, np.nan, np.float32), np.full(1, np.nan, np.float32)
    report = prog.interpret(level="thread", target=target, X=x, R=r, T=t)
    assert report.ok, str(report)
    fn = np.sum if kind == "sum" else np.max
    assert rel_error(r, fn(x.astype(np.float64), axis=axis)) <= 1e-5
    assert rel_error(t, [fn(x.astype(np.float64))]) <= 1e-5


# ---------------------------------------------------------------- IR text and verifiers

@pytest.mark.parametrize(("name", "layout_text", "thread_text"), [
    ("segments-W2", None, "uniform("),
    ("totals-W2-BN96", None, "uniform("),
    ("one_row-W2-5x96", "#expand(0, slice(0, ", None),
    ("softmax-BN1", None, None),
])
def test_layout_ir_and_thread_ir_print_parse_print(name: str, layout_text: str | None, thread_text: str | None) -> None:
    prog = CASES[name].program()
    for target in ("gfx942", "sm_90"):
        kernel, _ = layout_ir(prog, target)
        text = print_op(kernel)
        assert print_op(parse_op(text)) == text
        assert layout_text is None or layout_text in text
        thread, _ = compile_thread_ir(prog, target)
        text = print_op(thread)
        again = parse_op(text)
        verify_tree(again)
        assert print_op(again) == text
        assert thread_text is None or thread_text in text


def test_uniform_verifier() -> None:
    blk = Block([RegsType("f32", 1), RegsType("f32", 2), RegsType("i32", 1)])
    one, two, ints = blk.args
    UniformOp([one], [scalar("f32")]).verify()
    for operand, result, message in ((two, scalar("f32"), "regs<f32, 1>"), (ints, scalar("f32"), "regs<f32, 1>"),
                                     (one, RegsType("f32", 1), "uniform scalar")):
        with pytest.raises(VerifyError, match=re.escape(message)):
            UniformOp([operand], [result]).verify()


def test_uniform_of_values_the_threads_disagree_on_is_an_internal_error() -> None:
    """The thread interpreter checks 'uniform' (a compiler bug otherwise): here a full reduction
    made uniform one butterfly step early, when lanes still hold different partial sums."""
    case = CASES["int_total-W1"]
    prog, tensors, scalars, dims = case.program().prepare_arguments(case.inputs(np.random.default_rng(0)))
    kernel, ctx = compile_thread_ir(prog, "sm_90")
    broken = parse_op(print_op(kernel))
    uniform = next(op for op in broken.walk() if op.name == "uniform" and op.operands[0].owner.name == "add")
    last_step = uniform.operands[0].owner
    assert last_step.operands[1].owner.name == "shuffle_xor"
    uniform.set_operand(0, last_step.operands[0])
    it = ThreadInterpreter(broken, ctx, tensors, scalars, dims, Report(level="thread"))
    with pytest.raises(RuntimeError, match="'uniform' of a value the threads do not agree on"):
        it.run()
