"""The lowered code of the kernels steered by loaded values (``tests/thread/gather_cases.py``: ragged
slices, nested loops with loaded bounds, gathers and scatters through index tiles, paged copies into
LDS — asynchronous ones in the sm_90 thread IR —, a grouped GEMM and a varlen attention with
scalar-parameter grids), run on the CPU (``host_simt``) for the thread IR of generic, gfx942 and
sm_90, against the NumPy references."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from host_simt import HostKernel, HostSimtTarget

from tiledsl.llvm.lower import lower_kernel
from tiledsl.thread import compile_thread_ir


def _gather_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "thread" / "gather_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_gather_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CASES = _gather_cases()
HOST_CASES = ["segments-W2-BR5", "nested-BR3", "permute-37x24-BM16-W2", "gather_shapes-M21", "paged-P16-BN32-S2",
              "paged-P8-BN16-S1", "moe-BM16-W1", "varlen-BM16-W1"]


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
@pytest.mark.parametrize("name", HOST_CASES)
def test_lowered_code_matches_numpy(name: str, like: str) -> None:
    case = CASES.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()})
    kernel, ctx = compile_thread_ir(case.program(), like)
    arrays = {k: v for k, v in args.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in args.items() if not isinstance(v, np.ndarray)}
    HostKernel(lower_kernel(kernel, ctx, HostSimtTarget(like)))(arrays, scalars)
    for k in case.outs:
        assert CASES.rel_error(arrays[k], want[k]) <= case.tolerance, k
