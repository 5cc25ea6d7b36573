"""tiledsl.llvm: pointer spelling, the compile pipeline, safe_compile, operand checks."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from backend_kernels import build_tiny_kernel

from tiledsl.backend_amdgpu import AmdgpuTarget
from tiledsl.backend_nvptx import NvptxTarget
from tiledsl.llvm import OPAQUE_POINTER_TEXT, CompileError, LlvmAbort, UnsupportedOnTarget, ir
from tiledsl.llvm.irgen import F16, F32, I16, fence

REPO = Path(__file__).resolve().parents[2]


def test_llvmlite_prints_opaque_pointers():
    assert OPAQUE_POINTER_TEXT
    text = str(build_tiny_kernel(AmdgpuTarget("gfx942")))
    assert "ptr addrspace(3)" in text and "ptr addrspace(1)" in text
    assert ")*" not in text and "i8*" not in text


def test_typed_pointer_mode_imported_first_still_gives_opaque_operands():
    """Another library imported llvmlite in typed mode before tiledsl: still opaque, still compiles."""
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "1"
        import llvmlite.ir
        sys.path.insert(0, "tests/backend")
        from backend_kernels import build_tiny_kernel
        from tiledsl.llvm import OPAQUE_POINTER_TEXT
        from tiledsl.backend_amdgpu import AmdgpuTarget
        t = AmdgpuTarget("gfx942")
        text = str(build_tiny_kernel(t))
        assert not OPAQUE_POINTER_TEXT
        assert "getelementptr i8, ptr addrspace(3) @" in text, text
        assert ")*" not in text.split("define", 1)[1].split("@arena = ")[0]
        print(len(t.compile(text).asm) > 0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_importing_tiledsl_first_leaves_the_environment_alone():
    script = "import os; import tiledsl.llvm as L; print(L.OPAQUE_POINTER_TEXT, " \
             "os.environ.get('LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS'))"
    env = {k: v for k, v in os.environ.items() if k != "LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.split() == ["True", "None"], proc.stderr
    env["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "1"
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.split() == ["True", "1"], proc.stderr


def test_data_layout_is_set_before_optimisation():
    t = AmdgpuTarget("gfx942")
    text = str(build_tiny_kernel(t)).replace(f'target datalayout = "{t.data_layout}"', 'target datalayout = ""')
    c = t.compile(text)
    assert f'target datalayout = "{t.data_layout}"' in c.llvm_ir
    # 32-bit LDS addressing survived O3: no 64-bit index arithmetic on the arena.
    assert "getelementptr i8, ptr addrspace(3) @arena, i64" not in c.llvm_ir


def test_compile_reports_parse_and_verifier_errors():
    t = AmdgpuTarget("gfx942")
    with pytest.raises(CompileError, match="could not parse"):
        t.compile("define void @f( {")
    with pytest.raises(CompileError, match="verifier"):
        t.compile("define void @f() {\n  %a = add i32 %a, 1\n  ret void\n}\n")


def test_safe_compile_turns_an_llvm_abort_into_an_exception():
    # permlanex16 does not exist on gfx942: instruction selection aborts the process
    # (docs/targets/llvm-pipeline.md §4); in the forked child that is only the child.
    text = """
declare i32 @llvm.amdgcn.permlanex16.i32(i32, i32, i32, i32, i1, i1)
define amdgpu_kernel void @k(ptr addrspace(1) %o) {
  %v = load i32, ptr addrspace(1) %o
  %r = call i32 @llvm.amdgcn.permlanex16.i32(i32 poison, i32 %v, i32 0, i32 0, i1 true, i1 false)
  store i32 %r, ptr addrspace(1) %o
  ret void
}
"""
    with pytest.raises(LlvmAbort, match="(?i)cannot select"):
        AmdgpuTarget("gfx942").safe_compile(text)


def test_safe_compile_returns_the_same_result_and_forwards_python_errors():
    t = AmdgpuTarget("gfx1100")
    m = build_tiny_kernel(t)
    assert t.safe_compile(m) == t.compile(m)
    with pytest.raises(CompileError, match="could not parse"):
        t.safe_compile("not llvm")


def test_nvptx_abort_on_exp_is_caught():
    text = """
declare float @llvm.exp.f32(float)
define ptx_kernel void @k(ptr addrspace(1) %o) {
  %x = load float, ptr addrspace(1) %o
  %y = call float @llvm.exp.f32(float %x)
  store float %y, ptr addrspace(1) %o
  ret void
}
"""
    with pytest.raises(CompileError, match="fexp"):
        NvptxTarget("sm_80").safe_compile(text)


def _builder(t):
    m = t.new_module("ops")
    fn = t.declare_kernel(m, "ops", [], 64)
    return ir.IRBuilder(fn.append_basic_block())


def test_matrix_op_checks_operand_counts_and_types():
    t = AmdgpuTarget("gfx942")
    b = _builder(t)
    h, f = ir.Constant(F16, 1.0), ir.Constant(F32, 0.0)
    with pytest.raises(ValueError, match="A needs 4 elements per lane, got 3"):
        t.matrix_op(b, "mfma_f32_16x16x16_f16", [h] * 3, [h] * 4, [f] * 4)
    with pytest.raises(TypeError, match="B elements must be i16"):
        t.matrix_op(b, "mfma_f32_16x16x16_bf16", [ir.Constant(I16, 1)] * 4, [h] * 4, [f] * 4)
    with pytest.raises(ValueError, match="unknown matrix instruction 'mfma_typo'"):
        t.matrix_op(b, "mfma_typo", [], [], [])


def test_unsupported_on_target_survives_pickling():
    err = UnsupportedOnTarget("gfx1100", "mfma_f32_32x32x8_f16", "this target has wmma")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, NotImplementedError)
    assert str(back) == str(err) and back.target == "gfx1100"


def test_fence_with_metadata_prints_its_attachment():
    t = AmdgpuTarget("gfx90a")
    b = _builder(t)
    node = b.module.add_metadata([ir.MetaDataString(b.module, "amdgpu-synchronize-as"),
                                  ir.MetaDataString(b.module, "local")])
    fence(b, "acquire", "workgroup", {"mmra": node})
    assert f'fence syncscope("workgroup") acquire, !mmra !{node.name}' in str(b.module)


@pytest.mark.parametrize("bad_mask", [0, 64])
def test_shuffle_mask_must_be_a_lane_bit(bad_mask):
    t = AmdgpuTarget("gfx942")
    with pytest.raises(ValueError, match="mask"):
        t.shuffle_xor(_builder(t), ir.Constant(F32, 1.0), bad_mask)


def test_declare_kernel_validates_block_and_readonly():
    t = NvptxTarget("sm_80")
    with pytest.raises(ValueError, match="1..1024"):
        t.declare_kernel(t.new_module("m"), "k", [], 2048)
    with pytest.raises(ValueError, match="not a pointer"):
        t.declare_kernel(t.new_module("m"), "k", [F32], 64, readonly_args=[0])
