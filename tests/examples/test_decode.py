"""The decode examples — flash-decoding (``flash_decoding.tdsl``: a split kernel writing partial
outputs and log-sum-exps, a combine kernel merging them) and paged decode (``paged_decode.tdsl``:
a KV cache in pages through a block table, grouped-query, per-sequence lengths) — against their
float64 references in ``examples/reference.py``: the block level at hypothesis-drawn shapes
(lengths not multiples of the pages or tiles, more query rows than a block's tile, empty splits,
empty sequences), the thread level against the block level, native code for every target."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_bf16

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOLERANCE = {"f16": 2e-3, "bf16": 1.6e-2}
THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
NATIVE_TARGETS = ["gfx942", "gfx1100", "gfx90a", "sm_80", "sm_90", "sm_90a"]


@functools.cache
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tdsl_decode_reference", EXAMPLES / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def flash_decoding(params: tuple[tuple[str, Any], ...]) -> tiledsl.Module:
    return tiledsl.load(EXAMPLES / "flash_decoding.tdsl", params=dict(params))


@functools.cache
def paged_decode(params: tuple[tuple[str, Any], ...]) -> tiledsl.Program:
    return tiledsl.load(EXAMPLES / "paged_decode.tdsl", params=dict(params))


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = out.astype(np.float64), np.asarray(ref, dtype=np.float64)
    assert out64.shape == ref64.shape
    assert np.all(np.isfinite(out64)), "non-finite values (unwritten NaN?) in the output"
    denom = np.linalg.norm(ref64)
    return float(np.linalg.norm(out64 - ref64) / (denom if denom > 0 else 1.0))


def _as(x: np.ndarray, t: str) -> np.ndarray:
    """f16 values as float16; bf16 values as bf16-rounded float32 (the kernel holds them exactly)."""
    return round_bf16(x.astype(np.float32)) if t == "bf16" else x.astype(np.float16)


# --- flash-decoding ------------------------------------------------------------------------------

def decoding_inputs(z: int, hk: int, g: int, n: int, d: int, splits: int, seed: int,
                    t: str = "f16") -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    q = _as(rng.standard_normal((z, hk, g, d)), t)
    k, v = (_as(rng.standard_normal((z, hk, n, d)), t) for _ in range(2))
    return {"Q": q, "K": k, "V": v, "scale": float(d) ** -0.5,
            "Op": np.full((z, hk, splits, g, d), np.nan, np.float32),
            "Lse": np.full((z, hk, splits, g), np.nan, np.float32)}


def run_decoding(mod: tiledsl.Module, args: dict[str, Any], level: str = "block",
                 target: str | None = None) -> np.ndarray:
    """Both kernels, one after the other (as on the GPU); fills Op and Lse and returns O."""
    split = {k: args[k] for k in ("Q", "K", "V", "Op", "Lse", "scale")}
    report = mod.kernels["flash_decoding_split"].interpret(level=level, target=target, **split)
    assert report.ok, str(report)
    o = np.full(args["Q"].shape, np.nan, args["Q"].dtype)
    report = mod.kernels["flash_decoding_combine"].interpret(level=level, target=target, Op=args["Op"],
                                                             Lse=args["Lse"], O=o)
    assert report.ok, str(report)
    return o


def check_partials(args: dict[str, Any], bn: int) -> None:
    """Op and Lse of each split against the reference; an empty split has Op = 0, Lse = -inf."""
    want = reference().flash_decoding_partials(args["Q"], args["K"], args["V"], args["Op"].shape[2], args["scale"],
                                              BN=bn)
    finite = np.isfinite(want["Lse"])
    np.testing.assert_array_equal(np.isfinite(args["Lse"]), finite)
    assert np.all(args["Lse"][~finite] == -np.inf)
    np.testing.assert_allclose(args["Lse"][finite], want["Lse"][finite], rtol=1e-5, atol=1e-3)
    assert rel_error(args["Op"], want["Op"]) <= TOLERANCE["f16"]


@settings(max_examples=30, deadline=None)
@given(z=st.integers(1, 2), hk=st.integers(1, 2), g=st.integers(1, 20), n=st.integers(1, 400),
       d=st.sampled_from([16, 32, 64]), splits=st.integers(1, 7), bn=st.sampled_from([16, 32, 64]),
       bs=st.sampled_from([2, 4, 32]), seed=st.integers(0, 2**16))
@example(z=1, hk=1, g=1, n=1, d=16, splits=1, bn=16, bs=32, seed=0)
@example(z=1, hk=2, g=4, n=333, d=64, splits=5, bn=32, bs=32, seed=1)   # splits of 96 keys, the last 45
@example(z=2, hk=1, g=17, n=50, d=32, splits=7, bn=16, bs=2, seed=2)    # G past one tile; 3 empty splits
def test_flash_decoding(z: int, hk: int, g: int, n: int, d: int, splits: int, bn: int, bs: int,
                        seed: int) -> None:
    """``bs``: splits a combine step (fewer than ``splits``: several steps, rescaled as they go)."""
    args = decoding_inputs(z, hk, g, n, d, splits, seed)
    o = run_decoding(flash_decoding((("BN", bn), ("BS", bs))), args)
    check_partials(args, bn)
    ref = reference().flash_decoding(args["Q"], args["K"], args["V"], args["scale"])
    assert rel_error(o, ref) <= TOLERANCE["f16"]


def test_flash_decoding_bf16_with_gp_32() -> None:
    args = decoding_inputs(1, 2, 23, 150, 32, 3, seed=3, t="bf16")
    o = run_decoding(flash_decoding((("BN", 32), ("GP", 32), ("T", "bf16"))), args)
    np.testing.assert_array_equal(o, round_bf16(o))           # O was stored as bf16
    ref = reference().flash_decoding(args["Q"], args["K"], args["V"], args["scale"])
    assert rel_error(o, ref) <= TOLERANCE["bf16"]


def test_flash_decoding_detects_a_wrong_answer() -> None:
    """A combine that drops a split's weight is far off: the tolerances can fail."""
    args = decoding_inputs(1, 1, 3, 200, 32, 4, seed=4)
    o = run_decoding(flash_decoding((("BN", 32),)), args)
    ref = reference().flash_decoding(args["Q"], args["K"], args["V"], args["scale"])
    assert rel_error(o, ref) <= TOLERANCE["f16"]
    lse = args["Lse"].copy()
    lse[:, :, 1] = -np.inf
    wrong = reference().flash_decoding_combine(args["Op"], lse)
    assert rel_error(wrong, ref) > 10 * TOLERANCE["f16"]


