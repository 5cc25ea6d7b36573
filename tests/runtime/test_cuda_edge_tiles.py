"""The edge-of-tiling programs (``tests/thread/edge_cases.py``: widths that are not powers of two,
extent-1 tiles, one-element loads, full reductions to uniform scalars, extent-1 broadcasts) on a
real NVIDIA GPU against their NumPy references (skipped where there is none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiledsl.testing import load_module, require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()


EDGE = load_module(Path(__file__).resolve().parents[1] / "thread" / "edge_cases.py", "tdsl_edge_cases")


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("name", list(EDGE.CASES))
def test_edge_case_on_the_gpu(name: str, target: str) -> None:
    case = EDGE.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()})
    kernel = case.program().compile(target=target).launcher()
    gpu = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    kernel(**gpu)
    for k in case.outs:
        got = gpu[k].get()
        if got.dtype.kind == "i":
            assert np.array_equal(got, want[k]), k
        else:
            assert EDGE.rel_error(got, want[k]) <= 1e-4, k      # fast exp/ex2 on the GPU
