"""Native code of the math functions, arg-reductions and scans: every target compiles them
(gfx90a, gfx942, gfx1100, gfx1030, sm_80, sm_90, sm_90a), and FileCheck says which instructions
each target uses (docs/targets/math.md §1): one instruction for floor/ceil/round everywhere,
llvm.log.f32 (v_log_f32) on AMDGPU, tanh.approx.f32 on NVPTX only for f16/bf16 results, no
v_sin_f32/sin.approx (not range-reduced), the xor butterfly of reductions for scans."""

from __future__ import annotations

import functools

import pytest
from lower_testing import filecheck, gpu_target, lower

import tiledsl
from tiledsl.llvm.lower import LoweredKernel
from tiledsl.llvm.target_base import CompiledModule

EVERYTHING = """
kernel math(X: f32[M, N], Y: f32[M, N], out E: f32[M, N], out H: f16[M, N], out B: i32[M, N], out I: i32[M],
            out V: f32[M], out C: f32[M, N])
  param BM = 16, BN = 64, BW = 256
  grid (cdiv(M, BM)) as (b)
  block 4 waves
{
  x = X[b*BM : +BM, 0 : +BN]
  y = Y[b*BM : +BM, 0 : +BN]
  E[b*BM : +BM, 0 : +BN] <- tanh(x) + sigmoid(y) + erf(x) + log(y) + log1p(x) + sin(y) + cos(x) + pow(x, y)
                            + floor(y) + ceil(x) + round(y) + clamp(x, -1.0, 1.0)
  H[b*BM : +BM, 0 : +BN] <- tanh(f16(x))
  B[b*BM : +BM, 0 : +BN] <- i32(isnan(x)) + i32(isinf(y)) + clamp(i32(y), -3, 3) + max(i32(x), 2)
  w = X[b*BM : +BM, 0 : +BW] @ blocked(spt=[1, 1], order=[1, 0], waves=[1, 4])     # a row on 4 waves
  v, i = argmax(w, axis=1)
  I[b*BM : +BM] <- i
  V[b*BM : +BM] <- v
  C[b*BM : +BM, 0 : +BW] <- cumsum(w, axis=1)
}
"""

ONE = """
kernel one(X: f32[M, 64], out E: {out}[M, 64])
  grid (cdiv(M, 16)) as (b)
  block 2 waves
{{
  x = X[b*16 : +16, :]
  E[b*16 : +16, :] <- {out}({expr})
}}
"""


@pytest.mark.parametrize("target", ["gfx90a", "gfx942", "gfx1100", "sm_80", "sm_90", "sm_90a"])
def test_every_target_compiles_everything(target: str) -> None:
    artifact = tiledsl.load(EVERYTHING).compile(target=target)
    assert artifact.binary
    if target.startswith("gfx"):
        assert "v_sin_f32" not in artifact.asm and "v_cos_f32" not in artifact.asm
    else:
        assert "sin.approx" not in artifact.asm and "lg2.approx" not in artifact.asm


def test_rdna2_without_matrix_cores_compiles_everything() -> None:
    """gfx1030 (the generic target's wave32 thread IR): no matrix unit, no permlane, the same code."""
    compiled_ = lower(EVERYTHING, "gfx1030-generic").compile()
    assert "v_rndne_f32" in compiled_.asm and "v_floor_f32" in compiled_.asm


@functools.cache
def compiled(expr: str, key: str, out: str = "f32") -> tuple[LoweredKernel, CompiledModule]:
    lk = lower(ONE.format(expr=expr, out=out), key)
    return lk, gpu_target(key).safe_compile(lk.module)


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", "CHECK: v_floor_f32\nCHECK: v_ceil_f32\nCHECK: v_rndne_f32"),
    ("gfx1100", "CHECK: v_floor_f32\nCHECK: v_ceil_f32\nCHECK: v_rndne_f32"),
    ("sm_90", "CHECK: cvt.rmi.f32.f32\nCHECK: cvt.rpi.f32.f32\nCHECK: cvt.rni.f32.f32"),
])
def test_rounding_is_one_instruction(key: str, checks: str) -> None:
    """round is half to even: v_rndne_f32 / cvt.rni, not v_trunc or a + 0.5."""
    _, c = compiled("floor(x) * 3.0 + ceil(x * 2.0) * 5.0 + round(x * 4.0)", key)
    filecheck(c.asm, checks)


def test_log_on_amdgpu_is_llvm_log() -> None:
    lk, c = compiled("log(x)", "gfx942")
    filecheck(str(lk.module), 'CHECK: call float @"llvm.log.f32"')
    assert "v_log_f32" in c.asm


def test_log_on_nvptx_is_the_sequence() -> None:
    """No llvm.log.f32 (it aborts, §2) and no lg2.approx (absolute error): the f32 sequence."""
    lk, c = compiled("log(x)", "sm_90")
    assert "llvm.log" not in str(lk.module) and "lg2.approx" not in c.ptx
    filecheck(c.ptx, "CHECK: div.rn.f32\nCHECK: fma.rn.f32")


@pytest.mark.parametrize(("out", "approx"), [("f32", False), ("f16", True), ("bf16", True)])
def test_nvptx_tanh_approx_only_for_16_bit_results(out: str, approx: bool) -> None:
    _, c = compiled(f"tanh({out}(x))", "sm_90", out)
    assert ("tanh.approx.f32" in c.ptx) == approx
    if not approx:
        filecheck(c.ptx, "CHECK: ex2.approx.ftz.f32\nCHECK: div.rn.f32")


@pytest.mark.parametrize("key", ["gfx942", "sm_90"])
def test_sin_reduces_large_arguments_on_a_branch(key: str) -> None:
    """Cody-Waite inline, Payne-Hanek behind a branch taken only for |x| >= 2^12 (64-bit products
    of the significand and 2/π's bits)."""
    lk, c = compiled("sin(x)", key)
    ir_text = str(lk.module)
    filecheck(ir_text, r"""
CHECK: call float @"llvm.roundeven.f32"
CHECK: fcmp oge float %{{.*}}, 0x40b0000000000000
CHECK: br i1 %{{.*}}, label %{{.*}}, label %{{.*}}, !prof
CHECK: mul i64
CHECK: call i32 @"llvm.fshl.i32"
""")
    if key == "sm_90":
        assert "sin.approx" not in c.ptx and "mul.wide.u32" in c.ptx
    else:
        assert "v_sin_f32" not in c.asm


@pytest.mark.parametrize(("key", "checks"), [
    ("gfx942", r"""
CHECK: ds_bpermute_b32
CHECK: ds_write{{2?}}_b32
CHECK: s_barrier
CHECK: ds_read{{2?}}_b32
"""),
    ("sm_90", r"""
CHECK: shfl.sync.bfly.b32
CHECK: st.shared.b32
CHECK: bar.sync
CHECK: ld.shared.b32
"""),
])
def test_argmax_and_cumsum_across_lanes_and_waves(key: str, checks: str) -> None:
    """Rows over 4 waves: xor shuffles between lanes (the pair's halves and the scan's totals), the
    waves' partials through shared memory; a scan needs no shuffle-up."""
    lk = lower(EVERYTHING, key)
    c = lk.compile()
    filecheck(c.asm, checks)
    assert "shfl.sync.up" not in c.asm and "row_shr" not in c.asm
