"""Invalid programs, each with its expected error: message fragment and position.

Every file in ``invalid/`` starts with ``# expect: LINE:COL: fragment`` and may give
compile-time parameters on a ``# params: NAME=VALUE,...`` line (for the unknown -D case; a
VALUE that is not an integer is a dtype name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import tiledsl
from tiledsl.cli import main

INVALID = Path(__file__).resolve().parent / "invalid"
FILES = sorted(INVALID.glob("*.tdsl"))

# What the issue asks the file of invalid programs to cover, by file name.
REQUIRED = {
    "dot_inner_dims", "lds_copy_too_big", "fill_runtime_dim", "slice_runtime_extent", "colon_runtime_dim",
    "dtype_mismatch", "rank_mismatch", "store_to_input", "store_dtype", "undefined_name", "unknown_function",
    "wrong_arg_count", "loop_carried_type", "missing_brace", "bad_character", "bad_token", "unexpected_end",
    "missing_grid", "missing_block", "unknown_parameter", "layout_waves", "if_on_tile",
}


@dataclass(frozen=True)
class Expectation:
    line: int
    col: int
    fragment: str
    params: dict[str, int | str]


def expectation(path: Path) -> Expectation:
    text = path.read_text()
    m = re.match(r"# expect: (\d+):(\d+): (.+)\n", text)
    assert m, f"{path.name} has no '# expect: LINE:COL: message' first line"
    params: dict[str, int | str] = {}
    pm = re.search(r"^# params: (.+)$", text, re.MULTILINE)
    if pm:
        for item in pm.group(1).split(","):
            name, value = (part.strip() for part in item.split("="))
            params[name] = int(value) if value.lstrip("-").isdigit() else value
    return Expectation(int(m.group(1)), int(m.group(2)), m.group(3).strip(), params)


def test_the_required_cases_are_all_there() -> None:
    assert REQUIRED <= {f.stem for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_error_message_and_position(path: Path) -> None:
    want = expectation(path)
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(path, params=want.params)
    err = info.value
    assert want.fragment in err.message
    assert err.loc is not None
    assert (err.loc.file, err.loc.line, err.loc.col) == (str(path), want.line, want.col)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_formatted_error_quotes_the_line_with_a_caret(path: Path) -> None:
    want = expectation(path)
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(path, params=want.params)
    lines = info.value.format().splitlines()
    assert lines[0] == f"{path}:{want.line}:{want.col}: error: {info.value.message}"
    source_line = path.read_text().splitlines()[want.line - 1]
    assert lines[1] == "  " + source_line
    assert lines[2].index("^") == 2 + want.col - 1
    assert set(lines[2].strip()) <= {"^", "~"}
    # notes are whole sentences, never one character each
    assert all(len(line) > len("  note: ") + 1 for line in lines[3:])


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_tdslc_check_reports_file_line_col(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want = expectation(path)
    argv = ["check", str(path)]
    for name, value in want.params.items():
        argv += ["-D", f"{name}={value}"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"{path}:{want.line}:{want.col}: error: ")
    assert want.fragment in err
    assert "Traceback" not in err and "Traceback" not in out
    assert "ok:" not in out


def test_the_same_programs_load_from_a_string_as_well() -> None:
    """Positions do not depend on where the text came from; only the file name does."""
    for path in FILES:
        want = expectation(path)
        with pytest.raises(tiledsl.TdslError) as info:
            tiledsl.load(path.read_text(), params=want.params)
        loc = info.value.loc
        assert loc is not None, path.name
        assert (loc.file, loc.line, loc.col) == ("<string>", want.line, want.col), path.name


def test_a_valid_program_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The harness can tell a good program from a bad one: the fixed dot case is accepted."""
    fixed = (INVALID / "dot_inner_dims.tdsl").read_text().replace("dot(a, a)", "dot(a, a^T)")
    fixed = fixed.replace("C[0 : +16, 0 : +32] <- c", "C[0 : +16, 0 : +16] <- c")
    path = tmp_path / "fixed.tdsl"
    path.write_text(fixed)
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: ok: kernel 'k'" in out and err == ""


def test_quoted_line_after_a_form_feed() -> None:
    src = ("kernel k(X: f32[M], out Y: f32[M])\x0c\n  grid (1) as (b)\n  block 1 waves\n{\n"
           "  Y[0 : +16] <- X[0 : +16] * nope\n}\n")
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(src)
    assert info.value.loc is not None and info.value.loc.line == 5
    assert info.value.format().splitlines()[1] == "    Y[0 : +16] <- X[0 : +16] * nope"
