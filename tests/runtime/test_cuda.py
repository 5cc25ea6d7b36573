"""The CUDA launcher and the GPU commands, and pipelined attention (cp.async, 2 and 3 stages)
against the reference and the unpipelined kernel, on a real NVIDIA GPU (skipped where there is
none)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.cli import main
from tiledsl.interp.numerics import round_to
from tiledsl.runtime.cuda import LaunchError
from tiledsl.testing import require_cuda

pytestmark = pytest.mark.gpu
cupy = require_cuda()

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_spec = importlib.util.spec_from_file_location("reference", EXAMPLES / "reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("d, causal, n", [(64, 0, 333), (64, 1, 200), (128, 0, 129), (128, 1, 77)])
def test_attention_with_cupy_arrays(d: int, causal: int, n: int) -> None:
    rng = np.random.default_rng(d + causal)
    q, k, v = (rng.standard_normal((2, 3, n, d)).astype(np.float16) for _ in range(3))
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": d, "CAUSAL": causal})
    kernel = prog.compile(target="sm_90").launcher()
    o = cupy.full(q.shape, np.nan, dtype=cupy.float16)
    lse = cupy.full(q.shape[:3], np.nan, dtype=cupy.float32)
    kernel(Q=cupy.asarray(q), K=cupy.asarray(k), V=cupy.asarray(v), O=o, L=lse, scale=d ** -0.5)
    out = o.get()
    ref = reference.attention(q, k, v, d ** -0.5, CAUSAL=causal)
    assert _rel(out, ref["O"]) < 2e-3
    assert _rel(lse.get(), ref["L"]) < 1e-5
    thread = np.zeros_like(q)
    thread_lse = np.zeros(q.shape[:3], np.float32)
    assert prog.interpret(level="thread", target="sm_90", Q=q, K=k, V=v, O=thread, L=thread_lse,
                          scale=d ** -0.5).ok
    assert _rel(out, thread.astype(np.float64)) < 2e-3


WGMMA_CONFIGS = [{"BM": 64, "WAVES": 4, "BN": 64, "QREGS": 1},     # one warpgroup, Q in registers (RS)
                 {"BM": 128, "WAVES": 8, "BN": 64, "QREGS": 0},    # two warpgroups, Q from LDS (SS)
                 {"BM": 128, "WAVES": 8, "BN": 128, "QREGS": 1, "STAGES": 3}]


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("d, causal, n", [(64, 0, 333), (64, 1, 200), (128, 0, 129), (128, 1, 77)])
@pytest.mark.parametrize("config", WGMMA_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_attention_wgmma_sm90a(dtype: str, d: int, causal: int, n: int, config: dict) -> None:
    """sm_90a: both dots become wgmma (checked in the PTX) and match the reference and the
    thread interpreter, at lengths that are not multiples of the tiles."""
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": d, "CAUSAL": causal, "T": dtype, **config})
    compiled = prog.compile(target="sm_90a")
    assert "wgmma.mma_async" in compiled.asm and "mma.sync" not in compiled.asm
    rng = np.random.default_rng(d + causal + n)
    host = {name: round_to(rng.standard_normal((2, 3, n, d)).astype(np.float32), dtype) for name in "QKV"}
    gpu = {name: cupy.asarray(_device_bits(x, dtype)) for name, x in host.items()}
    gpu["O"] = cupy.zeros(host["Q"].shape, dtype=gpu["Q"].dtype)
    gpu["L"] = cupy.full(host["Q"].shape[:3], np.nan, dtype=cupy.float32)
    compiled.launcher()(**gpu, scale=d ** -0.5)
    out = _from_device_bits(gpu["O"].get(), dtype)
    ref = reference.attention(host["Q"], host["K"], host["V"], d ** -0.5, CAUSAL=causal)
    tol = 2e-3 if dtype == "f16" else 1.6e-2
    assert _rel(out, ref["O"]) < tol
    assert _rel(gpu["L"].get(), ref["L"]) < 1e-5
    thread = np.zeros_like(host["Q"])
    lse = np.zeros(host["Q"].shape[:3], np.float32)
    assert prog.interpret(level="thread", target="sm_90a", **host, O=thread, L=lse, scale=d ** -0.5).ok
    assert _rel(out, thread.astype(np.float64)) < tol


def _device_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    """f32 values already rounded to ``dtype`` as the GPU holds them (bf16: the top 16 bits)."""
    return x.astype(np.float16) if dtype == "f16" else (x.view(np.uint32) >> 16).astype(np.uint16)


def _from_device_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(np.float32) if dtype == "f16" else (x.astype(np.uint32) << 16).view(np.float32)


def test_attention_bf16_with_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64, "T": "bf16"})
    q, k, v = (torch.randn(1, 2, 150, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], device="cuda", dtype=torch.float32)
    prog.compile(target="sm_90").launcher()(Q=q, K=k, V=v, O=o, L=lse, scale=0.125)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=0.125)
    assert ((o.float() - ref).norm() / ref.norm()).item() < 1.6e-2


@pytest.mark.parametrize("example, shape", [("gemm", {"M": 300, "N": 200, "K": 250}),
                                            ("softmax", {"M": 77, "N": 1000}),
                                            ("layernorm", {"M": 77, "N": 1000})])
def test_other_examples(example: str, shape: dict) -> None:
    rng = np.random.default_rng(1)
    prog = tiledsl.load(EXAMPLES / f"{example}.tdsl")
    if example == "gemm":
        args = {"A": rng.standard_normal((shape["M"], shape["K"])).astype(np.float16),
                "B": rng.standard_normal((shape["K"], shape["N"])).astype(np.float16)}
        out_name, out_shape = "C", (shape["M"], shape["N"])
    else:
        args = {"X": rng.standard_normal((shape["M"], shape["N"])).astype(np.float32)}
        out_name, out_shape = "Y", (shape["M"], shape["N"])
        if example == "layernorm":
            args.update(W=rng.standard_normal(shape["N"]).astype(np.float32),
                        B=rng.standard_normal(shape["N"]).astype(np.float32), eps=1e-5)
    gpu = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    gpu[out_name] = cupy.full(out_shape, np.nan, dtype=cupy.float32)
    prog.compile(target="sm_90").launcher()(**gpu)
    ref = getattr(reference, example)(**args)
    assert _rel(gpu[out_name].get(), ref) < 1e-4


def test_launcher_rejects_bad_arguments() -> None:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64})
    kernel = prog.compile(target="sm_90").launcher()
    q = cupy.zeros((1, 1, 64, 64), dtype=cupy.float16)
    lse = cupy.zeros((1, 1, 64), dtype=cupy.float32)
    with pytest.raises(LaunchError, match="is f16"):
        kernel(Q=q.astype(cupy.float32), K=q, V=q, O=q, L=lse, scale=1.0)
    with pytest.raises(LaunchError, match="compiled for D=64"):
        kernel(Q=cupy.zeros((1, 1, 64, 32), cupy.float16), K=q, V=q, O=q, L=lse, scale=1.0)
    with pytest.raises(LaunchError, match="dim N"):
        kernel(Q=q, K=cupy.zeros((1, 1, 32, 64), cupy.float16), V=q, O=q, L=lse, scale=1.0)
    with pytest.raises(LaunchError, match="missing argument 'scale'"):
        kernel(Q=q, K=q, V=q, O=q, L=lse)
    with pytest.raises(LaunchError, match="missing argument 'L'"):
        kernel(Q=q, K=q, V=q, O=q, scale=1.0)
    with pytest.raises(LaunchError, match="contiguous"):
        kernel(Q=cupy.zeros((1, 1, 64, 128), cupy.float16)[..., ::2], K=q, V=q, O=q, L=lse, scale=1.0)
    with pytest.raises(LaunchError, match="GPU array"):
        kernel(Q=np.zeros((1, 1, 64, 64), np.float16), K=q, V=q, O=q, L=lse, scale=1.0)


def test_cli_run_and_bench_on_the_gpu(capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(EXAMPLES / "attention.tdsl"), "--device", "cuda", "--shape",
                 "Z=1,H=2,N=200,D=64"]) == 0
    out = capsys.readouterr().out
    assert "on the GPU" in out and "ok" in out
    assert main(["bench", str(EXAMPLES / "attention.tdsl"), "--shape", "Z=1,H=4,N=1024,D=64", "--reps", "20",
                 "--flops", "4*Z*H*N*N*D"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and "TFLOP/s" in out


def test_cli_tune_caches_the_best_point(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path))
    assert main(["tune", str(EXAMPLES / "gemm.tdsl"), "--shape", "M=512,N=512,K=512",
                 "--space", "BM=64,128", "--space", "BN=64,128"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ms") >= 5 and "best {" in out
    cached = (tmp_path / "tune.json").read_text()
    assert '"BM"' in cached and '"BN"' in cached


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# ---------------------------------------------------------------- pipelined attention

def _run(target: str, d: int, causal: int, stages: int, q: np.ndarray, k: np.ndarray, v: np.ndarray
         ) -> tuple[np.ndarray, str]:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": d, "CAUSAL": causal, "STAGES": stages})
    art = prog.compile(target=target)
    o = cupy.full(q.shape, np.nan, dtype=cupy.float16)
    lse = cupy.full(q.shape[:3], np.nan, dtype=cupy.float32)
    art.launcher()(Q=cupy.asarray(q), K=cupy.asarray(k), V=cupy.asarray(v), O=o, L=lse, scale=d ** -0.5)
    return o.get(), art.asm


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
@pytest.mark.parametrize("d, causal, n, stages", [(64, 0, 333, 2), (64, 1, 200, 2), (128, 0, 129, 2),
                                                  (128, 1, 77, 2), (64, 0, 1000, 3), (64, 1, 45, 3)])
def test_pipelined_attention_on_the_gpu(target: str, d: int, causal: int, n: int, stages: int) -> None:
    rng = np.random.default_rng(n + d)
    q, k, v = (rng.standard_normal((2, 3, n, d)).astype(np.float16) for _ in range(3))
    out, asm = _run(target, d, causal, stages, q, k, v)
    assert "cp.async.cg.shared.global" in asm
    assert re.search(rf"cp\.async\.wait_group\s+{stages - 2};", asm)
    ref = reference.attention(q, k, v, d ** -0.5, CAUSAL=causal)["O"]
    assert _rel(out, ref) < 2e-3
    plain, plain_asm = _run(target, d, causal, 1, q, k, v)
    assert "cp.async" not in plain_asm
    assert _rel(out, plain.astype(np.float64)) < 1e-3
