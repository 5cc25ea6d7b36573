"""Pipelined attention in the thread interpreter: async copies on sm_80/sm_90 equal the
reference at shapes that are not multiples of the tiles, and a wrong schedule — a buffer read
before its wait, or refilled while it is read — is reported as a race at the right line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.interp.report import Report
from tiledsl.interp.thread import ThreadInterpreter
from tiledsl.ir import ops
from tiledsl.ir.core import erase
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.thread import compile_thread_ir
from tiledsl.thread import ops as tops

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ATTENTION = (EXAMPLES / "attention.tdsl").read_text()


def _reference():
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference", EXAMPLES / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line_of(pattern: str) -> int:
    return next(i + 1 for i, line in enumerate(ATTENTION.splitlines()) if re.search(pattern, line))


def _args(n: int, d: int = 32, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, 2, n, d)).astype(np.float16) for _ in range(3))
    return {"Q": q, "K": k, "V": v, "O": np.zeros_like(q), "L": np.zeros(q.shape[:3], np.float32), "scale": 0.2}


@pytest.mark.parametrize(("target", "stages", "causal", "n"), [
    ("sm_90", 2, 0, 77), ("sm_90", 2, 1, 100), ("sm_90", 3, 0, 100), ("sm_80", 3, 1, 77),
    ("sm_80", 4, 0, 45), ("sm_90", 2, 0, 20),
])
def test_pipelined_attention_equals_the_reference(target: str, stages: int, causal: int, n: int) -> None:
    prog = tiledsl.load(ATTENTION, params={"BM": 64, "BN": 16, "STAGES": stages, "CAUSAL": causal})
    args = _args(n)
    report = prog.interpret(level="thread", target=target, shuffle_blocks=True, nan_fill=True, **args)
    assert report.ok, str(report)
    ref = _reference().attention(args["Q"], args["K"], args["V"], 0.2, CAUSAL=causal)["O"]
    err = np.linalg.norm(args["O"].astype(np.float64) - ref) / np.linalg.norm(ref)
    assert err < 2e-3


@pytest.mark.parametrize("target", ["sm_90", "gfx942"])
def test_q_reread_from_lds_in_each_key_block(target: str) -> None:
    """QREGS=0: S = qs·ks^T reads Q from LDS in every key block, so qs stays allocated through the
    pipelined loop (not reused for K/V); same results as the reference."""
    prog = tiledsl.load(ATTENTION, params={"D": 32, "BM": 64, "BN": 16, "CAUSAL": 1, "QREGS": 0})
    args = _args(77)
    report = prog.interpret(level="thread", target=target, shuffle_blocks=True, nan_fill=True, **args)
    assert report.ok, str(report)
    ref = _reference().attention(args["Q"], args["K"], args["V"], 0.2, CAUSAL=1)["O"]
    assert np.linalg.norm(args["O"].astype(np.float64) - ref) / np.linalg.norm(ref) < 2e-3
    kernel, _ = compile_thread_ir(prog, target)
    lds = kernel.attrs["lds_buffers"]
    qs = lds["qs"]
    assert all(v[0] >= qs[0] + 64 * 32 * 2 for k, v in lds.items() if k != "qs")   # nothing reuses qs


def _async_ops(prog: tiledsl.Program, target: str) -> list[str]:
    kernel, _ = compile_thread_ir(prog, target)
    return [op.name for op in kernel.walk() if op.name.startswith("async_")]


def test_async_copies_only_where_the_target_has_them() -> None:
    prog = tiledsl.load(ATTENTION, params={"D": 32, "BM": 64, "BN": 16})
    names = _async_ops(prog, "sm_90")
    # prologue: 2 copies + commit; two unrolled iterations: wait, 2 copies, commit; for the loop
    # over full key blocks and again for the tail loop (split-tail)
    assert names == 2 * (["async_copy", "async_copy", "async_commit"] + 2 * [
        "async_wait", "async_copy", "async_copy", "async_commit"])
    for target in ("gfx942", "gfx1100", "generic"):
        assert _async_ops(prog, target) == []


def test_a_nonzero_pad_copies_synchronously() -> None:
    """cp.async zero-fills what it does not copy, so a copy padded with -inf cannot use it."""
    src = ATTENTION.replace("ks <- K[z, h, n : +BN, :]", "ks <- K[z, h, n : +BN, :] pad -inf")
    prog = tiledsl.load(src, params={"D": 32, "BM": 64, "BN": 16})
    kernel, _ = compile_thread_ir(prog, "sm_90")
    copies = [op for op in kernel.walk() if isinstance(op, tops.AsyncCopyOp)]
    assert {op.operands[0].hint for op in copies} == {"V"}


def _broken(mutate) -> Report:
    """Interpret sm_90 attention after ``mutate`` has edited (a copy of) its thread IR."""
    prog = tiledsl.load(ATTENTION, params={"D": 32, "BM": 64, "BN": 16})
    kernel, ctx = compile_thread_ir(prog, "sm_90")
    kernel = parse_op(print_op(kernel))
    mutate(kernel)
    _, tensors, scalars, dims = prog.prepare_arguments(_args(70))
    report = Report(level="thread")
    ThreadInterpreter(kernel, ctx, tensors, scalars, dims, report).run()
    return report


def test_the_interpreter_harness_runs_the_right_schedule_cleanly() -> None:
    assert _broken(lambda k: None).ok


def test_a_read_before_the_wait_is_a_race_at_the_read() -> None:
    def drop_waits(kernel: ops.KernelOp) -> None:
        for op in [op for op in kernel.walk() if isinstance(op, ops.AsyncWaitOp)]:
            erase(op)
    report = _broken(drop_waits)
    races = [e for e in report.errors if e.kind == "lds-race"]
    assert races, str(report)
    first = races[0]
    assert first.loc.line == _line_of(r"dot\(q, ks\^T\)")
    assert "before the wait for the async copy" in first.message and "ks_stage0" in first.message
    assert first.wave is not None and first.lane is not None


def test_waiting_for_too_few_groups_is_a_race() -> None:
    """wait_group 1 with two stages leaves the current tile's group in flight."""
    def wait_less(kernel: ops.KernelOp) -> None:
        for op in kernel.walk():
            if isinstance(op, ops.AsyncWaitOp):
                op.attrs["pending"] = 1
    races = [e for e in _broken(wait_less).errors if e.kind == "lds-race"]
    assert races and "before the wait" in races[0].message
    assert races[0].loc.line == _line_of(r"dot\(q, ks\^T\)")


def test_refilling_a_buffer_without_the_barrier_is_a_race() -> None:
    """Without the barrier after the wait, the copy of the next tile is issued into the buffer
    that slower threads are still reading (and landed data is read by other threads)."""
    def drop_loop_barriers(kernel: ops.KernelOp) -> None:
        loop = next(op for op in kernel.walk() if isinstance(op, ops.ForOp))
        for op in list(loop.walk()):
            if isinstance(op, tops.BarrierOp) and isinstance(op.parent.ops[op.parent.ops.index(op) - 1],
                                                              ops.AsyncWaitOp):
                erase(op)
    races = [e for e in _broken(drop_loop_barriers).errors if e.kind == "lds-race"]
    assert races
    assert {e.loc.line for e in races} & {_line_of(r"ks <- K"), _line_of(r"dot\(q, ks\^T\)")}
