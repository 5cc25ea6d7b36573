"""Native artifacts: the launch metadata against the code object's own metadata, the
emits of tdslc compile, and tdslc resources against the artifact."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import tiledsl
from tiledsl.cli import main
from tiledsl.runtime.cuda import grid_value

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HAVE_LLD = any(shutil.which(n) for n in ("ld.lld", "ld.lld-19", "ld.lld-20", "ld.lld-18"))


@pytest.fixture(scope="module")
def attention_gfx942() -> tiledsl.compile.Artifact:
    return tiledsl.load(EXAMPLES / "attention.tdsl", params={"D": 64}).compile(target="gfx942")


@pytest.mark.parametrize("example, params", [("attention", {"D": 64}), ("gemm", {}), ("layernorm", {})])
@pytest.mark.parametrize("target", ["gfx90a", "gfx942", "gfx1100"])
def test_meta_args_match_the_code_object(example: str, params: dict, target: str) -> None:
    art = tiledsl.load(EXAMPLES / f"{example}.tdsl", params=params).compile(target=target)
    md = art.compiled.metadata()["amdhsa.kernels"][0]
    meta = art.meta
    assert md[".name"] == meta["kernel"]
    got = [(a["offset"], a["size"]) for a in meta["args"]]
    want = [(a[".offset"], a[".size"]) for a in md[".args"]]
    assert got == want
    kinds = ["global_buffer" if a["kind"] == "tensor" else "by_value" for a in meta["args"]]
    assert kinds == [a[".value_kind"] for a in md[".args"]]
    assert meta["kernarg_bytes"] == md[".kernarg_segment_size"]
    assert meta["block"][0] == md[".max_flat_workgroup_size"]
    assert meta["static_lds_bytes"] == md[".group_segment_fixed_size"]


def test_grid_expressions_evaluate_like_the_interpreter(attention_gfx942) -> None:
    grid = attention_gfx942.meta["grid"]
    for n in (1, 127, 128, 129, 1000):
        dims = {"Z": 2, "H": 3, "N": n}
        assert [grid_value(g, dims) for g in grid] == [(n + 127) // 128, 3, 2]


def test_resources_come_from_the_metadata_note(attention_gfx942) -> None:
    md = attention_gfx942.compiled.metadata()["amdhsa.kernels"][0]
    res = attention_gfx942.resources
    assert res.vgprs == md[".vgpr_count"]
    assert res.sgprs == md[".sgpr_count"]
    assert res.vgpr_spills == md[".vgpr_spill_count"]
    assert res.lds_bytes == md[".group_segment_fixed_size"]


@pytest.mark.skipif(not HAVE_LLD, reason="ld.lld (Debian lld-19) is not installed")
@pytest.mark.parametrize("emit, magic", [("hsaco", b"\x7fELF"), ("obj", b"\x7fELF"), ("llvm", b"; ModuleID"),
                                         ("asm", b"\t.amdgcn_target"), ("meta", b"{")])
def test_emits(tmp_path: Path, emit: str, magic: bytes) -> None:
    out = tmp_path / f"k.{emit}"
    assert main(["compile", str(EXAMPLES / "gemm.tdsl"), "--target", "gfx942", "--emit", emit, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:4096]
    if emit == "meta":
        assert json.loads(data)["kernel"] == "gemm"


def test_ptx_emit_and_wrong_pairings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "k.ptx"
    assert main(["compile", str(EXAMPLES / "gemm.tdsl"), "--target", "sm_90", "--emit", "ptx", "-o", str(out)]) == 0
    assert ".entry gemm(" in out.read_text()
    assert main(["compile", str(EXAMPLES / "gemm.tdsl"), "--target", "sm_90", "--emit", "hsaco",
                 "-o", str(tmp_path / "x")]) == 1
    assert main(["compile", str(EXAMPLES / "gemm.tdsl"), "--target", "gfx942", "--emit", "ptx",
                 "-o", str(tmp_path / "y")]) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is for" in err


def test_resources_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["resources", str(EXAMPLES / "gemm.tdsl"), "--target", "gfx942"]) == 0
    out = capsys.readouterr().out
    art = tiledsl.load(EXAMPLES / "gemm.tdsl").compile(target="gfx942")
    assert f"VGPRs      {art.resources.vgprs}" in out
    assert "spills" in out and "occupancy" in out


def test_no_matrix_cores_uses_no_mfma() -> None:
    prog = tiledsl.load(EXAMPLES / "gemm.tdsl")
    fma = prog.compile(target="gfx942", matrix=False)
    mfma = prog.compile(target="gfx942")
    assert "v_mfma" not in fma.asm
    assert re.search(r"\bv_(pk_)?fmac?_f32", fma.asm)     # v_fma_f32 / v_fmac_f32 / v_pk_fma_f32
    assert "v_mfma" in mfma.asm


SCALARS = """
kernel scalars(X: f32[N], a: i8, b: i1, c: i16, d: i64, e: f8e4m3, f: u32, g: bf16, h: u8, i: f8e5m2, j: f16,
               out Y: f32[N])
  grid (cdiv(N, 64)) as (k)
  block 1 waves
{
  t = f32(a) + f32(c) + f32(d) + f32(e) + f32(f) + f32(g) + f32(h) + f32(i) + f32(j)
  Y[k*64 : +64] <- X[k*64 : +64] + where(b, t, 0.0)
}
"""


@pytest.mark.parametrize("target", ["gfx90a", "gfx942", "gfx1100"])
def test_meta_args_of_every_scalar_dtype_match_the_code_object(target: str) -> None:
    """Every scalar dtype's size and alignment in the kernarg segment, as LLVM lays it out (an i1
    goes as an i32)."""
    art = tiledsl.load(SCALARS).compile(target=target)
    md = art.compiled.metadata()["amdhsa.kernels"][0]
    got = [(a["offset"], a["size"]) for a in art.meta["args"]]
    assert got == [(a[".offset"], a[".size"]) for a in md[".args"]]
    assert {a["name"]: a["size"] for a in art.meta["args"]} == {
        "X": 8, "Y": 8, "a": 1, "b": 4, "c": 2, "d": 8, "e": 1, "f": 4, "g": 2, "h": 1, "i": 1, "j": 2, "N": 4}
    assert art.meta["kernarg_bytes"] == md[".kernarg_segment_size"]
