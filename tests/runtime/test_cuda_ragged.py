"""The ragged, backward and top-k examples (``attention_varlen``, ``moe_gemm``, ``layernorm_bwd``,
``topk``; inputs from ``tests/examples/ragged_cases.py``) on a real NVIDIA GPU, on sm_90 and sm_90a,
against their float64 NumPy references (skipped where there is no GPU). f16/f32 cases run on CuPy
arrays; bf16 cases on PyTorch tensors (CuPy has no bf16), skipped without PyTorch.

Run on the device: ``python -m pytest -q tests/runtime/test_cuda_ragged.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()


def _ragged_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / "ragged_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_ragged_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


R = _ragged_cases()

CASES = {
    "varlen-f16": R.varlen([1000, 0, 37, 513, 2048], 64, 0, heads=4),
    "varlen-f16-causal-D128": R.varlen([1000, 0, 37, 513, 2048], 128, 1, bm=64, bn=64, heads=2),
    "varlen-bf16-causal": R.varlen([300, 1, 777], 64, 1, "bf16", heads=3),
    "moe-f16": R.moe([1000, 0, 37, 513, 3, 2048], 256, 320),
    "moe-bf16": R.moe([100, 0, 700, 1], 200, 130, "bf16", bm=64, bn=128, bk=32),
    "moe-f16-small-tiles": R.moe([5, 64, 65, 0], 33, 47, bm=16, bn=32, bk=16, waves=1, stages=3),
    "layernorm_bwd": R.layernorm_bwd(3001, 1000, bm=16, bn=128),
    "layernorm_bwd-narrow": R.layernorm_bwd(777, 33, bm=4, bn=32),
    "topk-f32": R.topk(1000, 1000, 8),
    "topk-f16-short-rows": R.topk(333, 50, 5, "f16", bm=16, bn=64),
    "topk-bf16": R.topk(100, 300, 4, "bf16"),
}


def _on_device(args: dict[str, Any], bf16: bool) -> dict[str, Any]:
    if not bf16:
        return {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    torch = pytest.importorskip("torch")

    def tensor(v: np.ndarray) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(v)).to("cuda")
        return t.to(torch.bfloat16) if v.dtype == np.float32 else t      # f32 arrays hold bf16 values
    return {k: tensor(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}


def _to_host(v: Any) -> np.ndarray:
    return v.get() if isinstance(v, cupy.ndarray) else v.float().cpu().numpy() if v.is_floating_point() \
        else v.cpu().numpy()


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("name", list(CASES))
def test_example_on_the_gpu(name: str, target: str) -> None:
    case = CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()})
    gpu = _on_device(args, case.params.get("T") == "bf16")
    case.program().compile(target=target).launcher()(**gpu)
    got = {k: _to_host(gpu[k]) for k in case.outs}
    # Attention's exp2 is ex2.approx on the GPU: a little further from float64 than the interpreters.
    R.check(case, got, want, scale=2.0)
