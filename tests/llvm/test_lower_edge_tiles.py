"""The lowered code of the edge-of-tiling programs (``tests/thread/edge_cases.py``), run on the CPU
(``host_simt``) for the thread IR of generic, gfx942 (wave64, 4 waves = 256 threads) and sm_90,
computes what the NumPy reference does: identity-padded reductions and butterflies across waves,
``uniform`` values as loop bounds and branch conditions, one-element loads, broadcasts of extent-1
tiles."""

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


def _edge_cases() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "thread" / "edge_cases.py"
    spec = importlib.util.spec_from_file_location("tdsl_edge_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


EDGE = _edge_cases()
HOST_CASES = ["softmax-BN96", "softmax-BN1", "layernorm-BM3-BN96", "segments-W2", "totals-W2-BN96",
              "one_row-W2-5x96", "pinned", "int_total-W8", "dot_stats-16x48x16-W2", "dot_stats-64x64x32-W4",
              "cube-BC512"]


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
@pytest.mark.parametrize("name", HOST_CASES)
def test_lowered_code_matches_numpy(name: str, like: str) -> None:
    case = EDGE.CASES[name]
    args = case.inputs(np.random.default_rng(0))
    want = case.reference({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()})
    prog = case.program()
    kernel, ctx = compile_thread_ir(prog, like)
    arrays = {k: v for k, v in args.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in args.items() if not isinstance(v, np.ndarray)}
    HostKernel(lower_kernel(kernel, ctx, HostSimtTarget(like)))(arrays, scalars)
    for k in case.outs:
        if arrays[k].dtype.kind == "i":
            assert np.array_equal(arrays[k], want[k]), k
        else:
            assert EDGE.rel_error(arrays[k], want[k]) <= 1e-5, k
