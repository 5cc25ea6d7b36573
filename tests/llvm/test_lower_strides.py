"""Run-time strides (``lower_kernel(..., strided=...)``): the lowered kernel, run on the CPU
(``host_simt``), reads and writes views whose last dim is contiguous — attention on tensors stored
``[B, N, H, D]`` and viewed as ``[B, H, N, D]`` — and computes what it computes on dense copies.
The thread interpreter takes the same views (it copies them), so all three are compared."""

from __future__ import annotations

import numpy as np
import pytest
from host_simt import HostKernel, HostSimtTarget
from lower_testing import program, reference, rel_error

from tiledsl.compile import compile_program
from tiledsl.llvm.lower import kernel_args, lower_kernel
from tiledsl.thread import compile_thread_ir


def _bnhd(rng: np.random.Generator, b: int, n: int, h: int, d: int) -> np.ndarray:
    """A [B, H, N, D] view of [B, N, H, D] storage: strides (N·H·D, D, H·D, 1) elements."""
    return rng.standard_normal((b, n, h, d)).astype(np.float16).transpose(0, 2, 1, 3)


@pytest.mark.parametrize(("like", "causal"), [("generic", 1), ("sm_90", 0)])
def test_attention_on_transposed_views(like: str, causal: int) -> None:
    rng = np.random.default_rng(5)
    q, k, v = (_bnhd(rng, 2, 77, 3, 32) for _ in range(3))
    out = np.full((2, 77, 3, 32), np.nan, dtype=np.float16).transpose(0, 2, 1, 3)
    assert not q.flags.c_contiguous and q.strides[-1] == 2
    prog = program("attention", (("BM", 64), ("BN", 32), ("CAUSAL", causal), ("D", 32)))
    kernel, ctx = compile_thread_ir(prog, like)
    lk = lower_kernel(kernel, ctx, HostSimtTarget(like), strided=frozenset("QKVO"))
    assert [(a.name, a.axis) for a in lk.args if a.kind == "stride"] == \
        [(t, axis) for t in "QKVO" for axis in range(3)]
    scale = np.float32(32 ** -0.5)
    lse = np.full((2, 3, 77), np.nan, dtype=np.float32)
    HostKernel(lk)({"Q": q, "K": k, "V": v, "O": out, "L": lse}, {"scale": scale})
    dense, dense_lse = np.full(out.shape, np.nan, dtype=np.float16), np.full(lse.shape, np.nan, dtype=np.float32)
    report = prog.interpret(level="thread", target=like, Q=q, K=k, V=v, O=dense, L=dense_lse, scale=scale)
    assert report.ok, str(report)
    got = out.astype(np.float64)
    assert rel_error(got, dense.astype(np.float64)) <= 1e-3
    ref = reference().attention(q, k, v, scale, CAUSAL=causal)
    assert rel_error(got, ref["O"]) <= 2e-3
    assert rel_error(lse.astype(np.float64), ref["L"]) <= 1e-5
    assert np.isnan(out.base[:, :, :, :]).sum() == 0      # every element of the storage written


def test_a_strided_tensor_takes_its_strides_and_the_others_stay_dense() -> None:
    prog = program("attention", (("D", 64),))
    kernel, _ = compile_thread_ir(prog, "sm_90")
    args = kernel_args(kernel, HostSimtTarget("sm_90"), frozenset({"K"}))
    assert [(a.kind, a.name, a.axis) for a in args][-3:] == [("stride", "K", 0), ("stride", "K", 1),
                                                             ("stride", "K", 2)]
    art = compile_program(prog, "sm_90", strided=frozenset({"K"}))
    strides = [a for a in art.meta["args"] if a["kind"] == "stride"]
    assert [(a["name"], a["axis"], a["size"], a["offset"] % 8) for a in strides] == \
        [("K", 0, 8, 0), ("K", 1, 8, 0), ("K", 2, 8, 0)]
    assert "axis" not in art.meta["args"][0]
    dense = compile_program(prog, "sm_90")
    assert dense is not art and not any(a["kind"] == "stride" for a in dense.meta["args"])


def test_strided_names_a_tensor_parameter() -> None:
    import tiledsl
    with pytest.raises(tiledsl.ArgumentError, match="strided: 'scale' is not a tensor parameter"):
        program("attention", (("D", 64),)).compile(target="sm_90", strided=["scale"])
