"""``tiledsl.torch`` on the CPU: kernels registered as custom ops (schema, output allocation from
the dims or a declared rule, the fake implementation), run eagerly and under
``torch.compile(fullgraph=True)`` (the ``aot_eager`` backend: Dynamo traces through the fake
implementation, AOT autograd functionalises, the op runs the interpreter); and ``attention``
against ``scaled_dot_product_attention``, forward and backward (the default backward), with
causal masks, GQA and [B, N, H, D] views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl

torch = pytest.importorskip("torch")
import tiledsl.torch as tt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ROWSUM = """
kernel rowsum2(X: f32[M, N], out S: f32[M], out T: f32[M], alpha: f32)
  const N
  param BM = 16
  grid (cdiv(M, BM)) as (b)
  block 1 waves
{
  x = X[b*BM : +BM, :]
  S[b*BM : +BM] <- rowsum(x) * alpha
  T[b*BM : +BM] <- rowmax(x)
}
"""

PICK = """
kernel pick(X: f32[M], Idx: i32[K], out Y: f32[L])
  const K
  param L = 8
  grid (1) as (b)
  block 1 waves
{
  i = Idx[0 : +L] pad 0
  Y[0 : +L] <- X[i]
}
"""


def test_a_kernel_becomes_an_op_with_its_schema_and_shapes() -> None:
    op = tt.register(tiledsl.load(ROWSUM), name="rowsum2_test", cpu="block")
    assert op.schema() == "rowsum2_test(Tensor X, float alpha) -> (Tensor, Tensor)"
    x = torch.randn(37, 24)
    s, t = torch.ops.tiledsl.rowsum2_test(x, 2.0)
    assert s.shape == (37,) and s.dtype == torch.float32
    assert torch.allclose(s, x.sum(1) * 2, rtol=1e-5, atol=1e-5) and torch.equal(t, x.amax(1))
    assert tt.register(op.program, name="rowsum2_test") is op
    with pytest.raises(tiledsl.ArgumentError, match="registered already"):
        tt.register(tiledsl.load(ROWSUM), name="rowsum2_test")


def test_the_fake_implementation_gives_the_shapes_under_torch_compile() -> None:
    op = tt.register(tiledsl.load(EXAMPLES / "softmax.tdsl"), name="softmax_compiled")

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x: torch.Tensor) -> torch.Tensor:
        return op(x * 2) + 1

    x = torch.randn(20, 70)
    assert torch.allclose(f(x), torch.softmax(x * 2, dim=1) + 1, atol=1e-6)
    torch.library.opcheck(op.op, (x,), test_utils=("test_schema", "test_faketensor"))


def test_outputs_need_a_rule_where_no_input_gives_the_dim() -> None:
    with pytest.raises(tiledsl.ArgumentError, match=r"out tensor 'S' .*no input gives dim 'Q'"):
        tt.register(tiledsl.load(ROWSUM.replace("out S: f32[M]", "out S: f32[Q]").replace("S[b*BM", "S[b*BM")),
                    name="needs_rule")


def test_accumulated_outputs_start_at_zero() -> None:
    prog = tiledsl.load(EXAMPLES / "reduce_atomic.tdsl")
    op = tt.register(prog, name="reduce_atomic_test", cpu="block")
    ins = [p for p in prog.ast.params if not getattr(p, "out", False)]
    args = [torch.randn(*(100 if isinstance(d, str) else d for d in p.dims)) if hasattr(p, "dims") else 1.0
            for p in ins]
    first = op(*args)
    second = op(*args)
    firsts = first if isinstance(first, tuple) else (first,)
    seconds = second if isinstance(second, tuple) else (second,)
    for a, b in zip(firsts, seconds):
        assert torch.allclose(a, b)         # no leftover from the last call's buffer


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: object) -> torch.Tensor:
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw)


@pytest.mark.parametrize(("causal", "dtype"), [(False, torch.float16), (True, torch.bfloat16)])
def test_attention_forward_and_backward_match_sdpa(causal: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 32, dtype=dtype, requires_grad=True) for _ in range(3))
    o = tt.attention(q, k, v, is_causal=causal)
    ref = _sdpa(q, k, v, is_causal=causal)
    assert float((o.float() - ref).norm() / ref.norm()) < 1e-2
    do = torch.randn_like(o)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)
    rq, rk, rv = torch.autograd.grad(ref, (q, k, v), do.float())
    for got, want in ((dq, rq), (dk, rk), (dv, rv)):
        assert got.dtype == dtype
        assert float((got.float() - want.float()).norm() / want.float().norm()) < 2e-2


@pytest.mark.parametrize(("causal", "dtype"), [(False, torch.float16), (True, torch.bfloat16)])
def test_the_backward_kernels_match_sdpa(causal: bool, dtype: torch.dtype) -> None:
    """The default backward on CUDA tensors (examples/attention_bwd.tdsl from the forward's L),
    run here through the block interpreter on CPU tensors, against SDPA's autograd at N=45."""
    tt.set_attention_backward(tt.kernel_attention_backward)
    try:
        torch.manual_seed(2)
        q, k, v = (torch.randn(1, 2, 45, 32, dtype=dtype, requires_grad=True) for _ in range(3))
        o = tt.attention(q, k, v, is_causal=causal)
        do = torch.randn_like(o)
        dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)
    finally:
        tt.set_attention_backward(None)
    ref = _sdpa(q, k, v, is_causal=causal)
    rq, rk, rv = torch.autograd.grad(ref, (q, k, v), do.float())
    for got, want in ((dq, rq), (dk, rk), (dv, rv)):
        assert got.dtype == dtype
        assert float((got.float() - want.float()).norm() / want.float().norm()) < 2e-2


