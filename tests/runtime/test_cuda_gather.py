"""The kernels steered by loaded values (``tests/thread/gather_cases.py``: ragged slices, gathers and
scatters, a paged KV cache, a grouped MoE GEMM and a varlen attention whose grids the launcher
computes from scalar arguments) on a real NVIDIA GPU against their NumPy references (skipped where
there is none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiledsl.testing import load_module, require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()


CASES = load_module(Path(__file__).resolve().parents[1] / "thread" / "gather_cases.py", "tdsl_gather_cases")


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("name", list(CASES.CASES))
def test_gather_case_on_the_gpu(name: str, target: str) -> None:
    case = CASES.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()})
    kernel = case.program().compile(target=target).launcher()
    gpu = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    kernel(**gpu)
    for k in case.outs:
        assert CASES.rel_error(gpu[k].get(), want[k]) <= max(case.tolerance, 1e-4), k     # fast exp2 on the GPU
