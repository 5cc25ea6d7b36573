"""The stage runner (tiledsl/stages.py): order of the stages, error translation, printing, budgets,
caching, and a new target as one record."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiledsl
from tiledsl.diagnostics import InternalCompilerError, TdslError
from tiledsl.ir import ops
from tiledsl.layout import LayoutError
from tiledsl.stages import (
    PASSES,
    STAGE_NAMES,
    Options,
    Pass,
    StageBudgetExceeded,
    run_until,
    run_with_context,
)
from tiledsl.targets import get_target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GEMM = EXAMPLES / "gemm.tdsl"


def gemm(**params: int) -> tiledsl.Program:
    return tiledsl.load(GEMM, params=params)


@pytest.fixture
def extra_pass(monkeypatch: pytest.MonkeyPatch):
    """Put a pass of the test's into the tile-IR stage, under the name 'probe'."""
    def install(run) -> Options:
        monkeypatch.setitem(PASSES, "probe", Pass("probe", run, "a test's pass"))
        return Options(tile_passes=("fold", "probe"))
    return install


def test_stages_are_in_order() -> None:
    assert STAGE_NAMES == ("tile-ir", "ir", "layout-ir", "thread-ir", "llvm")


def test_print_after_all_sees_every_pass_of_every_stage() -> None:
    seen: list[tuple[str, str, str | None]] = []
    opts = Options(print_ir=lambda stage, after, target, text: seen.append((stage, after, target)))
    art = run_until(gemm(), "llvm", "sm_90", opts)
    assert art.target == "sm_90"
    stages = [s for s, _, _ in seen]
    assert stages == sorted(stages, key=STAGE_NAMES.index)
    assert seen[0] == ("tile-ir", "sema", None)
    for want in [("layout-ir", "layouts", "sm_90"), ("layout-ir", "lds-alloc", "sm_90"),
                 ("thread-ir", "distribute", "sm_90"), ("thread-ir", "defer-sums", "sm_90"),
                 ("llvm", "lower", "sm_90")]:
        assert want in seen


def test_results_are_cached_per_stage_and_target() -> None:
    prog = gemm()
    a = run_until(prog, "thread-ir", "gfx942")
    assert run_until(prog, "thread-ir", "gfx942") is a
    assert run_until(prog, "thread-ir", "sm_90") is not a
    art = prog.compile("sm_90")
    assert prog.compile("sm_90") is art            # compile() is memoised in process
    assert art.thread_kernel is run_until(prog, "thread-ir", "sm_90")


def test_a_later_stage_does_not_change_a_cached_result() -> None:
    prog = gemm()
    text = tiledsl.ir.printer.print_op(run_until(prog, "ir"))
    run_until(prog, "thread-ir", "gfx1100")
    assert tiledsl.ir.printer.print_op(run_until(prog, "ir")) == text


def test_a_crashing_pass_is_an_internal_error_naming_the_stage_and_pass(extra_pass) -> None:
    def crash(kernel, ctx):
        raise TypeError("operand of sub is ('expanded', ...)")
    opts = extra_pass(crash)
    with pytest.raises(InternalCompilerError) as info:
        run_until(gemm(), "ir", options=opts)
    e = info.value
    assert e.stage == "ir/probe" and isinstance(e.cause, TypeError)
    text = e.format()
    assert "internal compiler error in stage 'ir/probe'" in text
    assert "TypeError: operand of sub" in text
    assert "not a mistake in your program" in text
    assert str(GEMM) in text          # located at the kernel it was working on


def test_a_pass_that_breaks_the_ir_is_an_internal_error(extra_pass) -> None:
    def break_ir(kernel, ctx):
        loop = next(op for op in kernel.walk() if isinstance(op, ops.ForOp))
        loop.regions[0].ops.pop()           # drop the yield
        return True
    with pytest.raises(InternalCompilerError, match="ir/probe"):
        run_until(gemm(), "ir", options=extra_pass(break_ir))


def test_user_errors_pass_through_with_their_source(extra_pass) -> None:
    def refuse(kernel, ctx):
        raise TdslError(kernel.loc, "no, thanks")
    with pytest.raises(TdslError) as info:
        run_until(gemm(), "ir", options=extra_pass(refuse))
    assert info.value.source is not None and "kernel gemm" in info.value.format()


def test_layout_errors_are_located_user_errors(extra_pass) -> None:
    def no_layout(kernel, ctx):
        raise LayoutError("nothing fits")
    with pytest.raises(TdslError, match="nothing fits") as info:
        run_until(gemm(), "ir", options=extra_pass(no_layout))
    assert info.value.loc is not None


def test_a_kernel_over_the_op_budget_is_refused_where_it_grew() -> None:
    with pytest.raises(TdslError, match=r"the kernel grew to \d+ ops in stage 'thread-ir'") as info:
        run_until(gemm(), "thread-ir", "sm_90", Options(max_ops=100))
    assert info.value.loc is not None and info.value.loc.file == str(GEMM)


def test_a_stage_over_its_time_budget_is_reported(extra_pass) -> None:
    def slow(kernel, ctx):
        time.sleep(0.05)
        return False
    opts = dataclasses.replace(extra_pass(slow), stage_budget_s=0.01)
    with pytest.raises(StageBudgetExceeded, match="stage 'ir'"):
        run_until(gemm(), "ir", options=opts)


def test_unknown_pass_and_stage_are_api_errors() -> None:
    with pytest.raises(ValueError, match="unknown pass 'nosuch'"):
        run_until(gemm(), "ir", options=Options(tile_passes=("nosuch",)))
    with pytest.raises(ValueError, match="unknown stage 'assembly'"):
        run_until(gemm(), "assembly")


def test_native_stage_needs_a_native_target() -> None:
    with pytest.raises(TdslError, match="cannot compile natively for 'generic'"):
        run_until(gemm(), "llvm", "generic")
    kernel, ctx = run_with_context(gemm(), "thread-ir", "generic")
    assert kernel.attrs["target"] == "generic" and ctx.thread.num_waves == 4


def test_parse_op_knows_every_dialect_in_a_fresh_process() -> None:
    code = "from tiledsl.ir.parser import parse_op; print(parse_op('barrier()').name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "barrier"


@pytest.mark.parametrize("base", ["gfx942", "sm_90"])
def test_a_new_gpu_is_one_record(base: str) -> None:
    """gfx950 and sm_100 are not in the table; a record derived from their predecessors, with the
    processor's name, is all the thread level and the backends need."""
    old = get_target(base)
    name, facts = ("gfx950", "amdgpu") if base == "gfx942" else ("sm_100", "nvptx")
    arch_facts = dataclasses.replace(getattr(old, facts), name=name)
    if facts == "nvptx":
        arch_facts = dataclasses.replace(arch_facts, ptx_features="+ptx86")
    record = dataclasses.replace(old, name=name, arch=name, **{facts: arch_facts})
    art = run_until(gemm(), "llvm", record)
    assert art.target == name
    if facts == "amdgpu":
        assert '"amdgcn-amd-amdhsa--gfx950"' in art.asm and "v_mfma" in art.asm
        assert art.binary[:4] == b"\x7fELF"
    else:
        assert ".target sm_100" in art.asm and "mma.sync" in art.asm
