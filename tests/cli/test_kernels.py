"""``tdslc`` on a file of several kernels (``--kernel``) and with dtype parameters (``-D T=bf16``):
check checks every kernel; the other commands need ``--kernel`` there and say so; the default
reference is the function named like the chosen kernel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiledsl
from tiledsl import cli
from tiledsl.cli import main

from .test_cli import run_main, subcommands

ROOT = Path(__file__).resolve().parents[2]
SPLIT = str(ROOT / "tests" / "frontend" / "programs" / "split_rowsum.tdsl")
ATTENTION = str(ROOT / "examples" / "attention.tdsl")
NEEDS_KERNEL = {
    "compile": [], "resources": [], "run": ["--shape", "M=8,N=8,S=1"], "bench": ["--shape", "M=8,N=8,S=1"],
    "tune": ["--shape", "M=8,N=8,S=1", "--space", "BM=16"], "tiles": ["--target", "gfx942", "--text"],
}


def test_every_command_but_check_has_a_kernel_flag() -> None:
    for name, parser in subcommands().items():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert "--kernel" in flags, name


def test_check_checks_every_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["check", SPLIT], capsys)
    assert code == 0 and err == ""
    assert out.splitlines() == [f"{SPLIT}: ok: kernel 'partial' (checked with T = f16, bf16, f32)",
                                f"{SPLIT}: ok: kernel 'combine' (checked with T = f16, bf16, f32)"]
    code, out, _ = run_main(["check", SPLIT, "--kernel", "combine", "-D", "T=f16"], capsys)
    assert code == 0 and out.splitlines() == [f"{SPLIT}: ok: kernel 'combine'"]


def test_check_tries_every_listed_dtype(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A generic kernel with one f16 left in place is right at its default and wrong at bf16."""
    half = tmp_path / "half.tdsl"
    half.write_text(Path(ATTENTION).read_text().replace("dot(T(p), vs)", "dot(f16(p), vs)"))
    code, out, err = run_main(["check", str(half)], capsys)
    assert code == 1 and out == ""
    want = r":\d+:33: error: dot\(\) of f16 and bf16: operand dtypes differ"
    assert re.match(re.escape(str(half)) + want, err)
    assert "note: with T=bf16 (check tries every dtype a 'dtype ... in (...)' lists)" in err
    assert tiledsl.load(half).name == "attention"          # at its default it is fine
    code, _, _ = run_main(["check", str(half), "-D", "T=f16"], capsys)
    assert code == 0


