"""FlashAttention-2 backward (examples/attention_bwd.tdsl): the three kernels run after the forward
(which gives O and L) against the float64 chain rule of examples/reference.py, at hypothesis-drawn
shapes whose lengths are not multiples of the tiles; the thread level against the block level on
every target; native code for every target."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_bf16

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BWD = EXAMPLES / "attention_bwd.tdsl"
TOLERANCE = {"f16": 4e-3, "bf16": 3e-2}
GRADS = ("dQ", "dK", "dV")


@functools.cache
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_examples_reference", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def kernel(name: str, params: tuple[tuple[str, int | str], ...]) -> tiledsl.Program:
    path = EXAMPLES / "attention.tdsl" if name == "attention" else BWD
    return tiledsl.load(path, params=dict(params), kernel=None if name == "attention" else name)


def inputs(z: int, h: int, n: int, d: int, dtype: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {name: rng.standard_normal((z, h, n, d)).astype(np.float32) for name in ("Q", "K", "V", "dO")}
    if dtype == "bf16":
        return {k: round_bf16(v) for k, v in arrays.items()}
    return {k: v.astype(np.float16) for k, v in arrays.items()}


def backward(args: dict[str, np.ndarray], scale: float, fwd: dict, pre: dict, dkdv: dict, dq: dict,
             level: str = "block", target: str | None = None) -> dict[str, np.ndarray]:
    """Forward (block level: it only provides O and L), then preprocess, dK/dV and dQ at ``level``:
    the arrays every kernel wrote, by name."""
    z, h, n, _ = args["Q"].shape
    like = args["Q"]
    out = {"O": np.full_like(like, np.nan), "L": np.full((z, h, n), np.nan, np.float32),
           "Delta": np.full((z, h, n), np.nan, np.float32), **{g: np.full_like(like, np.nan) for g in GRADS}}
    q, k, v, do = (args[x] for x in ("Q", "K", "V", "dO"))
    report = kernel("attention", tuple(sorted(fwd.items()))).interpret(Q=q, K=k, V=v, O=out["O"], L=out["L"],
                                                                       scale=scale)
    assert report.ok, str(report)
    where = {"level": level, **({"target": target} if target else {})}
    runs = [("attention_bwd_preprocess", pre, {"O": out["O"], "dO": do, "Delta": out["Delta"]}),
            ("attention_bwd_dkdv", dkdv, {"Q": q, "K": k, "V": v, "dO": do, "L": out["L"], "Delta": out["Delta"],
                                          "dK": out["dK"], "dV": out["dV"], "scale": scale}),
            ("attention_bwd_dq", dq, {"Q": q, "K": k, "V": v, "dO": do, "L": out["L"], "Delta": out["Delta"],
                                      "dQ": out["dQ"], "scale": scale})]
    for name, params, arrays in runs:
        report = kernel(name, tuple(sorted(params.items()))).interpret(**arrays, **where)
        assert report.ok, f"{name}: {report}"
    return out


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64 = out.astype(np.float64)
    assert np.all(np.isfinite(out64)), "a gradient holds non-finite values (an unwritten NaN?)"
    denom = np.linalg.norm(ref)                   # 0 for dQ, dK at N=1 (softmax of one key is constant)
    return float(np.linalg.norm(out64 - ref) / (denom if denom > 0 else 1.0))


@settings(max_examples=25, deadline=None)
@given(z=st.integers(1, 2), h=st.integers(1, 2), n=st.integers(1, 150), d=st.sampled_from([16, 32, 64]),
       bm=st.sampled_from([16, 32, 64]), bn=st.sampled_from([16, 32, 64]), causal=st.sampled_from([0, 1]),
       dtype=st.sampled_from(["f16", "bf16"]), seed=st.integers(0, 2**16))
@example(z=1, h=1, n=1, d=16, bm=16, bn=64, causal=1, dtype="f16", seed=0)
@example(z=1, h=2, n=150, d=64, bm=16, bn=64, causal=1, dtype="f16", seed=1)
@example(z=2, h=1, n=77, d=32, bm=64, bn=16, causal=1, dtype="bf16", seed=2)
@example(z=1, h=1, n=100, d=32, bm=32, bn=32, causal=0, dtype="f16", seed=3)
def test_gradients_match_the_chain_rule(z: int, h: int, n: int, d: int, bm: int, bn: int, causal: int,
                                        dtype: str, seed: int) -> None:
    args = inputs(z, h, n, d, dtype, seed)
    scale = d ** -0.5
    tiles = {"BM": bm, "BN": bn, "CAUSAL": causal}
    out = backward(args, scale, {"CAUSAL": causal}, {"BM": bm}, tiles, tiles)
    ref = reference().attention_bwd(**args, scale=scale, CAUSAL=causal)
    for g in GRADS:
        err = rel_error(out[g], ref[g])
        assert err <= TOLERANCE[dtype], f"{g} {tiles} {dtype}: relative error {err:.3e}"
    delta = (out["O"].astype(np.float64) * args["dO"]).sum(axis=-1)
    assert rel_error(out["Delta"], delta) < 1e-5


def test_the_comparison_can_fail() -> None:
    """A backward run with the wrong scale is caught by the tolerance (the test is not vacuous)."""
    args = inputs(1, 1, 70, 32, "f16", 5)
    out = backward(args, 0.2, {}, {}, {}, {})
    ref = reference().attention_bwd(**args, scale=0.25)
    assert max(rel_error(out[g], ref[g]) for g in GRADS) > 10 * TOLERANCE["f16"]


def test_causal_skips_the_masked_blocks() -> None:
    """With CAUSAL=1 the dK/dV kernel starts at the diagonal and the dQ kernel stops there: the
    loops' trip counts are what the diagonal allows. Queries poisoned with NaN that a skipped block
    would hold leave the later keys' gradients alone (a masked block that ran would give 0 * NaN)."""
    args = inputs(1, 1, 96, 16, "f16", 9)
    dense = backward(args, 0.25, {"CAUSAL": 1}, {}, {"CAUSAL": 1, "BN": 32, "BM": 32},
                     {"CAUSAL": 1, "BN": 32, "BM": 32})
    poisoned = {**args, "Q": args["Q"].copy(), "dO": args["dO"].copy()}
    poisoned["Q"][..., :64, :] = np.nan
    poisoned["dO"][..., :64, :] = np.nan
    dk, dv = np.full_like(args["Q"], np.nan), np.full_like(args["Q"], np.nan)
    prog = kernel("attention_bwd_dkdv", tuple(sorted({"CAUSAL": 1, "BN": 32, "BM": 32}.items())))
    report = prog.interpret(Q=poisoned["Q"], K=args["K"], V=args["V"], dO=poisoned["dO"], L=dense["L"],
                            Delta=dense["Delta"], dK=dk, dV=dv, scale=0.25)
    assert report.ok, str(report)
    np.testing.assert_array_equal(dk[..., 64:, :], dense["dK"][..., 64:, :])
    np.testing.assert_array_equal(dv[..., 64:, :], dense["dV"][..., 64:, :])
    assert np.isnan(dk[..., :64, :]).any()        # the poison does reach the blocks that see those queries


