"""Several kernels in one file: parsed in order, each its own Program, chosen by name; ``params``
apply to every kernel that declares them; the file's module refuses to run as one program.
Each kernel runs at block and thread level against its NumPy reference, and the two kernels of
``programs/split_rowsum.tdsl`` chained give the row sums."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.frontend.parser import parse, parse_kernels

PROGRAMS = Path(__file__).resolve().parent / "programs"
SPLIT = PROGRAMS / "split_rowsum.tdsl"
GEMM = Path(__file__).resolve().parents[2] / "examples" / "gemm.tdsl"
THREAD_TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]


def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("split_rowsum_reference", PROGRAMS / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out64.shape == ref64.shape and np.all(np.isfinite(out64))
    return float(np.linalg.norm(out64 - ref64) / max(np.linalg.norm(ref64), 1e-30))


# ---------------------------------------------------------------- parsing

def test_parse_kernels_keeps_the_order_of_the_file() -> None:
    kernels = parse_kernels(SPLIT.read_text(), str(SPLIT))
    assert [k.name for k in kernels] == ["partial", "combine"]
    assert (kernels[0].loc.line, kernels[1].loc.line) == (3, 12)


def test_parse_of_one_kernel_refuses_a_file_of_two() -> None:
    assert parse(GEMM.read_text()).name == "gemm"
    message = "expected one kernel, the source has 2: partial, combine"
    with pytest.raises(tiledsl.TdslError, match=message) as info:
        parse(SPLIT.read_text(), str(SPLIT))
    assert info.value.loc is not None and info.value.loc.line == 12


# ---------------------------------------------------------------- load, Module, .kernels

def test_a_file_of_several_kernels_loads_as_a_module() -> None:
    mod = tiledsl.load(SPLIT)
    assert isinstance(mod, tiledsl.Module) and not isinstance(mod, tiledsl.Program)
    assert mod.names == ["partial", "combine"]
    partial, combine = mod.kernels["partial"], mod.kernels["combine"]
    assert isinstance(partial, tiledsl.Program) and (partial.name, combine.name) == ("partial", "combine")
    assert partial.tile_ir().attrs["sym_name"] == "partial"
    assert combine.tile_ir().attrs["sym_name"] == "combine"
    # Every kernel's program knows its file's kernels.
    assert partial.kernels is mod.kernels and combine.kernels["partial"] is partial


@pytest.mark.parametrize("call", [
    lambda m: m.interpret(X=np.zeros((4, 4), np.float32)),
    lambda m: m.compile(target="sm_90"),
    lambda m: m.launcher(),
    lambda m: m.specialize(BM=32),
    lambda m: m.tile_ir(),
    lambda m: m.lowered(),
], ids=["interpret", "compile", "launcher", "specialize", "tile_ir", "lowered"])
def test_a_module_used_as_one_program_names_its_kernels(call) -> None:
    with pytest.raises(tiledsl.ArgumentError) as info:
        call(tiledsl.load(SPLIT))
    assert str(info.value) == (f"'{SPLIT}' has 2 kernels (partial, combine): pick one with "
                               ".kernels['partial'] or tiledsl.load(path, kernel='partial')")


def test_load_with_kernel_gives_that_program() -> None:
    prog = tiledsl.load(SPLIT, kernel="combine")
    assert isinstance(prog, tiledsl.Program) and prog.name == "combine"
    assert list(prog.kernels) == ["partial", "combine"]


def test_an_unknown_kernel_name_lists_the_kernels() -> None:
    with pytest.raises(tiledsl.ArgumentError, match=r"no kernel 'nope' \(its kernels: partial, combine\)"):
        tiledsl.load(SPLIT, kernel="nope")
    with pytest.raises(KeyError, match=r"no kernel 'nope' \(the kernels: partial, combine\)"):
        tiledsl.load(SPLIT).kernels["nope"]


def test_a_file_of_one_kernel_is_its_program_with_itself_as_kernels() -> None:
    prog = tiledsl.load(GEMM)
    assert isinstance(prog, tiledsl.Program)
    assert list(prog.kernels) == ["gemm"] and prog.kernels["gemm"] is prog
    assert tiledsl.load(GEMM, kernel="gemm").name == "gemm"
    with pytest.raises(tiledsl.ArgumentError, match=r"no kernel 'partial' \(its kernels: gemm\)"):
        tiledsl.load(GEMM, kernel="partial")


def test_params_apply_to_every_kernel_that_declares_them() -> None:
    mod = tiledsl.load(SPLIT, params={"BM": 32, "BN": 16, "T": "bf16"})
    partial, combine = mod.kernels["partial"], mod.kernels["combine"]
    assert partial.params == {"BM": 32, "BN": 16, "T": "bf16"}
    assert combine.params == {"BM": 32, "T": "bf16"}            # BN is partial's only
    assert combine.tile_ir().attrs["params"] == {"BM": 32}
    assert [p.dtype for p in partial.tensor_params] == ["bf16", "f32"]
    assert [p.dtype for p in combine.tensor_params] == ["f32", "bf16"]


def test_a_param_no_kernel_declares_is_a_located_error() -> None:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(SPLIT, params={"BK": 8})
    err = info.value
    assert err.message == "unknown parameter 'BK': no kernel of the file declares it"
    assert err.loc is not None and (err.loc.line, err.loc.col) == (3, 8)
    assert err.diagnostics[0].notes == ["the kernels declare: partial: BM, BN, T; combine: BM, T"]
    # As for one kernel (that error comes from sema, as it always did).
    with pytest.raises(tiledsl.TdslError, match="unknown parameter 'BX'"):
        tiledsl.load(GEMM, params={"BK": 8, "BX": 1})


def test_every_kernel_is_checked_unless_one_is_chosen() -> None:
    text = SPLIT.read_text().replace("acc = acc + P[s, b*BM : +BM]", "acc = acc + nope")
    with pytest.raises(tiledsl.TdslError, match="'nope' is not defined") as info:
        tiledsl.load(text)
    assert info.value.loc is not None and info.value.loc.line == 20
    assert tiledsl.load(text, kernel="partial").name == "partial"


# ---------------------------------------------------------------- each kernel at every level

def _split_inputs(m: int, n: int, bn: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((m, n)).astype(np.float32)
    return x, np.full((-(-n // bn), m), np.nan, np.float32)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 90), n=st.integers(1, 150), bm=st.sampled_from([16, 32]),
       bn=st.sampled_from([16, 32, 64]), seed=st.integers(0, 2**16))
@example(m=37, n=70, bm=16, bn=32, seed=0)
def test_each_kernel_at_block_level_and_the_two_chained(m: int, n: int, bm: int, bn: int, seed: int) -> None:
    mod = tiledsl.load(SPLIT, params={"BM": bm, "BN": bn})
    x, p = _split_inputs(m, n, bn, seed)
    assert mod.kernels["partial"].interpret(X=x, P=p).ok
    assert rel_error(p, reference().partial(x, BN=bn)) < 1e-6
    y = np.full(m, np.nan, np.float32)
    assert mod.kernels["combine"].interpret(P=p, Y=y).ok
    assert rel_error(y, reference().combine(p)) < 1e-6
    assert rel_error(y, x.astype(np.float64).sum(axis=1)) < 1e-5


@pytest.mark.parametrize("target", THREAD_TARGETS)
def test_each_kernel_at_thread_level(target: str) -> None:
    mod = tiledsl.load(SPLIT, params={"T": "bf16"})
    x, p = _split_inputs(45, 77, 32, 1)
    p_block, p_thread = p.copy(), p.copy()
    assert mod.kernels["partial"].interpret(X=x, P=p_block).ok
    assert mod.kernels["partial"].interpret(level="thread", target=target, X=x, P=p_thread).ok
    np.testing.assert_array_equal(p_thread, p_block)
    y_block, y_thread = np.zeros(45, np.float32), np.zeros(45, np.float32)
    assert mod.kernels["combine"].interpret(P=p_block, Y=y_block).ok
    assert mod.kernels["combine"].interpret(level="thread", target=target, P=p_block, Y=y_thread).ok
    np.testing.assert_array_equal(y_thread, y_block)
    # X was rounded to bf16 on the way in (T=bf16), Y on the way out: within bf16's tolerance.
    assert rel_error(y_thread, x.astype(np.float64).sum(axis=1)) < 1.6e-2
