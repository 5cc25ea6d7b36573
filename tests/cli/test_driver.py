"""``tdslc``'s compiler-driver habits, as clang's: several errors per run with a closing count,
warnings (register spills, with their counts) and -Werror, ``-`` for stdin, -O0..-O3, one
``--emit``, no binary output on a terminal, and the NVIDIA resource report as a table."""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

import tiledsl
from tiledsl.backend_nvptx import ptx
from tiledsl.cli import main
from tiledsl.stages import Options, run_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GEMM = str(EXAMPLES / "gemm.tdsl")
TWO_ERRORS = """\
kernel k(X: f32[M], out Y: f32[M])
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  a = X[b*16 : +16] * nope
  Y[b*16 : +16] <- X[b*16 : +16] + fill(0, f32[8])
}
"""
needs_ptxas = pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) not on PATH")


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# ---------------------------------------------------------------- several errors

def test_check_reports_every_error_and_counts_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.tdsl"
    path.write_text(TWO_ERRORS)
    code, out, err = run_main(["check", str(path)], capsys)
    assert (code, out) == (1, "")
    assert err == f"""\
{path}:5:23: error: 'nope' is not defined
    a = X[b*16 : +16] * nope
                        ^~~~
{path}:6:34: error: '+' of shapes [16] and [8]: dims 16 and 8 do not match
    Y[b*16 : +16] <- X[b*16 : +16] + fill(0, f32[8])
                                   ^
2 errors generated.
"""


def test_one_error_has_no_closing_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.tdsl"
    path.write_text(TWO_ERRORS.replace(" * nope", ""))
    code, _, err = run_main(["check", str(path)], capsys)
    assert code == 1 and err.count("error:") == 1 and "generated" not in err


# ---------------------------------------------------------------- stdin

def test_check_reads_the_program_from_stdin(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, Path(GEMM).read_bytes())
    assert run_main(["check", "-"], capsys) == (0, "<stdin>: ok: kernel 'gemm'\n", "")


def test_errors_from_stdin_are_located_in_stdin(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, TWO_ERRORS.encode())
    code, _, err = run_main(["check", "-"], capsys)
    assert code == 1
    assert err.splitlines()[0] == "<stdin>:5:23: error: 'nope' is not defined"
    assert err.splitlines()[3] == "<stdin>:6:34: error: '+' of shapes [16] and [8]: dims 16 and 8 do not match"


def test_run_reads_stdin_once_though_it_loads_twice(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, Path(GEMM).read_bytes())
    code, out, _ = run_main(["run", "-", "--shape", "M=70,N=50,K=40"], capsys)
    assert code == 0
    assert "no reference function: outputs not compared (give --ref FILE.py:FUNC)" in out
    # with the example's reference given explicitly, the outputs are compared
    feed_stdin(monkeypatch, Path(GEMM).read_bytes())
    code, out, _ = run_main(["run", "-", "--shape", "M=70,N=50,K=40", "--ref",
                             f"{EXAMPLES / 'reference.py'}:gemm"], capsys)
    assert code == 0 and re.search(r"^C: \|out - ref\| / \|ref\| = \S+ +\(tolerance 1\.0e-04\) +ok$",
                                         out, re.MULTILINE)


@pytest.mark.parametrize("data, message", [
    (b"", "cannot read <stdin>: it is empty (pipe a .tdsl program into '-')"),
    (b"kernel \xff", "cannot read <stdin>: not UTF-8 text (byte 0xff at offset 7)"),
    (b"kernel\x00k", "cannot read <stdin>: not a text file (a NUL byte)"),
])
def test_unreadable_stdin(data: bytes, message: str, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, data)
    assert run_main(["check", "-"], capsys) == (1, "", f"tdslc: error: {message}\n")


# ---------------------------------------------------------------- -O, --emit

def test_opt_levels_reach_llvm(capsys: pytest.CaptureFixture[str]) -> None:
    texts = {}
    for level in ("-O0", "-O3"):
        code, out, _ = run_main(["compile", GEMM, "--emit", "llvm", level], capsys)
        assert code == 0
        texts[level] = out
    prog = tiledsl.load(GEMM)
    for level, opt in (("-O0", 0), ("-O3", 3)):
        assert texts[level] == run_until(prog, "llvm", "gfx942", Options(opt=opt)).llvm_ir
    assert texts["-O0"] != texts["-O3"]


def test_an_opt_level_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["compile", GEMM, "-O4"], capsys)
    assert code == 2
    assert err.splitlines()[-1] == ("tdslc compile: error: argument -O: the optimisation level is -O0, -O1, -O2 "
                                    "or -O3, not -O4")


