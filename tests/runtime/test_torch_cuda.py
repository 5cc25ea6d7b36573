"""PyTorch on a real NVIDIA GPU (skipped where there is none): launches on the current stream of
the tensors' device, under CUDA-graph capture and replay, strided views read in place, the
custom ops under ``torch.compile(fullgraph=True)`` (inductor), and ``tiledsl.torch.attention``
forward and backward against ``scaled_dot_product_attention``. Run on the device with
``python -m pytest -q tests/runtime/test_torch_cuda.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiledsl
from tiledsl.runtime.cuda import LaunchError
from tiledsl.testing import require_torch_cuda

pytestmark = pytest.mark.gpu
torch = require_torch_cuda()
import tiledsl.torch as tt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TARGET = tt.default_target(0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: object) -> torch.Tensor:
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw)


@pytest.fixture(scope="module")
def attention() -> object:
    return tiledsl.load(EXAMPLES / "attention.tdsl").launcher(target=TARGET, interpret=False)


def test_torch_tensors_on_the_current_stream(attention: object) -> None:
    q, k, v = (torch.randn(2, 3, 333, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    o = torch.full_like(q, float("nan"))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        attention(Q=q, K=k, V=v, O=o, scale=0.125)       # queued on `side`, not the default stream
        done = torch.cuda.Event()
        done.record(side)
    done.synchronize()
    assert _rel(o, _sdpa(q, k, v, scale=0.125)) < 2e-3


def test_bf16_and_the_explicit_stream_argument(attention: object) -> None:
    q, k, v = (torch.randn(1, 2, 200, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    s = torch.cuda.Stream()
    attention(Q=q, K=k, V=v, O=o, scale=0.1, stream=s)
    s.synchronize()
    assert _rel(o, _sdpa(q, k, v, scale=0.1)) < 1e-2


def test_cpu_tensors_and_two_devices_are_refused(attention: object) -> None:
    q = torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.float16)
    with pytest.raises(LaunchError, match="'K' is a CPU tensor"):
        attention(Q=q, K=q.cpu(), V=q, O=q.clone(), scale=0.1)
    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU: the two-device check needs two")
    with pytest.raises(LaunchError, match="different devices"):
        attention(Q=q, K=q.to("cuda:1"), V=q, O=q.clone(), scale=0.1)


def test_each_device_launches_on_its_own() -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    launcher = tiledsl.load(EXAMPLES / "attention.tdsl").launcher(target=TARGET, interpret=False)
    for dev in (1, 0):
        q = torch.randn(1, 2, 100, 64, device=f"cuda:{dev}", dtype=torch.float16)
        o = torch.empty_like(q)
        launcher(Q=q, K=q, V=q, O=o, scale=0.125)        # the current device is 0 for dev=1
        torch.cuda.synchronize(dev)
        assert _rel(o, _sdpa(q, q, q, scale=0.125)) < 2e-3


def test_cuda_graph_capture_and_replay(attention: object) -> None:
    q, k, v = (torch.randn(1, 4, 256, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    o = torch.empty_like(q)
    attention(Q=q, K=k, V=v, O=o, scale=0.125)           # warm-up: compile, plan, load
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        attention(Q=q, K=k, V=v, O=o, scale=0.125)
    for _ in range(2):
        for x in (q, k, v):
            x.copy_(torch.randn_like(x))
        o.zero_()
        graph.replay()
        torch.cuda.synchronize()
        assert _rel(o, _sdpa(q, k, v, scale=0.125)) < 2e-3


def test_attention_on_bnhd_views_without_a_copy(attention: object) -> None:
    x = torch.randn(3, 3, 2, 77, 4, 64, device="cuda", dtype=torch.float16)   # [B, N, H, D] each of q, k, v
    q, k, v = (x[i].transpose(1, 2) for i in range(3))
    assert not q.is_contiguous()
    o = torch.empty(2, 77, 4, 64, device="cuda", dtype=torch.float16).transpose(1, 2)
    attention(Q=q, K=k, V=v, O=o, scale=0.125)
    torch.cuda.synchronize()
    assert _rel(o, _sdpa(q, k, v, scale=0.125)) < 2e-3
    misaligned = torch.randn(1, 2, 64, 66, device="cuda", dtype=torch.float16)[..., 1:65]
    with pytest.raises(LaunchError, match="not aligned|break the kernel"):
        attention(Q=misaligned, K=misaligned, V=misaligned, O=torch.empty(1, 2, 64, 64, device="cuda",
                  dtype=torch.float16), scale=0.1)


@pytest.mark.parametrize(("causal", "dtype", "n", "d"), [(False, torch.float16, 333, 64), (True, torch.bfloat16, 200, 128),
                                                          (True, torch.float16, 1024, 64)])
def test_tiledsl_attention_forward_and_backward(causal: bool, dtype: torch.dtype, n: int, d: int) -> None:
    torch.manual_seed(n)
    q, k, v = (torch.randn(2, 4, n, d, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    o = tt.attention(q, k, v, is_causal=causal)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert _rel(o, ref) < (2e-3 if dtype == torch.float16 else 1e-2)
    do = torch.randn_like(o)
    grads = torch.autograd.grad(o, (q, k, v), do)
    refs = torch.autograd.grad(ref, (q, k, v), do)
    for g, r in zip(grads, refs):
        assert _rel(g, r) < 2e-2


def test_tiledsl_attention_gqa_under_inductor() -> None:
    q = torch.randn(2, 8, 256, 64, device="cuda", dtype=torch.float16)
    k, v = (torch.randn(2, 2, 256, 64, device="cuda", dtype=torch.float16) for _ in range(2))
    f = torch.compile(lambda a, b, c: tt.attention(a, b, c, is_causal=True, enable_gqa=True) * 2, fullgraph=True)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True) * 2
    assert _rel(f(q, k, v), ref) < 2e-3


def test_a_registered_kernel_under_inductor() -> None:
    op = tt.register(tiledsl.load(EXAMPLES / "softmax.tdsl"), name="softmax_gpu_test")
    f = torch.compile(lambda x: op(x * 3).sum(dim=1), fullgraph=True)
    x = torch.randn(300, 1000, device="cuda")
    assert _rel(f(x), torch.softmax(x * 3, dim=1).sum(dim=1)) < 1e-5