def test_check_reports_an_error_in_the_second_kernel(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tdsl"
    bad.write_text(Path(SPLIT).read_text().replace("acc = acc + P[s, b*BM : +BM]", "acc = acc + nope"))
    code, out, err = run_main(["check", str(bad)], capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"{bad}:20:17: error: 'nope' is not defined")
    code, out, _ = run_main(["check", str(bad), "--kernel", "partial"], capsys)
    assert code == 0 and out.strip() == f"{bad}: ok: kernel 'partial' (checked with T = f16, bf16, f32)"


@pytest.mark.parametrize("command", sorted(NEEDS_KERNEL))
def test_without_kernel_a_file_of_several_is_an_error_naming_them(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([command, SPLIT, *NEEDS_KERNEL[command]], capsys)
    assert code == 1 and out == ""
    assert err.strip() == (f"tdslc: error: '{SPLIT}' has 2 kernels (partial, combine): "
                           "pick one with --kernel NAME")


@pytest.mark.parametrize("command", sorted(NEEDS_KERNEL))
def test_an_unknown_kernel_is_an_error_naming_them(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([command, SPLIT, *NEEDS_KERNEL[command], "--kernel", "nope"], capsys)
    assert code == 1
    assert err.strip() == (f"tdslc: error: --kernel: '{SPLIT}' has no kernel 'nope' "
                           "(its kernels: partial, combine)")


def test_compile_each_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("partial", "combine"):
        code, out, _ = run_main(["compile", SPLIT, "--kernel", name, "--emit", "tile-ir"], capsys)
        assert code == 0 and f'sym_name = "{name}"' in out
        code, out, _ = run_main(["compile", SPLIT, "--kernel", name, "--target", "sm_90", "--emit", "ptx"],
                                capsys)
        assert code == 0 and f".visible .entry {name}(" in out
    code, out, _ = run_main(["resources", SPLIT, "--kernel", "combine", "--target", "gfx942"], capsys)
    assert code == 0 and out.startswith("combine on gfx942")


def test_run_each_kernel_against_the_reference_named_like_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The reference.py beside the file holds `partial` and `combine`: each run finds its own."""
    code, out, _ = run_main(["run", SPLIT, "--kernel", "partial", "--shape", "M=37,N=70,S=3", "-D", "BN=32"],
                            capsys)
    assert code == 0 and re.search(r"^P: .* ok$", out, re.MULTILINE)
    code, out, _ = run_main(["run", SPLIT, "--kernel", "combine", "--shape", "M=37,S=5", "-D", "T=bf16",
                             "--level", "thread", "--target", "sm_90"], capsys)
    assert code == 0 and re.search(r"^Y: .*\(tolerance 1\.6e-02\)  ok$", out, re.MULTILINE)


def test_a_wrong_reference_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The comparison is real: a reference that is off by one element fails the run."""
    ref = tmp_path / "ref.py"
    ref.write_text("import numpy as np\ndef combine(P, **_):\n    y = P.astype(np.float64).sum(axis=0)\n"
                   "    y[0] += 1\n    return y\n")
    code, out, _ = run_main(["run", SPLIT, "--kernel", "combine", "--shape", "M=37,S=5",
                             "--ref", f"{ref}:combine"], capsys)
    assert code == 1 and "MISMATCH" in out


def test_tiles_of_one_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["tiles", SPLIT, "--kernel", "combine", "--target", "gfx942",
                             "--shape", "M=100,S=3", "--value", "Y", "--text"], capsys)
    assert code == 0 and "Y" in out


# ---------------------------------------------------------------- -D T=...

def test_define_a_dtype_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["compile", ATTENTION, "-D", "D=64", "-D", "T=bf16", "--emit", "tile-ir"], capsys)
    assert code == 0 and "bf16[128,64]" in out and "f16[" not in out.replace("bf16[", "")
    code, out, _ = run_main(["run", ATTENTION, "-D", "T=bf16", "-D", "BM=64", "-D", "WAVES=2", "--shape",
                             "Z=1,H=1,N=50,D=16"], capsys)
    assert code == 0 and re.search(r"^O: .*\(tolerance 1\.6e-02\)  ok$", out, re.MULTILINE)


def test_a_dtype_outside_the_allowed_ones_is_a_located_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", ATTENTION, "-D", "T=f32"], capsys)
    assert code == 1
    want = r":\d+:9: error: T=f32 is not allowed: T is one of f16, bf16\n"
    assert re.match(re.escape(ATTENTION) + want, err)


@pytest.mark.parametrize(("define", "message"), [
    ("T=f61", ("value of T must be a number or a dtype (f16, bf16, f32, i32, i1, f8e4m3, f8e5m2, i8, u8, "
              "i16, u32, i64), got 'f61'")),
    ("1T=bf16", "'1T' is not a name"),
])
def test_a_define_that_is_neither_number_nor_dtype_exits_2(define: str, message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", ATTENTION, "-D", define], capsys)
    assert code == 2 and message in err


def test_a_number_for_a_dtype_and_a_dtype_for_a_number_are_located(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", ATTENTION, "-D", "T=16"], capsys)
    assert code == 1 and "error: dtype parameter 'T' must be a dtype, got 16" in err
    code, _, err = run_main(["check", ATTENTION, "-D", "BM=bf16"], capsys)
    assert code == 1 and "error: parameter 'BM' must be a number, got 'bf16'" in err


def test_the_tune_cache_keys_on_the_dtype_parameters(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """f16 and bf16 are tuned apart: the key has T, given or not (no GPU: the tuner is a stand-in)."""
    keys: list[dict[str, Any]] = []

    def fake_tune(prog: Any, space: dict, inputs: dict, key: dict, target: str) -> tuple:
        keys.append(key)
        return {"BM": 64}, 1.0, [({"BM": 64}, 1.0)]
    monkeypatch.setattr(tiledsl.tune, "tune", fake_tune)
    monkeypatch.setattr(cli, "_to_gpu", lambda inputs, prog: inputs)
    shape = ["--shape", "Z=1,H=1,N=64,D=16", "--space", "BM=64"]
    assert main(["tune", ATTENTION, *shape]) == 0
    assert main(["tune", ATTENTION, *shape, "-D", "T=bf16"]) == 0
    capsys.readouterr()
    assert keys[0]["T"] == "f16" and keys[1]["T"] == "bf16"
    assert {k: v for k, v in keys[0].items() if k != "T"} == {k: v for k, v in keys[1].items() if k != "T"}


def test_bf16_inputs_travel_to_the_gpu_as_their_bits() -> None:
    """CuPy has no bfloat16: a bf16 tensor's f32 values go as the top 16 bits, and come back."""
    prog = tiledsl.load(ATTENTION, params={"T": "bf16"})
    x = np.array([1.0, -2.5, 3.140625, 1e-3], np.float32)
    host = cli.device_layout(prog, {"Q": x, "scale": 0.5})
    assert host["Q"].dtype == np.uint16 and host["scale"] == 0.5
    np.testing.assert_array_equal(host["Q"], [0x3F80, 0xC020, 0x4049, 0x3A83])
    np.testing.assert_array_equal(cli.bf16_values(host["Q"]), cli.bf16_values(cli.bf16_bits(x)))
    assert np.abs(cli.bf16_values(host["Q"]) - x).max() <= 2.0**-8 * np.abs(x).max()
    assert cli.device_layout(tiledsl.load(ATTENTION), {"Q": x})["Q"] is x
