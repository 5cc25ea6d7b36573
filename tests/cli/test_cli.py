"""``tdslc``: help texts, check/compile/run on the examples, and every user mistake ending
in a message and an exit code (1, or 2 for a malformed command line), never a traceback."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiledsl.cli import build_parser, main
from tiledsl.ir.parser import parse_op
from tiledsl.stages import DEFAULT_TILE_PASSES as DEFAULT_PIPELINE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ATTENTION = str(EXAMPLES / "attention.tdsl")
GEMM = str(EXAMPLES / "gemm.tdsl")
BROKEN = """\
kernel broken(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  Y[b*16 : +16] <- X[b*16 : +16] * nope
}
"""


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(argv)`` with its exit code, stdout and stderr; argparse's exits count as codes."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


# ---------------------------------------------------------------- help

def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    assert "usage: tdslc" in out
    for name in subcommands():
        assert name in out
    assert {"check", "compile", "run"} <= set(subcommands())


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_subcommand_help_mentions_every_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main([command, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: tdslc {command}")
    flags = [s for a in subcommands()[command]._actions for s in a.option_strings]
    assert "-h" in flags and len(flags) > 2
    for flag in flags:
        mentioned = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", out)
        assert mentioned, f"{command} --help does not mention {flag}"
    assert "FILE" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([], capsys)
    assert code == 2 and "usage: tdslc" in err


# ---------------------------------------------------------------- check

def test_check_ok_with_symbolic_const(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["check", ATTENTION], capsys)
    assert code == 0 and err == ""
    assert out.strip() == f"{ATTENTION}: ok: kernel 'attention' (checked with symbolic D)"


def test_check_with_defines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["check", ATTENTION, "-D", "D=64", "-D", "BM=32", "-D", "CAUSAL=1"], capsys)
    assert code == 0 and out.strip() == f"{ATTENTION}: ok: kernel 'attention'"


def test_check_unknown_define_is_a_located_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", GEMM, "-D", "BX=3"], capsys)
    assert code == 1
    assert re.match(rf"{re.escape(GEMM)}:\d+:\d+: error: unknown parameter 'BX'", err)
    assert "the kernel declares: BK, BM, BN" in err


@pytest.mark.parametrize("define", ["BM", "BM=", "BM=abc", "=3", "1X=3"])
def test_bad_define_syntax_exits_2(define: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", GEMM, "-D", define], capsys)
    assert code == 2
    assert "-D" in err and "error:" in err


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", str(tmp_path / "nope.tdsl")], capsys)
    assert code == 1 and "tdslc: error: cannot read" in err and "no such file" in err


def test_installed_console_script_exit_codes(tmp_path: Path) -> None:
    exe = shutil.which("tdslc")
    cmd = [exe] if exe else [sys.executable, "-m", "tiledsl.cli"]

    def tdslc(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=60, check=False)

    ok = tdslc("check", GEMM)
    assert ok.returncode == 0 and "ok: kernel 'gemm'" in ok.stdout
    bad = tdslc("check", GEMM, "-D", "BM")
    assert bad.returncode == 2 and "expected NAME=VALUE" in bad.stderr
    src = tmp_path / "broken.tdsl"
    src.write_text(BROKEN)
    err = tdslc("check", str(src))
    assert err.returncode == 1 and f"{src}:5:36: error: 'nope' is not defined" in err.stderr
    assert "Traceback" not in err.stderr


# ---------------------------------------------------------------- compile

def test_compile_emit_ast(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["compile", GEMM, "--emit", "ast"], capsys)
    assert code == 0
    assert out.startswith("Kernel name='gemm'")
    assert "Call func='dot'" in out
    assert ": f32[64,64]" in out        # sema's types are printed
    assert re.search(r"@\d+:\d+", out)


def test_compile_emit_ir_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "gemm.ir"
    code, out, _ = run_main(["compile", GEMM, "--emit", "ir", "-o", str(target), "-D", "BM=32"], capsys)
    assert code == 0 and out == ""
    text = target.read_text()
    assert text.startswith("kernel(") and "BM = 32" in text
    assert parse_op(text).attrs["sym_name"] == "gemm"
    assert [p.name for p in tmp_path.iterdir()] == ["gemm.ir"]     # no temp file left behind


def test_compile_error_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "broken.tdsl"
    src.write_text(BROKEN)
    fresh, existing = tmp_path / "fresh.ir", tmp_path / "existing.ir"
    existing.write_text("old contents\n")
    for target in (fresh, existing):
        code, out, err = run_main(["compile", str(src), "--emit", "ir", "-o", str(target)], capsys)
        assert code == 1 and out == ""
        assert err.startswith(f"{src}:5:36: error: 'nope' is not defined")
    assert not fresh.exists()
    assert existing.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tdsl", "existing.ir"]


def test_compile_into_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "-o", str(tmp_path / "no" / "such" / "x.ir")], capsys)
    assert code == 1 and "does not exist" in err


def test_print_after_all_has_one_section_per_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["compile", ATTENTION, "--print-after-all", "-D", "CAUSAL=1"], capsys)
    assert code == 0
    sections = re.findall(r"^// ----- IR after ([\w-]+) \((\w[\w-]*)\) ----- //$", err, re.MULTILINE)
    assert sections == [("sema", "tile-ir")] + [(p, "ir") for p in DEFAULT_PIPELINE]
    # each section is a whole kernel; the last one is what went to stdout
    chunks = re.split(r"^// ----- IR after [\w-]+ \(\w[\w-]*\) ----- //\n", err, flags=re.MULTILINE)[1:]
    assert all(c.startswith("kernel(") for c in chunks)
    assert chunks[-1] == out


def test_print_after_all_with_chosen_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "--print-after-all", "--passes", "dce,fold"], capsys)
    assert code == 0
    assert re.findall(r"IR after (\w+)", err) == ["sema", "dce", "fold"]
    code, _, err = run_main(["compile", GEMM, "--print-after-all", "--passes", ""], capsys)
    assert code == 0 and re.findall(r"IR after (\w+)", err) == ["sema"]


def test_print_after_all_shows_every_stage_of_the_thread_level(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["compile", GEMM, "--print-after-all", "--emit", "thread-ir", "--target", "sm_90"],
                              capsys)
    assert code == 0 and out.startswith("kernel(")
    sections = re.findall(r"^// ----- IR after ([\w-]+) \(([\w-]+)(?:, ([\w-]+))?\) ----- //$", err, re.MULTILINE)
    stages = [s for _, s, _ in sections]
    assert stages == sorted(stages, key=["tile-ir", "ir", "layout-ir", "thread-ir"].index)
    passes = [(p, s) for p, s, _ in sections]
    for want in [("layouts", "layout-ir"), ("lds-alloc", "layout-ir"), ("distribute", "thread-ir"),
                 ("defer-sums", "thread-ir")]:
        assert want in passes
    assert {t for _, s, t in sections if s in ("layout-ir", "thread-ir")} == {"sm_90"}
    # The last section is the thread IR the command printed.
    assert err.rstrip().endswith(out.rstrip())


def test_compile_unknown_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "--passes", "fold,nosuch"], capsys)
    assert code == 1 and "unknown pass 'nosuch'" in err


def test_compile_bad_emit_choice_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "--emit", "nosuch"], capsys)
    assert code == 2 and "invalid choice" in err


# ---------------------------------------------------------------- run

def rel_errors(out: str) -> dict[str, float]:
    pattern = r"^(\w+): \|out - ref\| / \|ref\| = (\S+)"
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, out, re.MULTILINE)}


def test_run_attention_against_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["run", ATTENTION, "--shape", "Z=1,H=2,N=200,D=64"], capsys)
    assert code == 0, out + err
    assert "ok: 4 blocks interpreted at block level" in out
    errors = rel_errors(out)
    assert set(errors) == {"O"} and 0 < errors["O"] <= 2e-3
    assert "MISMATCH" not in out


def test_run_causal_attention_with_defines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["run", ATTENTION, "--shape", "Z=1,H=1,N=77,D=32", "-D", "CAUSAL=1",
                             "-D", "BM=32", "-D", "BN=16", "--seed", "3"], capsys)
    assert code == 0 and 0 < rel_errors(out)["O"] <= 2e-3


def test_run_gemm_with_explicit_ref(capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{EXAMPLES / 'reference.py'}:gemm"
    code, out, _ = run_main(["run", GEMM, "--shape", "M=70,N=33,K=100", "--ref", ref], capsys)
    assert code == 0 and rel_errors(out)["C"] <= 1e-4


def test_run_ref_to_a_missing_function(capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{EXAMPLES / 'reference.py'}:no_such_function"
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8", "--ref", ref], capsys)
    assert code == 1
    path = EXAMPLES / "reference.py"
    assert err.strip() == f"tdslc: error: --ref: '{path}' has no function 'no_such_function'"


@pytest.mark.parametrize(("ref", "message"), [
    ("reference.py", "--ref must be FILE.py:FUNCTION"),
    ("/no/such/file.py:gemm", "--ref: cannot read '/no/such/file.py'"),
])
def test_run_malformed_ref(ref: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8", "--ref", ref], capsys)
    assert code == 1 and message in err


def test_run_mismatch_with_a_wrong_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "wrong.py"
    ref.write_text("def gemm(A, B, **_):\n    return (A.astype(float) @ B.astype(float)) * 1.01\n")
    code, out, _ = run_main(["run", GEMM, "--shape", "M=20,N=20,K=20", "--ref", f"{ref}:gemm"], capsys)
    assert code == 1
    assert "MISMATCH" in out
    assert 0.005 < rel_errors(out)["C"] < 0.02


def test_run_reference_of_the_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "shape.py"
    ref.write_text("import numpy as np\n\ndef gemm(A, B, **_):\n    return np.zeros((3, 3))\n")
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8", "--ref", f"{ref}:gemm"], capsys)
    assert code == 1 and "the reference returned shape (3, 3)" in err


def test_run_reports_a_failed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "hole.tdsl"
    src.write_text("kernel hole(X: f32[M], out Y: f32[M])\n  grid (cdiv(M, 16)) as (b)\n  block 1 waves\n"
                   "{\n  Y[b*16 : +8] <- X[b*16 : +8]\n}\n")
    ref = tmp_path / "ref.py"
    ref.write_text("def hole(X, **_):\n    return X\n")
    code, out, _ = run_main(["run", str(src), "--shape", "M=32", "--ref", f"{ref}:hole"], capsys)
    assert code == 1
    assert f"{src}:5:3: error: output-hole: 16 of 32 elements of 'Y' never written" in out


def test_run_time_mistake_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "step.tdsl"
    src.write_text("kernel step(X: f32[M], out Y: f32[M], st: i32)\n  grid (cdiv(M, 16)) as (b)\n"
                   "  block 1 waves\n{\n  acc = fill(0.0, f32[16])\n"
                   "  for n in 0 .. M step st { acc = acc + X[n : +16] }\n  Y[b*16 : +16] <- acc\n}\n")
    code, _, err = run_main(["run", str(src), "--shape", "M=32", "--arg", "st=0"], capsys)
    assert code == 1 and err.startswith(f"{src}:6:3: error: loop step 0 is not positive")


def test_run_without_a_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "copy.tdsl"
    src.write_text("kernel copy(X: f32[M], out Y: f32[M])\n  grid (cdiv(M, 16)) as (b)\n  block 1 waves\n"
                   "{\n  Y[b*16 : +16] <- X[b*16 : +16]\n}\n")
    code, out, _ = run_main(["run", str(src), "--shape", "M=40"], capsys)
    assert code == 0 and "no reference function" in out


def test_run_shape_missing_a_dim(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8"], capsys)
    assert code == 1 and "--shape gives no size for dim 'K' of 'A'" in err


@pytest.mark.parametrize("shape", ["M=8,N", "M=-1,N=8,K=8", "M=2.5,N=8,K=8"])
def test_run_bad_shape_syntax_exits_2(shape: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["run", GEMM, "--shape", shape], capsys)
    assert code == 2 and "--shape" in err


def test_run_scalar_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["run", ATTENTION, "--shape", "Z=1,H=1,N=20,D=16", "--arg", "scale=0.25"], capsys)
    assert code == 0 and rel_errors(out)["O"] <= 2e-3
