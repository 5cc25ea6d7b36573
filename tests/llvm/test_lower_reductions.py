"""``min`` reductions (and the i32 max/sum beside them) in native code: FileCheck that gfx942,
gfx1100 and sm_90a emit min instructions (not the adds that ``min(x, axis=k)`` once became), and
the lowered kernel run on the CPU (``host_simt``) against the thread interpreter and NumPy, NaNs
and the ends of the i32 range included."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from lower_testing import filecheck
from test_lower_host import run_both

import tiledsl
from tiledsl.compile import Artifact

# Rows spread over the 4 waves: the column reductions combine waves through LDS, the row
# reductions combine lanes by shuffles.
MINMAX = """
kernel minmax(X: f32[M, N], I: i32[M, N], out RX: f32[M], out CX: f32[N], out MX: f32[N],
              out RI: i32[M], out CI: i32[N], out MI: i32[N], out SI: i32[N])
  param BM = 64, BN = 64
  grid (1) as (b)
  block 4 waves
{
  layout rows = blocked(spt=[1, 1], order=[1, 0], waves=[4, 1])
  x = X[0 : +BM, 0 : +BN] pad inf @ rows
  RX[0 : +BM] <- rowmin(x)
  CX[0 : +BN] <- min(x, axis=0)
  xm = X[0 : +BM, 0 : +BN] pad -inf @ rows
  MX[0 : +BN] <- colmax(xm)
  k = I[0 : +BM, 0 : +BN] pad 2147483647 @ rows
  RI[0 : +BM] <- min(k, axis=1)
  CI[0 : +BN] <- colmin(k)
  km = I[0 : +BM, 0 : +BN] pad (-2147483647 - 1) @ rows
  MI[0 : +BN] <- colmax(km)
  ks = I[0 : +BM, 0 : +BN] @ rows
  SI[0 : +BN] <- colsum(ks)
}
"""

CHECKS = {
    "gfx942": r"""
ASM: v_min_f32
ASM: v_min_i32
""",
    "gfx1100": r"""
ASM: v_min_f32
ASM: v_min_i32
""",
    "sm_90a": r"""
ASM: min.f32
ASM: shfl.sync.bfly.b32
ASM: min.f32
ASM: min.s32
""",
}
IR_CHECKS = r"""
CHECK-NOT: fadd
CHECK-DAG: call float @llvm.minnum.f32(float
CHECK-DAG: call i32 @llvm.smin.i32(i32
CHECK-DAG: call float @llvm.maxnum.f32(float
CHECK-DAG: call i32 @llvm.smax.i32(i32
"""


@functools.cache
def compiled(target: str) -> Artifact:
    return tiledsl.load(MINMAX).compile(target=target)


@pytest.mark.parametrize("target", sorted(CHECKS))
def test_min_reductions_emit_min_instructions(target: str) -> None:
    art = compiled(target)
    filecheck(art.llvm_ir, IR_CHECKS)      # no f32 sum in this kernel: a float add is a min gone wrong
    filecheck(art.asm, CHECKS[target].replace("ASM:", "CHECK:"))


@pytest.mark.parametrize("target", ["gfx942", "gfx1100"])
def test_min_reductions_link(target: str) -> None:
    pytest.importorskip("tiledsl.backend_amdgpu").find_linker()
    assert compiled(target).binary[:4] == b"\x7fELF"


def _numpy(x: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    """The kernel's answers: each line of the 64x64 tile, its elements past the tensor being
    the load's pad value."""
    def tile(a: np.ndarray, pad: float) -> np.ndarray:
        return np.pad(a, [(0, 64 - a.shape[0]), (0, 64 - a.shape[1])], constant_values=pad)
    m, n = x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN lines: NaN is the answer
        return {"RX": np.nanmin(tile(x, np.inf), axis=1)[:m], "CX": np.nanmin(tile(x, np.inf), axis=0)[:n],
                "MX": np.nanmax(tile(x, -np.inf), axis=0)[:n], "RI": k.min(axis=1), "CI": k.min(axis=0),
                "MI": k.max(axis=0), "SI": k.sum(axis=0, dtype=np.int32)}


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_min_reductions_run_on_the_host(like: str) -> None:
    """Shapes short of the 64x64 tile (pads take part), NaNs (maxNum/minNum ignore them; an
    all-NaN line stays NaN), and i32 values at both ends of the range."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((64, 39)) * 10).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3] = np.nan          # all 64 rows: no pad in this column
    info = np.iinfo(np.int32)
    k = rng.integers(info.min, info.max, (64, 39), endpoint=True, dtype=np.int64).astype(np.int32)
    k[0, :4] = [info.min, info.max, info.min, info.max]
    host, interp, _ = run_both(MINMAX, like, {"X": x, "I": k})
    want = _numpy(x, k)
    for name, w in want.items():
        assert np.array_equal(host[name], interp[name], equal_nan=True), name
        assert np.array_equal(host[name], w.astype(host[name].dtype), equal_nan=True), name
    assert np.isnan(host["CX"][3]) and np.isnan(host["MX"][3])
