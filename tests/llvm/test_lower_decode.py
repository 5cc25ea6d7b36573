"""The lowered code of the decode examples (``examples/flash_decoding.tdsl``: split and combine;
``examples/paged_decode.tdsl``: gathered pages, loaded loop bounds), run on the CPU
(``host_simt``) for the thread IR of generic, gfx942 and sm_90 (the matrix instructions emulated
from their lane layouts, the paged copies asynchronous on sm_90), against the float64 references:
what the GPU tests check, where there is no GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from host_simt import HostKernel, HostSimtTarget

import tiledsl
from tiledsl.llvm.lower import lower_kernel
from tiledsl.thread import compile_thread_ir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_decode_reference_host", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference()


def _run(prog: tiledsl.Program, like: str, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
    kernel, ctx = compile_thread_ir(prog, like)
    HostKernel(lower_kernel(kernel, ctx, HostSimtTarget(like)))(arrays, scalars)


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    out64 = out.astype(np.float64)
    assert np.all(np.isfinite(out64))
    return float(np.linalg.norm(out64 - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_flash_decoding(like: str) -> None:
    """19 query rows (two tiles), 170 keys in 5 splits of 64: the last two splits are empty; the
    combine takes 2 splits a step."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 2, 19, 32)).astype(np.float16)
    k, v = (rng.standard_normal((1, 2, 170, 32)).astype(np.float16) for _ in range(2))
    scale = np.float32(32 ** -0.5)
    mod = tiledsl.load(EXAMPLES / "flash_decoding.tdsl", params={"BN": 32, "D": 32, "BS": 2})
    op = np.full((1, 2, 5, 19, 32), np.nan, np.float32)
    lse = np.full((1, 2, 5, 19), np.nan, np.float32)
    _run(mod.kernels["flash_decoding_split"], like, {"Q": q, "K": k, "V": v, "Op": op, "Lse": lse},
         {"scale": scale})
    want = REF.flash_decoding_partials(q, k, v, 5, scale, BN=32)
    assert (lse[:, :, 3:] == -np.inf).all() and (op[:, :, 3:] == 0).all()
    np.testing.assert_allclose(lse[:, :, :3], want["Lse"][:, :, :3], rtol=1e-5, atol=1e-3)
    assert _rel(op, want["Op"]) <= 2e-3
    o = np.full(q.shape, np.nan, np.float16)
    _run(mod.kernels["flash_decoding_combine"], like, {"Op": op, "Lse": lse, "O": o}, {})
    assert _rel(o, REF.flash_decoding(q, k, v, scale)) <= 2e-3


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_paged_decode(like: str) -> None:
    """Lengths 0, 17, 64, 93 over shuffled pages of 16, two pages a step; 5 query rows."""
    rng = np.random.default_rng(2)
    lens = np.array([0, 17, 64, 93], np.int32)
    bt = np.full((4, 7), 15, np.int32)                  # past each sequence: page 15, all NaN
    order = rng.permutation(15).astype(np.int32)
    used = 0
    for b, n in enumerate(lens):
        need = -(-int(n) // 16)
        bt[b, :need] = order[used:used + need]
        used += need
    kc, vc = (rng.standard_normal((16, 16, 2, 32)).astype(np.float16) for _ in range(2))
    kc[15] = vc[15] = np.nan
    q = rng.standard_normal((4, 2, 5, 32)).astype(np.float16)
    o = np.full(q.shape, np.nan, np.float16)
    scale = np.float32(32 ** -0.5)
    prog = tiledsl.load(EXAMPLES / "paged_decode.tdsl", params={"BN": 32, "D": 32})
    _run(prog, like, {"Q": q, "Kc": kc, "Vc": vc, "BT": bt, "Lens": lens, "O": o}, {"scale": scale})
    assert (o[0] == 0).all()
    assert _rel(o, REF.paged_decode(q, kc, vc, bt, lens, scale)) <= 2e-3