THREAD_CASES = [(77, 32, 0, "f16", 32, 32), (53, 16, 1, "f16", 16, 32), (70, 32, 1, "bf16", 32, 16)]


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"])
@pytest.mark.parametrize("n, d, causal, dtype, bm, bn", THREAD_CASES)
def test_thread_level_matches_block_level(target: str, n: int, d: int, causal: int, dtype: str, bm: int,
                                          bn: int) -> None:
    """Each kernel at thread level (races, bounds, coverage checked) against the block level."""
    args = inputs(1, 2, n, d, dtype, n)
    tiles = {"BM": bm, "BN": bn, "CAUSAL": causal}
    block = backward(args, d ** -0.5, {"CAUSAL": causal}, {"BM": bm}, tiles, tiles)
    thread = backward(args, d ** -0.5, {"CAUSAL": causal}, {"BM": bm}, tiles, tiles, level="thread",
                      target=target)
    np.testing.assert_allclose(thread["Delta"], block["Delta"], rtol=1e-5, atol=1e-5)
    for g in GRADS:
        assert rel_error(thread[g], block[g].astype(np.float64)) <= TOLERANCE[dtype] / 4, g


@pytest.mark.parametrize("target", ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"])
@pytest.mark.parametrize("name", ["attention_bwd_preprocess", "attention_bwd_dkdv", "attention_bwd_dq"])
def test_native_code(name: str, target: str) -> None:
    """Every kernel compiles to native code for every target (causal, the default tiles, D=64);
    on sm_90a the dots of the two main kernels are wgmma."""
    art = tiledsl.load(BWD, params={"D": 64, "CAUSAL": 1}, kernel=name).compile(target=target)
    assert art.binary and art.name == name
    if target == "sm_90a" and name != "attention_bwd_preprocess":
        assert "wgmma.mma_async" in art.asm and "mma.sync" not in art.asm


@pytest.mark.parametrize("name", ["attention_bwd_preprocess", "attention_bwd_dkdv", "attention_bwd_dq"])
def test_tdslc_run_each_kernel(name: str, capsys: pytest.CaptureFixture) -> None:
    """`tdslc run --kernel NAME` draws L and Delta at random and compares with the reference.py
    function of the kernel's name (the kernel's contract for any statistics), at thread level."""
    from tiledsl.cli import main
    assert main(["run", str(BWD), "--kernel", name, "--shape", "Z=1,H=2,N=77,D=32", "-D", "CAUSAL=1",
                 "--level", "thread", "--target", "sm_90"]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out and out.count(" ok") >= (1 if name.endswith("dq") or "pre" in name else 2)
