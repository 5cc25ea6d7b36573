"""FA2 backward (examples/attention_bwd.tdsl) on a real NVIDIA GPU, after the forward example: the
gradients against the float64 chain rule of examples/reference.py and against PyTorch's SDPA
backward, on sm_90 (mma.sync) and sm_90a (wgmma), at lengths that are not multiples of the
tiles (skipped where there is no GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()
torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BWD = EXAMPLES / "attention_bwd.tdsl"
_spec = importlib.util.spec_from_file_location("reference_bwd", EXAMPLES / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

TORCH_DTYPE = {"f16": torch.float16, "bf16": torch.bfloat16}
TOLERANCE = {"f16": 5e-3, "bf16": 3e-2}
# The default tiles, and those bench/attention_bwd_gpu.py tries first at D=128 (no spills).
CONFIGS = [({}, {}),
           ({"BN": 128, "BM": 32, "WAVES": 8, "KREGS": 0}, {"BM": 128, "BN": 64, "WAVES": 8})]


def _rel(out, ref) -> float:
    out64, ref64 = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(out64 - ref64) / np.linalg.norm(ref64))


def _backward(target: str, q, k, v, do, scale: float, causal: int, dkdv_tiles: dict, dq_tiles: dict) -> dict:
    """Forward (O, L), then the backward's three launches: the arrays by name, on the GPU."""
    z, h, n, d = q.shape
    base = {"D": d, "CAUSAL": causal, "T": "bf16" if q.dtype == torch.bfloat16 else "f16"}
    a = {"O": torch.full_like(q, float("nan")), "L": torch.full((z, h, n), float("nan"), device="cuda"),
         "Delta": torch.full((z, h, n), float("nan"), device="cuda"),
         **{g: torch.full_like(q, float("nan")) for g in ("dQ", "dK", "dV")}}
    tiledsl.load(EXAMPLES / "attention.tdsl", params=base).launcher(target=target)(
        Q=q, K=k, V=v, O=a["O"], L=a["L"], scale=scale)
    tiledsl.load(BWD, kernel="attention_bwd_preprocess", params={"D": d, "T": base["T"]}).launcher(target=target)(
        O=a["O"], dO=do, Delta=a["Delta"])
    common = {"Q": q, "K": k, "V": v, "dO": do, "L": a["L"], "Delta": a["Delta"], "scale": scale}
    dkdv = tiledsl.load(BWD, kernel="attention_bwd_dkdv", params={**base, **dkdv_tiles}).compile(target=target)
    dq = tiledsl.load(BWD, kernel="attention_bwd_dq", params={**base, **dq_tiles}).compile(target=target)
    if target == "sm_90a":
        for art in (dkdv, dq):
            assert "wgmma.mma_async" in art.asm and "mma.sync" not in art.asm
    dkdv.launcher()(**common, dK=a["dK"], dV=a["dV"])
    dq.launcher()(**common, dQ=a["dQ"])
    torch.cuda.synchronize()
    return a


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("d, causal, n", [(64, 0, 333), (64, 1, 200), (128, 0, 129), (128, 1, 77)])
@pytest.mark.parametrize("tiles", CONFIGS, ids=["default", "bench"])
def test_backward_against_the_reference_and_sdpa(target: str, dtype: str, d: int, causal: int, n: int,
                                                 tiles: tuple[dict, dict]) -> None:
    gen = torch.Generator(device="cuda").manual_seed(n + d + causal)
    q, k, v, do = (torch.randn(2, 3, n, d, device="cuda", dtype=TORCH_DTYPE[dtype], generator=gen)
                   for _ in range(4))
    scale = d ** -0.5
    out = _backward(target, q, k, v, do, scale, causal, *tiles)
    host = {name: x.float().cpu().numpy() for name, x in (("Q", q), ("K", k), ("V", v), ("dO", do))}
    ref = reference.attention_bwd(**host, scale=scale, CAUSAL=causal)
    fwd = reference.attention(host["Q"], host["K"], host["V"], scale, CAUSAL=causal)
    assert _rel(out["L"].cpu().numpy(), fwd["L"]) < 1e-5
    for g in ("dQ", "dK", "dV"):
        err = _rel(out[g].float().cpu().numpy(), ref[g])
        print(f"{target} {dtype} D={d} causal={causal} N={n} {g}: rel err {err:.2e}")
        assert err < TOLERANCE[dtype], g
    # PyTorch's SDPA backward on the same inputs (whatever backend it picks for these shapes).
    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
    o = torch.nn.functional.scaled_dot_product_attention(qg, kg, vg, is_causal=bool(causal), scale=scale)
    want = dict(zip(("dQ", "dK", "dV"), torch.autograd.grad(o, (qg, kg, vg), do)))
    for g in ("dQ", "dK", "dV"):
        assert _rel(out[g].float().cpu().numpy(), want[g].float().cpu().numpy()) < 2 * TOLERANCE[dtype], g
