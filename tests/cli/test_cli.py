"""``tdslc``: help texts, check/compile/run on the examples, and every user mistake ending
in a message and an exit code (1, or 2 for a malformed command line), never a traceback."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tiledsl
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
    assert out.strip() == f"{ATTENTION}: ok: kernel 'attention' (checked with symbolic D; T = f16, bf16)"


def test_check_with_defines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["check", ATTENTION, "-D", "D=64", "-D", "BM=32", "-D", "CAUSAL=1"], capsys)
    assert code == 0 and out.strip() == f"{ATTENTION}: ok: kernel 'attention' (checked with T = f16, bf16)"


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


@pytest.mark.parametrize("level", [[], ["--level", "thread", "--target", "sm_90", "--shuffle-blocks"]])
def test_run_starts_accumulators_at_their_identity(level: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["run", str(EXAMPLES / "reduce_atomic.tdsl"), "--shape", "M=300,N=70", *level], capsys)
    assert code == 0, out
    assert "S: updated with atomic_add, starts at 0" in out and "Mx: updated with atomic_max, starts at -inf" in out
    errors = rel_errors(out)
    assert set(errors) == {"S", "Mx", "Pos"} and errors["S"] <= 1e-5 and errors["Mx"] == errors["Pos"] == 0


def test_run_refuses_an_accumulator_of_two_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "two.tdsl"
    src.write_text("""kernel two(X: f32[N], out Y: f32[N])
  grid (cdiv(N, 64)) as (b)
  block 2 waves
{
  atomic_add(Y[b*64 : +64], X[b*64 : +64])
  atomic_max(Y[b*64 : +64], X[b*64 : +64])
}
""")
    code, _, err = run_main(["run", str(src), "--shape", "N=100"], capsys)
    assert code == 1
    assert "'Y' is updated with atomic_add and atomic_max: no one initial value suits both" in err


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


# ---------------------------------------------------------------- unreadable inputs

@pytest.mark.parametrize(("content", "why"), [
    (b"kernel k()\n  ab\xffcd\n", "byte 0xff at line 2, column 5 is not UTF-8"),
    (b"kernel \x00k()", "a NUL byte at line 1, column 8"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\xb7\x00", "a NUL byte at line 1, column 8"),
])
def test_a_binary_input_is_not_a_text_file(content: bytes, why: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bin.tdsl"
    src.write_bytes(content)
    out = tmp_path / "out.ir"
    for argv in (["check", str(src)], ["compile", str(src), "-o", str(out)], ["run", str(src)]):
        code, stdout, err = run_main(argv, capsys)
        assert code == 1 and stdout == ""
        assert err == f"tdslc: error: cannot read '{src}': not a text file ({why})\n"
    assert not out.exists()
    for path in (src, str(src)):
        with pytest.raises(tiledsl.TdslError, match=re.escape(f"not a text file ({why})")):
            tiledsl.load(path)


def test_a_directory_as_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["check", str(tmp_path)], capsys)
    assert code == 1 and err == f"tdslc: error: cannot read '{tmp_path}': it is a directory\n"


# ---------------------------------------------------------------- outputs that cannot be written

def test_output_to_a_directory_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    for argv in (["compile", GEMM, "-o", str(tmp_path / "sub")],
                 ["compile", GEMM, "--emit", "llvm", "--target", "sm_90", "-o", str(tmp_path)]):
        code, out, err = run_main(argv, capsys)
        assert code == 1 and out == ""
        assert "tdslc: error: cannot write" in err and "it is a directory" in err
    assert [p.name for p in tmp_path.iterdir()] == ["sub"] and not any((tmp_path / "sub").iterdir())


def test_output_to_a_read_only_file_leaves_it_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "old.ir"
    target.write_text("old contents\n")
    target.chmod(0o444)
    code, _, err = run_main(["compile", GEMM, "-o", str(target)], capsys)
    assert code == 1 and err == f"tdslc: error: cannot write '{target}': the file is read-only\n"
    assert target.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["old.ir"]


def test_output_where_no_file_can_be_made(capsys: pytest.CaptureFixture[str]) -> None:
    """/proc takes no new files, whoever runs the test (root included)."""
    code, out, err = run_main(["compile", GEMM, "-o", "/proc/gemm.ir"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("tdslc: error: cannot write '/proc/gemm.ir': ")


def test_output_in_a_read_only_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, out, err = run_main(["compile", GEMM, "-o", str(ro / "gemm.ir")], capsys)
    assert code == 1 and out == ""
    assert err == f"tdslc: error: cannot write '{ro / 'gemm.ir'}': directory '{ro}' is not writable\n"
    assert not any(ro.iterdir())


def test_an_empty_output_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "-o", ""], capsys)
    assert code == 2 and "argument -o: the output path is empty" in err


# ---------------------------------------------------------------- the reference function

def test_an_exception_in_the_reference_is_the_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.py"
    ref.write_text("import numpy as np\n\n\ndef scale(a):\n    return a / 0 if a.size > 1e9 else {}['C']\n\n\n"
                   "def gemm(A, B, **_):\n    return scale(A) @ B\n")
    code, out, err = run_main(["run", GEMM, "--shape", "M=20,N=20,K=20", "--ref", f"{ref}:gemm"], capsys)
    assert code == 1
    assert "ok: 1 blocks interpreted" in out       # the kernel ran; the comparison could not
    lines = err.splitlines()
    assert lines[0] == "tdslc: error: the reference function gemm raised: KeyError: 'C'"
    frames = [ln for ln in lines[1:] if ln.startswith("  File ")]     # the user's frames, innermost last
    assert frames == [f'  File "{ref}", line 9, in gemm', f'  File "{ref}", line 5, in scale']
    assert "    return scale(A) @ B" in lines and "    return a / 0 if a.size > 1e9 else {}['C']" in lines
    assert "cli.py" not in err


def test_a_reference_module_that_fails_to_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.py"
    ref.write_text("import numpy as np\nimport no_such_module_here\n")
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8", "--ref", f"{ref}:gemm"], capsys)
    assert code == 1
    assert err.startswith(f"tdslc: error: cannot load the reference '{ref}': ModuleNotFoundError: "
                          "No module named 'no_such_module_here'\n")
    assert f'File "{ref}", line 2, in <module>' in err and "importlib" not in err


def test_a_reference_returning_no_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.py"
    ref.write_text("def gemm(A, B, **_):\n    return {'C': 'the answer'}\n")
    code, _, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8", "--ref", f"{ref}:gemm"], capsys)
    assert code == 1 and err == "tdslc: error: the reference returned str for 'C', not an array of numbers\n"


# ---------------------------------------------------------------- seeds and sizes

@pytest.mark.parametrize("command", ["run", "bench", "tune", "tiles"])
def test_a_negative_seed_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([command, GEMM, "--seed", "-1"], capsys)
    assert code == 2 and "argument --seed: the seed must be a non-negative integer, got -1" in err


def test_sizes_too_large_for_memory_are_refused_before_allocating(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["run", GEMM, "--shape", "M=46000,N=46000,K=46000"], capsys)
    assert code == 1 and out == ""
    assert re.search(r"gemm.tdsl:\d+:\d+: error: interpreting these shapes needs about [\d.]+ [GT]iB of memory "
                     r"for the arguments alone, and [\d.]+ [GT]iB is available", err)


def test_tensors_past_2_to_the_31_elements_are_refused_only_for_the_memory(capsys: pytest.CaptureFixture[str]) -> None:
    # Addresses are 64-bit and every dim fits in i32: what stops this is the memory it would take.
    code, out, err = run_main(["run", GEMM, "--shape", "M=2000000000,N=2000000000,K=4"], capsys)
    assert code == 1 and out == ""
    assert "error: interpreting these shapes needs about" in err and "elements" not in err


def test_the_memory_limit_is_what_this_machine_has_available(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import tiledsl.interp.limits
    monkeypatch.setattr(tiledsl.interp.limits, "available_memory", lambda: 16 * 2**20)
    code, _, err = run_main(["run", GEMM, "--shape", "M=1024,N=1024,K=1024"], capsys)   # 8 MiB of arrays
    assert code == 1 and "error: interpreting these shapes needs about" in err and "16.0 MiB is available" in err
    code, out, _ = run_main(["run", GEMM, "--shape", "M=64,N=64,K=64"], capsys)
    assert code == 0 and "ok: 1 blocks" in out


def test_a_size_beyond_i32_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["run", GEMM, "--shape", "M=100000000000,N=4,K=4"], capsys)
    assert code == 2 and "size of M must fit in i32 (at most 2147483647), got 100000000000" in err


# ---------------------------------------------------------------- internal errors

SCALED = """\
kernel scaled(X: f32[M], out Y: f32[M], n: i32)
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  Y[b*16 : +16] <- X[b*16 : +16] * f32(n)
}
"""


@pytest.mark.parametrize("exc", [ValueError("seeded bug"), TypeError("seeded bug"), KeyError("seeded bug")])
def test_an_internal_error_is_reported_as_one(exc: Exception, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Not 'tdslc: error: seeded bug' posing as the user's mistake (run once turned every
    TypeError/ValueError into one): exit 3, the stage, how to report it."""
    from tiledsl.interp.block import BlockInterpreter

    def broken(self: Any, *args: Any) -> None:
        raise exc
    monkeypatch.setattr(BlockInterpreter, "run", broken)
    code, out, err = run_main(["run", GEMM, "--shape", "M=8,N=8,K=8"], capsys)
    assert code == 3 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"tdslc: error: internal compiler error in stage 'interpret-block': {type(exc).__name__}: {exc}"
    assert "  note: this is a bug in tiledsl, not a mistake in your program" in lines
    assert any("please report it at" in ln and "tdslc --version" in ln for ln in lines)
    assert lines[-1] == "  note: run again with --traceback to see where it failed"


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_flag_shows_the_internal_traceback(where: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tiledsl.interp.block import BlockInterpreter

    def broken(self: Any, *args: Any) -> None:
        raise ValueError("seeded bug")
    monkeypatch.setattr(BlockInterpreter, "run", broken)
    argv = ["run", GEMM, "--shape", "M=8,N=8,K=8"]
    argv = ["--traceback", *argv] if where == "before" else [*argv, "--traceback"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "internal compiler error in stage 'interpret-block'" in err
    assert "Traceback (most recent call last)" in err and 'in broken\n    raise ValueError("seeded bug")' in err


def test_argument_mistakes_stay_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "scaled.tdsl"
    src.write_text(SCALED)
    code, _, err = run_main(["run", str(src), "--shape", "M=20", "--arg", "n=1.5"], capsys)
    assert code == 1 and err == "tdslc: error: 'n' is a scalar i32 parameter: 1.5 has a fraction\n"
    code, _, err = run_main(["run", str(src), "--shape", "M=20", "--arg", "m=1"], capsys)
    assert code == 1 and err == "tdslc: error: --arg m: 'scaled' has no scalar parameter 'm' (its scalars: n)\n"


# ---------------------------------------------------------------- --version and --help

def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"tdslc (tiledsl) {tiledsl.__version__}"
    assert re.fullmatch(r"Python 3\.\d+\.\d+ \(.+\)", lines[1])
    assert re.fullmatch(r"llvmlite \d+\.\d+\.\d+\S*, LLVM \d+\.\d+\.\d+", lines[2])
    assert any(ln.startswith("ld.lld: ") for ln in lines) and any(ln.startswith("ptxas: ") for ln in lines)
    lld = next(ln for ln in lines if ln.startswith("ld.lld: "))
    assert ("LLD" in lld) if shutil.which("ld.lld") or shutil.which("ld.lld-19") else "not found" in lld


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    for line in ("exit codes:", "  0  success", "  1  an error in the program or its inputs",
                 "  2  a malformed command line", "  3  an internal compiler error"):
        assert line in out
    assert "--traceback" in out and "--version" in out


QUANTIZE = """
kernel quantize(X: f32[N], W: u8[N], out Q: f8e4m3[N], out L: i8[N], out H: i64[N])
  grid (cdiv(N, 128)) as (g)
  block 2 waves
{
  x = X[g*128 : +128]
  w = W[g*128 : +128]
  Q[g*128 : +128] <- f8e4m3(x * 100.0)
  L[g*128 : +128] <- i8(w & 15) - 8
  H[g*128 : +128] <- i64(w) << 40
}
"""
QUANTIZE_REF = """
import ml_dtypes
import numpy as np


def quantize(X, W):
    return {"Q": np.clip(X.astype(np.float32) * np.float32(100.0), -448, 448).astype(ml_dtypes.float8_e4m3fn),
            "L": (W.astype(np.int64) & 15) - 8, "H": W.astype(np.int64) << 40}
"""


@pytest.mark.parametrize("level", [[], ["--level", "thread", "--target", "gfx942"]])
def test_run_makes_random_inputs_of_the_new_dtypes(level: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "quantize.tdsl").write_text(QUANTIZE)
    (tmp_path / "reference.py").write_text(QUANTIZE_REF)
    code, out, err = run_main(["run", str(tmp_path / "quantize.tdsl"), "--shape", "N=300", *level], capsys)
    assert code == 0, err
    for name, tol in (("Q", "7.0e-02"), ("L", "0.0e+00"), ("H", "0.0e+00")):
        assert re.search(rf"{name}: \|out - ref\| / \|ref\| = \S+  \(tolerance {re.escape(tol)}\)  ok", out), out
