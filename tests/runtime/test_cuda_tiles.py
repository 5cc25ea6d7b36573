"""On a real NVIDIA GPU (skipped where there is none): tiles smaller than the waves' matrix
tiles (waves replicating data; on sm_90a, warpgroups replicating a whole wgmma tile), the decode
kernel, and block-sparse attention (an if in the key loop), against the NumPy references and
the thread interpreter, at lengths that are not multiples of the tiles."""

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

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES_REF = _load(ROOT / "examples" / "reference.py", "tdsl_examples_reference_cuda_tiles")
KERNELS_REF = _load(ROOT / "tests" / "kernels" / "reference.py", "tdsl_test_kernels_reference_cuda_tiles")


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


def _run(prog: tiledsl.Program, target: str, arrays: dict[str, np.ndarray], scalars: dict) -> np.ndarray:
    """O from the GPU; asserts that the thread interpreter gives the same."""
    gpu = {name: cupy.asarray(x) for name, x in arrays.items()}
    gpu["O"] = cupy.full(arrays["Q"].shape, np.nan, dtype=cupy.float16)
    lse = {"L": cupy.full(arrays["Q"].shape[:3], np.nan, dtype=cupy.float32)} if any(p.name == "L" for p in prog.tensor_params) else {}
    prog.compile(target=target).launcher()(**gpu, **lse, **scalars)
    out = gpu["O"].get()
    thread = np.zeros_like(arrays["Q"])
    lse_thread = {"L": np.zeros(arrays["Q"].shape[:3], np.float32)} if lse else {}
    assert prog.interpret(level="thread", target=target, **arrays, O=thread, **lse_thread, **scalars).ok
    assert _rel(out, thread.astype(np.float64)) < 2e-3
    return out


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize(("bm", "waves", "causal"), [(16, 4, 1), (32, 4, 0), (64, 8, 1)])
def test_attention_small_tiles(target: str, bm: int, waves: int, causal: int) -> None:
    rng = np.random.default_rng(bm + waves)
    q, k, v = (rng.standard_normal((2, 3, 133, 64)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(ROOT / "examples" / "attention.tdsl",
                        params={"D": 64, "BM": bm, "WAVES": waves, "CAUSAL": causal})
    out = _run(prog, target, {"Q": q, "K": k, "V": v}, {"scale": 0.125})
    assert _rel(out, EXAMPLES_REF.attention(q, k, v, 0.125, CAUSAL=causal)["O"]) < 2e-3


@pytest.mark.parametrize("target", ["sm_80", "sm_90", "sm_90a"])
def test_decode_attention(target: str) -> None:
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 3, 16, 64)).astype(np.float16)
    k, v = (rng.standard_normal((2, 3, 1000, 64)).astype(np.float16) for _ in range(2))
    prog = tiledsl.load(ROOT / "tests" / "kernels" / "decode_attention.tdsl", params={"D": 64})
    out = _run(prog, target, {"Q": q, "K": k, "V": v}, {"scale": 0.125})
    assert _rel(out, KERNELS_REF.decode_attention(q, k, v, 0.125)) < 2e-3


@pytest.mark.parametrize("target", ["sm_80", "sm_90", "sm_90a"])
def test_block_sparse_attention(target: str) -> None:
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((1, 2, 300, 64)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(ROOT / "tests" / "kernels" / "block_sparse_attention.tdsl", params={"D": 64})
    out = _run(prog, target, {"Q": q, "K": k, "V": v}, {"scale": 0.125, "dense": 70})
    assert _rel(out, KERNELS_REF.block_sparse_attention(q, k, v, 0.125, 70, BN=32)) < 2e-3
