"""The interpreters behind the launcher's call: ``interpret`` takes PyTorch CPU tensors, DLPack and
``__array__`` arrays; ``TDSL_INTERPRET=1`` makes ``program.launcher()`` run the thread-level
interpreter on copies of the tensors and write the results back, and a failed check raises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiledsl
from tiledsl.runtime.interpret import InterpretCheckFailed, host_array

torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SCALE = """
kernel scale(X: T[M, N], out Y: T[M, N], alpha: f32)
  dtype T in (f16, bf16, f32) = f32
  const N
  param BM = 16
  grid (cdiv(M, BM)) as (b)
  block 1 waves
{
  Y[b*BM : +BM, :] <- T(f32(X[b*BM : +BM, :]) * alpha)
}
"""

HOLE = """
kernel half(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 32)) as (b)
  block 1 waves
{
  Y[b*32 : +16] <- X[b*32 : +16]
}
"""


def _softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("level", ["block", "thread"])
def test_interpret_takes_cpu_tensors_and_writes_out_tensors(level: str) -> None:
    prog = tiledsl.load(EXAMPLES / "softmax.tdsl")
    x = torch.randn(37, 100, dtype=torch.float32)
    names = [p.name for p in prog.tensor_params]
    y = torch.full((37, 100), float("nan"))
    report = prog.interpret(level=level, target="sm_90", **{names[0]: x, names[1]: y})
    assert report.ok, str(report)
    err = np.linalg.norm(y.numpy() - _softmax_ref(x.numpy().astype(np.float64))) / np.linalg.norm(y.numpy())
    assert err < 1e-5


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_a_dtype_parameter_binds_from_torch_dtypes(dtype: str) -> None:
    prog = tiledsl.load(SCALE)
    x = torch.randn(21, 24).to(getattr(torch, dtype))
    y = torch.zeros(21, 24, dtype=x.dtype)
    report = prog.interpret(level="thread", target="gfx942", X=x, Y=y, alpha=1 / 3)
    assert report.ok, str(report)
    # T is the tensors' dtype: the product is rounded once, to it (through f16, bf16 would differ)
    assert torch.equal(y, (x.float() * torch.tensor(1 / 3, dtype=torch.float32)).to(x.dtype))
    bound, _ = prog.bind_shapes({"X": host_array(x, "X", False)[0], "Y": np.zeros((21, 24))})
    assert bound.dtypes["T"] == {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}[dtype]


def test_strided_torch_and_numpy_views_at_thread_level() -> None:
    prog = tiledsl.load(SCALE)
    base = torch.randn(21, 2, 24)
    x = base[:, 1, :]                                   # every other row of the storage
    y_store = torch.zeros(24, 21)
    y = y_store.t()                                     # a transposed (column-major) out view
    report = prog.interpret(level="thread", target="sm_90", X=x, Y=y, alpha=-1.0)
    assert report.ok, str(report)
    assert torch.equal(y_store.t(), -x)
    xn = np.asarray(base.numpy())[:, 0, :]
    yn = np.zeros((24, 21), dtype=np.float32).T
    assert prog.interpret(level="thread", target="gfx1100", X=xn, Y=yn, alpha=3.0).ok
    assert np.array_equal(yn, xn * 3)


class OnlyArray:
    """An array-like with only ``__array__`` (read-only to tiledsl: it cannot be written back)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)


def test_dlpack_and_array_likes() -> None:
    prog = tiledsl.load(SCALE)
    x = np.arange(21 * 8, dtype=np.float32).reshape(21, 8)
    y = np.zeros_like(x)
    assert prog.interpret(X=OnlyArray(x), Y=y, alpha=0.5).ok
    assert np.array_equal(y, x * 0.5)
    out = torch.zeros(21, 8)

    class DlpackOnly:
        def __init__(self, t: object) -> None:
            self.t = t

        def __dlpack__(self, **kw: object) -> object:
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self) -> tuple:
            return self.t.__dlpack_device__()

    assert prog.interpret(X=DlpackOnly(torch.from_numpy(x)), Y=DlpackOnly(out), alpha=2.0).ok
    assert torch.equal(out, torch.from_numpy(x) * 2)
    with pytest.raises(tiledsl.ArgumentError, match="out array 'Y' must be written in place: pass a NumPy array"):
        prog.interpret(X=x, Y=OnlyArray(y), alpha=1.0)
    with pytest.raises(tiledsl.ArgumentError, match="'X' must be an array .* got str"):
        prog.interpret(X="x", Y=y, alpha=1.0)


def test_tdsl_interpret_runs_the_launcher_on_the_thread_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDSL_INTERPRET", "1")
    launcher = tiledsl.load(EXAMPLES / "attention.tdsl", params={"BM": 64, "BN": 32}).launcher(target="sm_90")
    assert launcher.interpret
    q, k, v = (torch.randn(1, 2, 50, 32, dtype=torch.bfloat16) for _ in range(3))
    o, lse = torch.zeros_like(q), torch.zeros(1, 2, 50)
    launcher(Q=q, K=k, V=v, O=o, L=lse, scale=32 ** -0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert float((o.float() - ref).norm() / ref.norm()) < 1e-2
    scores = (q.float() @ k.float().transpose(-1, -2)) * 32 ** -0.5
    assert float((lse - torch.logsumexp(scores, -1)).abs().max()) < 1e-3


def test_a_failed_check_raises_after_writing_back() -> None:
    launcher = tiledsl.load(HOLE).launcher(target="gfx942", interpret=True)
    x, y = torch.arange(64, dtype=torch.float32), torch.full((64,), -1.0)
    with pytest.raises(InterpretCheckFailed, match="output-hole|hole"):
        launcher(X=x, Y=y)
    assert torch.equal(y[:16], x[:16]) and float(y[16]) == -1.0
