"""``tdslc tiles`` through ``cmd_tiles`` with namespaces built by ``add_tiles_parser``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

import tiledsl
from tiledsl.cli import UserError
from tiledsl.targets import get_target
from tiledsl.viz.cli_tiles import annotated_layouts, block_waves, cmd_tiles
from tiledsl.viz.render import MAX_HEIGHT, MAX_WIDTH

GEMM_SHAPE = "M=128,N=128,K=64"


def _run(parser: argparse.ArgumentParser, examples: Path, *argv: str) -> int:
    args = parser.parse_args(["tiles", str(examples / argv[0]), *argv[1:]])
    return cmd_tiles(args)


def test_overview_png(tiles_parser: argparse.ArgumentParser, examples: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gemm.png"
    assert _run(tiles_parser, examples, "gemm.tdsl", "--target", "gfx942", "--shape", GEMM_SHAPE, "-o", str(out)) == 0
    with Image.open(out) as im:
        assert im.width <= MAX_WIDTH and im.height <= MAX_HEIGHT
    assert "wrote" in capsys.readouterr().out


def test_tensor_text(tiles_parser: argparse.ArgumentParser, examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tiles_parser, examples, "gemm.tdsl", "--target", "gfx942", "--shape", GEMM_SHAPE,
                "--value", "C", "--text") == 0
    out = capsys.readouterr().out
    assert "never written: 0 of 16384; written more than once: 0" in out
    assert "bm=1, bn=1  [64:128, 64:128]" in out


def test_tensor_reads_and_leading_indices(tiles_parser: argparse.ArgumentParser, examples: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.svg"
    assert _run(tiles_parser, examples, "attention.tdsl", "--target", "gfx942", "--shape", "Z=1,H=2,N=64,D=16",
                "-D", "BM=32", "-D", "BN=32", "--value", "Q", "--at", "0,1", "--text", "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert "Q[1, 2, 64, 16]: reads by block" in text and "bm=1, h=1, z=0" in text
    assert out.read_text().startswith("<svg")


def test_value_picture(tiles_parser: argparse.ArgumentParser, examples: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "acc.png"
    assert _run(tiles_parser, examples, "attention.tdsl", "--target", "gfx942", "-D", "D=64", "--value", "acc",
                "--text", "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert "acc: f32[128x64] @ mma(waves=[4,1], swap=true) on gfx942" in text
    assert out.is_file()


def test_lds_picture(tiles_parser: argparse.ArgumentParser, examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tiles_parser, examples, "gemm.tdsl", "--target", "sm_90", "--shape", GEMM_SHAPE, "--value", "a_s",
                "--interval", "1", "--text") == 0
    assert "copy A -> a_s" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (("--value", "nope", "--text"), "what can be drawn: tensors: A, B, C; LDS tiles: a_s, b_s"),
    (("--value", "C"), "-o OUT.png"),
    (("--value", "C", "-o", "c.jpg"), "must end in .png or .svg"),
    (("--value", "C", "--interval", "2", "--text"), "--interval applies to lds pictures"),
    (("--value", "a_s", "--interval", "9", "--text"), "not touched in interval 9"),
])
def test_user_errors(tiles_parser: argparse.ArgumentParser, examples: Path, argv: tuple[str, ...],
                     message: str) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("-o", "-o")):
        _run(tiles_parser, examples, "gemm.tdsl", "--target", "gfx942", "--shape", GEMM_SHAPE, *argv)


def test_missing_shape_is_a_user_error(tiles_parser: argparse.ArgumentParser, examples: Path) -> None:
    with pytest.raises(UserError, match="--shape gives no size for dim 'M'"):
        _run(tiles_parser, examples, "gemm.tdsl", "--target", "gfx942", "--value", "C", "--text")


def test_every_flag_has_help(tiles_parser: argparse.ArgumentParser) -> None:
    sub = next(a for a in tiles_parser._actions if isinstance(a, argparse._SubParsersAction))
    tiles = sub.choices["tiles"]
    assert all(action.help for action in tiles._actions)
    assert "examples:" in tiles.format_help()


def test_annotated_layouts_fallback(examples: Path) -> None:
    """Without the thread level, layouts come from '@ layout' annotations bound for the target."""
    prog = tiledsl.load(examples / "attention.tdsl", params={"D": 64})
    target = get_target("gfx1100")
    kernel = prog.lowered()
    assert block_waves(kernel, target) == 4
    layouts, problems = annotated_layouts(kernel, target)
    assert not problems
    assert str(layouts["acc"]) == "mma(waves=[4,1])<128x64>"
    assert layouts["acc"].wave_size == 32 and layouts["acc"].num_waves == 4
