"""Atomics on a real NVIDIA GPU (skipped where there is none), on sm_90 and sm_90a: the one-pass
reduction example against its NumPy reference and the thread interpreter, every kind and dtype
of atomic with thousands of blocks racing on the same elements, and old values (tickets) that
must form a serialisation of the updates whatever order the GPU ran them in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.interp.numerics import round_to
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_spec = importlib.util.spec_from_file_location("reference", EXAMPLES / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

GPU_TARGETS = ["sm_90", "sm_90a"]


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = out.astype(np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(out64 - ref64) / np.linalg.norm(ref64))


@pytest.mark.parametrize("target", GPU_TARGETS)
@pytest.mark.parametrize(("m", "n", "bm", "bn"), [(100_003, 333, 64, 64), (777, 1000, 16, 128), (1, 5, 64, 64)])
def test_reduce_atomic_example(target: str, m: int, n: int, bm: int, bn: int) -> None:
    rng = np.random.default_rng(m + n)
    x = rng.standard_normal((m, n)).astype(np.float32)
    prog = tiledsl.load(EXAMPLES / "reduce_atomic.tdsl", params={"BM": bm, "BN": bn})
    gpu = {"X": cupy.asarray(x), "S": cupy.zeros(n, cupy.float32), "Mx": cupy.full(n, -np.inf, cupy.float32),
           "Pos": cupy.zeros(1, cupy.int32)}
    prog.compile(target=target).launcher()(**gpu)
    ref = reference.reduce_atomic(x)
    assert _rel(gpu["S"].get(), ref["S"]) < 1e-5
    np.testing.assert_array_equal(gpu["Mx"].get(), ref["Mx"])
    assert int(gpu["Pos"].get()[0]) == ref["Pos"][0]
    if m * n <= 1_000_000:
        host = {"S": np.zeros(n, np.float32), "Mx": np.full(n, -np.inf, np.float32), "Pos": np.zeros(1, np.int32)}
        assert prog.interpret(level="thread", target=target, X=x, **host).ok
        assert _rel(gpu["S"].get(), host["S"]) < 1e-5


KINDS = """
kernel kinds(X: f32[G, N], H: f16[G, 64], B: bf16[G, 64], out S: f32[N], out Hi: f32[N], out Lo: f32[N],
             out SI: i32[N], out HI: i32[N], out LI: i32[N], out F16: f16[64], out B16: bf16[64])
  param BN = 128
  grid (G, cdiv(N, BN)) as (g, bn)
  block 2 waves
{
  x = X[g, bn*BN : +BN]
  atomic_add(S[bn*BN : +BN], x)
  atomic_max(Hi[bn*BN : +BN], x)
  atomic_min(Lo[bn*BN : +BN], x)
  i = i32(x)
  atomic_add(SI[bn*BN : +BN], i)
  atomic_max(HI[bn*BN : +BN], i)
  atomic_min(LI[bn*BN : +BN], i)
  if bn == 0 {
    atomic_add(F16[:], H[g, :])
    atomic_add(B16[:], B[g, :])
  }
}
"""


@pytest.mark.parametrize("target", GPU_TARGETS)
def test_every_kind_with_blocks_racing(target: str) -> None:
    g, n = 3000, 300
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((g, n)) * 100).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan                  # max/min ignore them; sums are NaN there
    h = round_to(rng.standard_normal((g, 64)) / 64, "f16").astype(np.float16)
    b = round_to(rng.standard_normal((g, 64)) / 64, "bf16")
    gpu = {"X": cupy.asarray(x), "H": cupy.asarray(h), "B": cupy.asarray((b.view(np.uint32) >> 16).astype(np.uint16)),
           "S": cupy.zeros(n, cupy.float32), "Hi": cupy.full(n, -np.inf, cupy.float32),
           "Lo": cupy.full(n, np.inf, cupy.float32), "SI": cupy.zeros(n, cupy.int32),
           "HI": cupy.full(n, -2**31, cupy.int32), "LI": cupy.full(n, 2**31 - 1, cupy.int32),
           "F16": cupy.zeros(64, cupy.float16), "B16": cupy.zeros(64, cupy.uint16)}
    tiledsl.load(KINDS).compile(target=target).launcher()(**gpu)
    finite = np.isfinite(x).all(0)
    s = gpu["S"].get()
    assert np.isnan(s[~finite]).all() and _rel(s[finite], x[:, finite].astype(np.float64).sum(0)) < 1e-5
    np.testing.assert_array_equal(gpu["Hi"].get(), np.fmax.reduce(x, 0))
    np.testing.assert_array_equal(gpu["Lo"].get(), np.fmin.reduce(x, 0))
    i = np.where(np.isnan(x), 0, np.trunc(x)).astype(np.int64)        # i32(NaN) is 0, as in the interpreters
    np.testing.assert_array_equal(gpu["SI"].get(), i.sum(0))
    np.testing.assert_array_equal(gpu["HI"].get(), i.max(0))
    np.testing.assert_array_equal(gpu["LI"].get(), i.min(0))
    assert _rel(gpu["F16"].get(), h.astype(np.float64).sum(0)) < 1e-2
    b16 = (gpu["B16"].get().astype(np.uint32) << 16).view(np.float32)
    assert _rel(b16, b.astype(np.float64).sum(0)) < 5e-2


TICKETS = """
kernel tickets(V: f32[G], out T: f32[N], out O: f32[G, N], out C: i32[1], out Q: i32[G])
  param BN = 64
  grid (G, cdiv(N, BN)) as (g, bn)
  block 4 waves
{
  O[g, bn*BN : +BN] <- atomic_add(T[bn*BN : +BN], fill(V[g], f32[BN]))
  t = atomic_add(C[0], 1)
  if bn == 0 {
    Q[g : +1] <- fill(t, i32[1])
  }
}
"""


@pytest.mark.parametrize("target", GPU_TARGETS)
def test_old_values_form_a_serialisation(target: str) -> None:
    """Ordered by what they found, the updates of each element chain: each found the previous one's
    result (exact: small integers in f32); a one-element counter hands out every ticket once."""
    g, n = 2000, 100
    v = (np.arange(g) % 7 + 1).astype(np.float32)
    gpu = {"V": cupy.asarray(v), "T": cupy.zeros(n, cupy.float32), "O": cupy.zeros((g, n), cupy.float32),
           "C": cupy.zeros(1, cupy.int32), "Q": cupy.full(g, -1, cupy.int32)}
    tiledsl.load(TICKETS).compile(target=target).launcher()(**gpu)
    o, t = gpu["O"].get(), gpu["T"].get()
    for c in range(n):
        order = np.argsort(o[:, c], kind="stable")
        found = o[order, c]
        assert found[0] == 0
        np.testing.assert_array_equal(found[1:], found[:-1] + v[order[:-1]])
        assert t[c] == found[-1] + v[order[-1]]
    assert int(gpu["C"].get()[0]) == g * 2
    assert len(set(gpu["Q"].get().tolist())) == g
