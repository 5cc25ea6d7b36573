"""The wheel is what people install: build it, install it into a fresh venv (no access to this
checkout or to the test venv's packages) and run ``tdslc`` from outside the repository.

Takes 20-60 s (pip builds in isolation and installs lark, NumPy, ml_dtypes and llvmlite into the
new venv from the package index), so it stays in the default run; ``-m "not slow"`` skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_tdslc(tmp_path: Path) -> None:
    # Build from a copy of what the sdist would hold, so that the build neither writes into the
    # checkout nor picks up anything that is not declared.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "tiledsl", src / "tiledsl", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(wheels)], src)
    [wheel] = wheels.glob("tiledsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tiledsl/grammar.lark" in names and "tiledsl/ir/ir.lark" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: gpu" in metadata

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)      # no --system-site-packages
    bindir = venv / "bin"
    _run([str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(REPO / "examples" / "gemm.tdsl", outside / "gemm.tdsl")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    version = _run([str(bindir / "tdslc"), "--version"], outside, env).stdout
    assert version.startswith("tdslc (tiledsl) 0.1.0\n")
    assert f"({bindir / 'python'}" in version     # the fresh venv's interpreter, not the test's
    check = _run([str(bindir / "tdslc"), "check", "gemm.tdsl"], outside, env).stdout
    assert check == "gemm.tdsl: ok: kernel 'gemm'\n"
    ptx = _run([str(bindir / "tdslc"), "compile", "gemm.tdsl", "--target", "sm_90", "--emit", "ptx"],
               outside, env).stdout
    assert ".visible .entry gemm(" in ptx
    where = _run([str(bindir / "python"), "-c", "import tiledsl; print(tiledsl.__file__)"], outside, env).stdout
    assert where.startswith(str(venv)), where
