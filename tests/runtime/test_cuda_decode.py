"""The decode examples on a real NVIDIA GPU (skipped where there is none): flash-decoding's split
and combine kernels, and paged decode, on sm_90 and sm_90a, against the float64 references of
``examples/reference.py`` — at lengths that are not multiples of the tiles or pages, with empty
splits, empty sequences and more query rows than one tile, and one long KV."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import tiledsl
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOLERANCE = 2e-3          # f16 outputs; the GPU's exp2 is the fast one


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_decode_reference_gpu", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference()


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    out64 = out.astype(np.float64)
    assert np.all(np.isfinite(out64))
    return float(np.linalg.norm(out64 - ref) / max(np.linalg.norm(ref), 1e-30))


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize(("z", "hk", "g", "n", "d", "splits", "bn"), [
    (2, 3, 4, 333, 64, 5, 32),        # splits of 96 keys, the last short
    (1, 2, 19, 70, 128, 6, 64),       # two row tiles; splits 2-5 empty
    (1, 2, 4, 20000, 128, 24, 64),    # a long KV
])
def test_flash_decoding(target: str, z: int, hk: int, g: int, n: int, d: int, splits: int, bn: int) -> None:
    rng = np.random.default_rng(n)
    q = rng.standard_normal((z, hk, g, d)).astype(np.float16)
    k, v = (rng.standard_normal((z, hk, n, d)).astype(np.float16) for _ in range(2))
    scale = d ** -0.5
    mod = tiledsl.load(EXAMPLES / "flash_decoding.tdsl", params={"BN": bn, "D": d})
    split = mod.kernels["flash_decoding_split"].compile(target=target).launcher()
    combine = mod.kernels["flash_decoding_combine"].compile(target=target).launcher()
    gq, gk, gv = (cupy.asarray(x) for x in (q, k, v))
    op = cupy.full((z, hk, splits, g, d), cupy.nan, dtype=cupy.float32)
    lse = cupy.full((z, hk, splits, g), cupy.nan, dtype=cupy.float32)
    o = cupy.full((z, hk, g, d), cupy.nan, dtype=cupy.float16)
    launch = split.bound(Q=gq, K=gk, V=gv, Op=op, Lse=lse, scale=scale)    # checked once, launched twice
    launch()
    launch()
    combine(Op=op, Lse=lse, O=o)
    want = REF.flash_decoding_partials(q, k, v, splits, scale, BN=bn)
    finite = np.isfinite(want["Lse"])
    np.testing.assert_array_equal(np.isfinite(lse.get()), finite)
    np.testing.assert_allclose(lse.get()[finite], want["Lse"][finite], rtol=1e-4, atol=1e-3)
    assert _rel(op.get(), want["Op"]) <= TOLERANCE
    assert _rel(o.get(), REF.flash_decoding(q, k, v, scale)) <= TOLERANCE


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize(("lens", "hk", "g", "d", "page", "bn"), [
    ([0, 17, 64, 93], 2, 5, 64, 16, 32),
    ([150, 1, 333], 1, 21, 128, 8, 64),
    ([4000 + 37 * i for i in range(16)], 2, 8, 128, 16, 64),
])
def test_paged_decode(target: str, lens: list[int], hk: int, g: int, d: int, page: int, bn: int) -> None:
    rng = np.random.default_rng(len(lens))
    need = [-(-n // page) for n in lens]
    maxp = max(need) + 1
    pages = sum(need) + 1
    order = rng.permutation(pages).astype(np.int32)
    bt = np.full((len(lens), maxp), order[-1], np.int32)       # past each sequence: the NaN page
    used = 0
    for b, k in enumerate(need):
        bt[b, :k] = order[used:used + k]
        used += k
    kc, vc = (rng.standard_normal((pages, page, hk, d)).astype(np.float16) for _ in range(2))
    kc[order[-1]] = vc[order[-1]] = np.nan
    q = rng.standard_normal((len(lens), hk, g, d)).astype(np.float16)
    scale = d ** -0.5
    kernel = tiledsl.load(EXAMPLES / "paged_decode.tdsl", params={"BN": bn, "PAGE": page, "D": d}) \
        .compile(target=target).launcher()
    o = cupy.full(q.shape, cupy.nan, dtype=cupy.float16)
    lens_np = np.array(lens, np.int32)
    kernel(Q=cupy.asarray(q), Kc=cupy.asarray(kc), Vc=cupy.asarray(vc), BT=cupy.asarray(bt),
           Lens=cupy.asarray(lens_np), O=o, scale=scale)
    assert _rel(o.get(), REF.paged_decode(q, kc, vc, bt, lens_np, scale)) <= TOLERANCE