def test_a_repeated_emit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    code, _, err = run_main(["compile", GEMM, "--emit", "ptx", "--target", "sm_90", "--emit", "cubin",
                             "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    assert err.splitlines()[-1] == "tdslc compile: error: --emit given twice ('ptx', then 'cubin'): give it once"


@pytest.mark.parametrize("emit, target", [("hsaco", "gfx942"), ("obj", "gfx942")])
def test_binary_output_is_not_written_to_a_terminal(emit: str, target: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    for out in ([], ["-o", "-"]):
        assert run_main(["compile", GEMM, "--emit", emit, "--target", target, *out], capsys) == (
            1, "", f"tdslc: error: --emit {emit} is binary: write it to a file with -o\n")


def test_binary_output_goes_to_a_pipe(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert main(["compile", GEMM, "--emit", "obj"]) == 0
    assert capsysbinary.readouterr().out.startswith(b"\x7fELF")


# ---------------------------------------------------------------- warnings

def test_spills_are_a_warning_with_their_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # At -O0 the gemm example spills on gfx942 (LLVM's counts include spills into other registers).
    res = run_until(tiledsl.load(GEMM), "llvm", "gfx942", Options(opt=0)).resources
    assert res.spills
    where = f"{res.scratch_bytes} B of scratch per lane" if res.scratch_bytes else "into other registers, no scratch"
    out = tmp_path / "gemm.s"
    code, _, err = run_main(["compile", GEMM, "--emit", "asm", "-O0", "-o", str(out)], capsys)
    assert code == 0 and out.exists()
    assert err == f"""\
{GEMM}:4:8: warning: kernel 'gemm' spills {res.vgpr_spills} VGPRs and {res.sgpr_spills} SGPRs on gfx942 ({where}) \
[-Wspill]
  kernel gemm(A: f16[M, K], B: f16[K, N], out C: f32[M, N])
         ^~~~
1 warning generated.
"""


def test_werror_turns_the_warning_into_an_error_and_writes_nothing(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gemm.hsaco"
    code, _, err = run_main(["compile", GEMM, "--emit", "hsaco", "-O0", "-Werror", "-o", str(out)], capsys)
    assert code == 1 and not out.exists()
    assert re.fullmatch(rf"{re.escape(GEMM)}:4:8: error: kernel 'gemm' spills \d+ VGPRs and \d+ SGPRs on gfx942 "
                        r"\([^)]*\) \[-Werror,-Wspill\]\n.*\n.*\n", err)


def test_no_warning_without_spills(capsys: pytest.CaptureFixture[str]) -> None:
    assert not run_until(tiledsl.load(GEMM), "llvm", "gfx942").resources.spills
    code, _, err = run_main(["compile", GEMM, "--emit", "asm", "-Werror"], capsys)
    assert (code, err) == (0, "")


@needs_ptxas
def test_ptxas_spills_are_a_warning_for_cubin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tiledsl.load(GEMM, params={"BM": 128, "BN": 128})
    art = run_until(prog, "llvm", "sm_90")
    report = ptx.ptxas_resources(art.compiled.asm, "sm_90")["gemm"]
    assert report.spill_store_bytes > 0
    out = tmp_path / "gemm.cubin"
    code, _, err = run_main(["compile", GEMM, "-D", "BM=128", "-D", "BN=128", "--target", "sm_90",
                             "--emit", "cubin", "-o", str(out)], capsys)
    assert code == 0 and out.read_bytes().startswith(b"\x7fELF")
    assert err.splitlines()[0] == (
        f"{GEMM}:4:8: warning: kernel 'gemm' spills registers to local memory on sm_90: "
        f"{report.spill_store_bytes} B stored, {report.spill_load_bytes} B loaded per thread (ptxas) [-Wspill]")
    assert err.splitlines()[-1] == "1 warning generated."


# ---------------------------------------------------------------- resources

def test_amd_resources_table(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_until(tiledsl.load(GEMM), "llvm", "gfx942").resources
    code, out, _ = run_main(["resources", GEMM, "--target", "gfx942"], capsys)
    assert code == 0
    assert out.splitlines()[1:] == res.table().splitlines()
    assert out.splitlines()[2] == f"VGPRs      {res.vgprs}"


@needs_ptxas
def test_nvidia_resources_table_from_ptxas(capsys: pytest.CaptureFixture[str]) -> None:
    art = run_until(tiledsl.load(GEMM), "llvm", "sm_90")
    report = ptx.ptxas_resources(art.compiled.asm, "sm_90")["gemm"]
    code, out, _ = run_main(["resources", GEMM, "--target", "sm_90"], capsys)
    assert code == 0
    assert out == f"""\
gemm on sm_90: block 128 threads, LDS {art.lds_bytes} bytes
kernel     gemm (sm_90, warp32, block 128)
registers  {report.registers} per thread
spills     {report.spill_store_bytes} B stored, {report.spill_load_bytes} B loaded
stack      {report.stack_bytes} B per thread
shared     {report.shared_bytes} B static + {art.lds_bytes} B dynamic
occupancy  not computed (cudaOccupancyMaxActiveBlocksPerMultiprocessor on the GPU)
"""


def test_nvidia_resources_table_without_ptxas(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def no_ptxas(path: str | None = None) -> str:
        raise ptx.PtxasNotFound("ptxas not found on PATH")
    monkeypatch.setattr(ptx, "find_ptxas", no_ptxas)
    art = run_until(tiledsl.load(GEMM), "llvm", "sm_90")
    # the virtual registers the PTX declares: '.reg .b32 %r<319>;' names 319 of them
    virtual = sum(int(line.split("<")[1].split(">")[0]) for line in art.compiled.asm.splitlines()
                  if line.strip().startswith(".reg "))
    assert virtual > 255
    code, out, _ = run_main(["resources", GEMM, "--target", "sm_90"], capsys)
    assert code == 0
    assert out == f"""\
gemm on sm_90: block 128 threads, LDS {art.lds_bytes} bytes
kernel     gemm (sm_90, warp32, block 128)
registers  unknown (ptxas not found); the PTX names {virtual} virtual registers, which ptxas allocates onto at most 255
spills     unknown (ptxas not found)
stack      unknown (ptxas not found)
shared     0 B static + {art.lds_bytes} B dynamic
occupancy  not computed (cudaOccupancyMaxActiveBlocksPerMultiprocessor on the GPU)
"""