def test_attention_gqa_views_scale_and_compile() -> None:
    torch.manual_seed(1)
    q = torch.randn(1, 40, 4, 32, dtype=torch.float16).transpose(1, 2)      # [B, N, H, D] viewed [B, H, N, D]
    k, v = (torch.randn(1, 2, 40, 32, dtype=torch.float16, requires_grad=True) for _ in range(2))
    o = tt.attention(q, k, v, scale=0.3, enable_gqa=True)
    ref = _sdpa(q, k, v, scale=0.3, enable_gqa=True)
    assert float((o.float() - ref).norm() / ref.norm()) < 1e-2
    dk, = torch.autograd.grad(o.sum(), (k,))
    rk, = torch.autograd.grad(ref.sum(), (k,))
    assert float((dk.float() - rk).norm() / rk.norm()) < 2e-2
    with pytest.raises(tiledsl.ArgumentError, match="pass enable_gqa=True"):
        tt.attention(q, k, v)
    compiled = torch.compile(lambda a, b, c: tt.attention(a, b, c, is_causal=True, enable_gqa=True), fullgraph=True,
                             backend="aot_eager")
    out = compiled(q, k.detach(), v.detach())
    ref = _sdpa(q, k.detach().repeat_interleave(2, 1), v.detach().repeat_interleave(2, 1), is_causal=True)
    assert np.isfinite(out.float().numpy()).all()
    assert float((out.float() - ref).norm() / ref.norm()) < 1e-2


def test_a_plugged_backward_is_called() -> None:
    calls = []

    def backward(q, k, v, o, lse, do, scale, is_causal):  # type: ignore[no-untyped-def]
        calls.append((scale, is_causal, tuple(lse.shape)))
        return torch.zeros_like(q), torch.ones_like(k), torch.zeros_like(v)

    tt.set_attention_backward(backward)
    try:
        q, k, v = (torch.randn(1, 1, 20, 16, dtype=torch.float16, requires_grad=True) for _ in range(3))
        tt.attention(q, k, v, is_causal=True, scale=0.5).sum().backward()
    finally:
        tt.set_attention_backward(None)
    assert calls and calls[0][:2] == (0.5, True)
    assert torch.equal(k.grad, torch.ones_like(k)) and torch.equal(q.grad, torch.zeros_like(q))


def test_attention_refuses_what_the_kernel_cannot_do() -> None:
    q = torch.randn(1, 2, 40, 32)
    with pytest.raises(tiledsl.ArgumentError, match="float16 or bfloat16"):
        tt.attention(q, q, q)
    h = q.half()
    with pytest.raises(tiledsl.ArgumentError, match="keys as long as queries"):
        tt.attention(h, h[:, :, :20], h[:, :, :20])


def test_a_first_call_inside_torch_compile(tmp_path: Path) -> None:
    """In a fresh process, attention's first call is a compiled one (nothing registered or loaded
    eagerly before)."""
    import subprocess
    import sys
    code = ("import torch, tiledsl.torch as tt\n"
            "q = torch.randn(1, 1, 24, 16, dtype=torch.float16)\n"
            "f = torch.compile(lambda a: tt.attention(a, a, a), fullgraph=True, backend='aot_eager')\n"
            "o = f(q)\n"
            "r = torch.nn.functional.scaled_dot_product_attention(q.float(), q.float(), q.float())\n"
            "print(float((o.float() - r).norm() / r.norm()))\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 1e-2