@pytest.mark.parametrize("target", THREAD_TARGETS)
def test_flash_decoding_thread_level(target: str) -> None:
    """Both kernels at thread level agree with the block level: 19 rows (two row tiles), 170 keys
    in 5 splits of 64 (the third ends at 170, the last two are empty), combined 2 splits a step."""
    mod = flash_decoding((("BN", 32), ("BS", 2)))
    block = decoding_inputs(1, 2, 19, 170, 64, 5, seed=5)
    thread = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in block.items()}
    o_block = run_decoding(mod, block)
    o_thread = run_decoding(mod, thread, level="thread", target=target)
    check_partials(thread, 32)
    assert rel_error(o_thread, o_block) <= 1e-3
    assert rel_error(o_thread, reference().flash_decoding(block["Q"], block["K"], block["V"], block["scale"])) \
        <= TOLERANCE["f16"]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
@pytest.mark.parametrize("kernel", ["flash_decoding_split", "flash_decoding_combine"])
def test_flash_decoding_compiles(target: str, kernel: str) -> None:
    art = flash_decoding((("D", 128),)).kernels[kernel].compile(target=target)
    assert art.binary and art.name == kernel


# --- paged decode --------------------------------------------------------------------------------

def paged_inputs(lens: list[int], hk: int, g: int, d: int, page: int, seed: int, spare_pages: int = 2,
                 t: str = "f16") -> dict[str, Any]:
    """A cache whose pages are handed to the sequences in a random order; the pages no sequence
    owns are NaN, and the block table's entries past each sequence's pages point at one of them,
    so that reading a page past a sequence's end poisons its output."""
    rng = np.random.default_rng(seed)
    need = [-(-n // page) for n in lens]
    maxp = max(need + [1]) + 1
    pages = sum(need) + spare_pages
    order = rng.permutation(pages).astype(np.int32)
    nan_page = order[-1]
    bt = np.full((len(lens), maxp), nan_page, np.int32)
    used = 0
    for b, k in enumerate(need):
        bt[b, :k] = order[used:used + k]
        used += k
    kc, vc = (_as(rng.standard_normal((pages, page, hk, d)), t) for _ in range(2))
    kc[order[used:]] = np.nan
    vc[order[used:]] = np.nan
    q = _as(rng.standard_normal((len(lens), hk, g, d)), t)
    return {"Q": q, "Kc": kc, "Vc": vc, "BT": bt, "Lens": np.array(lens, np.int32), "scale": float(d) ** -0.5,
            "O": np.full(q.shape, np.nan, q.dtype)}


def run_paged(prog: tiledsl.Program, args: dict[str, Any], level: str = "block",
              target: str | None = None) -> np.ndarray:
    args = {**args, "O": np.full(args["Q"].shape, np.nan, args["Q"].dtype)}
    report = prog.interpret(level=level, target=target, **args)
    assert report.ok, str(report)
    return args["O"]


def paged_reference(args: dict[str, Any]) -> np.ndarray:
    return reference().paged_decode(args["Q"], args["Kc"], args["Vc"], args["BT"], args["Lens"], args["scale"])


@settings(max_examples=30, deadline=None)
@given(lens=st.lists(st.integers(0, 150), min_size=1, max_size=4), hk=st.integers(1, 2), g=st.integers(1, 20),
       d=st.sampled_from([16, 32, 64]), page=st.sampled_from([8, 16, 32]), bn=st.sampled_from([16, 32, 64]),
       seed=st.integers(0, 2**16))
@example(lens=[0], hk=1, g=1, d=16, page=16, bn=16, seed=0)
@example(lens=[0, 17, 64, 33], hk=2, g=5, d=64, page=16, bn=32, seed=1)
@example(lens=[150, 1], hk=1, g=17, d=32, page=8, bn=64, seed=2)       # G past one tile; 8 pages a step
@example(lens=[45, 100], hk=2, g=4, d=32, page=32, bn=16, seed=3)      # two steps a page
def test_paged_decode(lens: list[int], hk: int, g: int, d: int, page: int, bn: int, seed: int) -> None:
    args = paged_inputs(lens, hk, g, d, page, seed)
    o = run_paged(paged_decode((("BN", bn), ("PAGE", page))), args)
    assert rel_error(o, paged_reference(args)) <= TOLERANCE["f16"]
    assert np.all(o[np.array(lens) == 0] == 0)


def test_paged_decode_maxp_equal_to_bn() -> None:
    """A block table exactly BN columns wide: the gathered index tile is as long as its dim, which
    the block interpreter once took for the whole dim in order (its row fast path)."""
    args = paged_inputs([113], 1, 1, 16, 8, seed=0)           # 15 pages, MAXP = 16 = BN
    assert args["BT"].shape[1] == 16
    o = run_paged(paged_decode((("BN", 16), ("PAGE", 8))), args)
    assert rel_error(o, paged_reference(args)) <= TOLERANCE["f16"]


def test_paged_decode_bf16() -> None:
    args = paged_inputs([70, 3, 0], 2, 6, 32, 16, seed=4, t="bf16")
    o = run_paged(paged_decode((("BN", 32), ("T", "bf16"))), args)
    np.testing.assert_array_equal(o, round_bf16(o))
    assert rel_error(o, paged_reference(args)) <= TOLERANCE["bf16"]


def test_paged_decode_reads_no_page_past_a_sequence() -> None:
    """The NaN pages are reachable: a block table that hands one to a sequence's last page
    poisons its output (so the test above would see a read past a sequence's end)."""
    args = paged_inputs([40, 20], 1, 3, 16, 16, seed=5)
    args["BT"][1, 1] = args["BT"][1, 2]
    o = run_paged(paged_decode((("BN", 16),)), args)
    assert np.isnan(o[1].astype(np.float32)).all() and np.isfinite(o[0].astype(np.float32)).all()


@pytest.mark.parametrize("target", THREAD_TARGETS)
def test_paged_decode_thread_level(target: str) -> None:
    """Thread level against block level: lengths 0, 17, 64 and 93 over pages of 16, steps of 32
    keys (two pages each), 21 query rows (two row tiles)."""
    prog = paged_decode((("BN", 32),))
    args = paged_inputs([0, 17, 64, 93], 2, 21, 64, 16, seed=6)
    block = run_paged(prog, args)
    thread = run_paged(prog, args, level="thread", target=target)
    assert rel_error(thread, block) <= 1e-3
    assert rel_error(thread, paged_reference(args)) <= TOLERANCE["f16"]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
def test_paged_decode_compiles(target: str) -> None:
    art = paged_decode((("D", 128),)).compile(target=target)
    assert art.binary and art.name == "paged_decode"
