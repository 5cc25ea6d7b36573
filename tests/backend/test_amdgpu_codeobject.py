"""Finding ld.lld, and linking errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tiledsl.backend_amdgpu import LinkerNotFound, LinkError, find_linker, link


def _fake_tool(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_missing_linker_says_how_to_install_it(tmp_path):
    _fake_tool(tmp_path, "ld.gold")  # a PATH with tools, but no lld
    with pytest.raises(LinkerNotFound) as err:
        find_linker(path=str(tmp_path))
    message = str(err.value)
    assert "lld-19" in message and "apt-get install lld-19" in message and "ld.lld" in message
    assert isinstance(err.value, FileNotFoundError)


def test_highest_versioned_linker_wins(tmp_path):
    for n in (9, 17, 19):
        _fake_tool(tmp_path, f"ld.lld-{n}")
    (tmp_path / "ld.lld-30").write_text("not executable")
    assert find_linker(path=str(tmp_path)) == str(tmp_path / "ld.lld-19")


def test_plain_ld_lld_is_preferred(tmp_path):
    versioned = tmp_path / "a"
    plain = tmp_path / "b"
    versioned.mkdir()
    plain.mkdir()
    _fake_tool(versioned, "ld.lld-19")
    _fake_tool(plain, "ld.lld")
    assert find_linker(path=os.pathsep.join([str(versioned), str(plain)])) == str(plain / "ld.lld")


def test_link_errors_carry_the_linker_message(linker):
    # lld reads non-ELF input as a linker script and reports the bad directive on stderr.
    with pytest.raises(LinkError, match=r"failed \(exit 1\):\n.*error: .*unknown directive: this"):
        link(b"this is not an object file", linker)
