"""Lowering of pipelined copies: cp.async with zero-fill, commit and wait groups in the PTX of
attention on sm_80/sm_90 (accepted by ptxas), nothing asynchronous on AMDGPU, and an explicit
error for an async op on a target without async copies. (``test_lower_host`` runs sm_90's
pipelined attention on the CPU, where copies land at once.)"""

from __future__ import annotations

import functools
import re

import pytest
from lower_testing import filecheck, lower

from tiledsl.backend_amdgpu import AmdgpuTarget
from tiledsl.backend_nvptx.ptx import PtxasNotFound, find_ptxas, to_cubin
from tiledsl.llvm.lower import LoweredKernel
from tiledsl.llvm.target_base import CompiledModule, UnsupportedOnTarget


@functools.cache
def compiled(key: str, **params: int) -> tuple[LoweredKernel, CompiledModule]:
    lk = lower("attention", key, D=64, **params)
    return lk, lk.compile()


@pytest.mark.parametrize("key", ["sm_80", "sm_90"])
def test_ptx_has_cp_async_with_zero_fill_commit_and_wait(key: str) -> None:
    lk, c = compiled(key)
    filecheck(str(lk.module), r"""
CHECK: %[[N:.*]] = select i1 %{{.*}}, i32 16, i32 0
CHECK: call void @"llvm.nvvm.cp.async.cg.shared.global.16.s"(ptr addrspace(3) %{{.*}}, ptr addrspace(1) %{{.*}}, i32 %[[N]])
CHECK: call void @"llvm.nvvm.cp.async.commit.group"()
CHECK: call void @"llvm.nvvm.cp.async.wait.group"(i32 0)
CHECK-NEXT: call void @"llvm.nvvm.barrier.cta.sync.aligned.all"(i32 0)
""")
    filecheck(c.asm, r"""
CHECK: cp.async.cg.shared.global [%r{{[0-9]+}}{{(\+[0-9]+)?}}], [%rd{{[0-9]+}}{{(\+[0-9]+)?}}], 16, %r{{[0-9]+}};
CHECK: cp.async.commit_group;
CHECK: cp.async.wait_group 0;
CHECK-NEXT: bar.sync 0;
""")
    # K and V are 64x64 f16 (8 KiB each): 4 16-byte copies per thread of 128 for each, so
    # 8 per key block: the prologue's, and two unrolled key blocks in the loop; twice, as
    # split-tail made a loop over full key blocks and a loop over the rest.
    assert len(re.findall(r"cp\.async\.cg\.shared\.global", c.asm)) == 2 * 8 * 3
    # one commit and one wait per key block (LLVM may duplicate a commit into both arms of a
    # guard, so at least)
    assert len(re.findall(r"cp\.async\.commit_group", c.asm)) >= 3
    assert re.findall(r"cp\.async\.wait_group\s+(\d+)", c.asm) == ["0"] * 4     # 2 per loop


def test_three_stages_wait_for_all_but_one_group() -> None:
    _, c = compiled("sm_90", STAGES=3)
    assert re.findall(r"cp\.async\.wait_group\s+(\d+)", c.asm) == ["1"] * 6     # 3 per loop
    assert len(re.findall(r"cp\.async\.cg\.shared\.global", c.asm)) == 2 * 8 * 5


@pytest.mark.parametrize("key", ["sm_80", "sm_90"])
def test_ptxas_accepts_the_pipelined_kernel(key: str) -> None:
    try:
        find_ptxas()
    except PtxasNotFound:
        pytest.skip("ptxas is not installed")
    _, c = compiled(key)
    assert to_cubin(c.asm, key)


@pytest.mark.parametrize("key", ["gfx942", "gfx1100"])
def test_amdgpu_keeps_the_loop_synchronous(key: str) -> None:
    lk, _ = compiled(key)
    assert "cp.async" not in str(lk.module) and "global.load.lds" not in str(lk.module)


def test_async_ops_on_a_target_without_them_are_an_explicit_error() -> None:
    from tiledsl.llvm.llvm_init import ir
    t = AmdgpuTarget("gfx942")
    b = ir.IRBuilder(ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), []), "f").append_basic_block())
    with pytest.raises(UnsupportedOnTarget, match="async_commit is not available on target gfx942"):
        t.async_commit(b)
