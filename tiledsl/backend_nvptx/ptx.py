"""PTX → cubin through NVIDIA's ``ptxas``, when it is installed.

The CUDA driver can JIT PTX by itself (``cuModuleLoadData``), so ``ptxas`` is optional: callers
that get PtxasNotFound load the PTX instead. Running ptxas ahead of time gives a cubin that
loads without JIT and, with ``-v``, the register and spill report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PtxasNotFound(FileNotFoundError):
    """No ``ptxas`` on PATH."""


class PtxasError(RuntimeError):
    """ptxas rejected the PTX; the message carries its output."""


@dataclass(frozen=True)
class PtxasResources:
    """What ``ptxas -v`` reports for one kernel."""

    kernel: str
    registers: int
    shared_bytes: int  # static .shared only; dynamic shared memory is added at launch
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int


def find_ptxas(path: str | None = None) -> str:
    """The ``ptxas`` on PATH (or on ``path``); raises PtxasNotFound."""
    found = shutil.which("ptxas", path=path)
    if not found:
        raise PtxasNotFound(
            "ptxas not found on PATH (it comes with the CUDA toolkit); load the PTX through the "
            "driver's JIT instead, or put ptxas on PATH"
        )
    return found


def _run_ptxas(ptx: str, arch: str, verbose: bool, ptxas: str | None) -> tuple[bytes, str]:
    exe = ptxas or find_ptxas()
    with tempfile.TemporaryDirectory(prefix="tiledsl-ptxas-") as tmp:
        src, out = Path(tmp, "kernel.ptx"), Path(tmp, "kernel.cubin")
        src.write_text(ptx)
        cmd = [exe, f"-arch={arch}", str(src), "-o", str(out)] + (["-v"] if verbose else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PtxasError(f"ptxas failed (exit {proc.returncode}):\n{(proc.stderr + proc.stdout).strip()}")
        return out.read_bytes(), proc.stderr + proc.stdout


def to_cubin(ptx: str, arch: str, ptxas: str | None = None) -> bytes:
    """Assemble PTX for ``arch`` (e.g. ``"sm_90"``) into a cubin (ELF bytes)."""
    return _run_ptxas(ptx, arch, False, ptxas)[0]


_ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def ptxas_resources(ptx: str, arch: str, ptxas: str | None = None) -> dict[str, PtxasResources]:
    """Per-kernel registers, static shared memory, stack and spills from ``ptxas -v``."""
    _, report = _run_ptxas(ptx, arch, True, ptxas)
    out: dict[str, PtxasResources] = {}
    name, frame = None, (0, 0, 0)
    for line in report.splitlines():
        if m := _ENTRY.search(line):
            name, frame = m["name"], (0, 0, 0)
        elif (m := _FRAME.search(line)) and name:
            frame = (int(m[1]), int(m[2]), int(m[3]))
        elif (m := _USED.search(line)) and name:
            smem = _SMEM.search(line)
            out[name] = PtxasResources(name, int(m[1]), int(smem[1]) if smem else 0, *frame)
    return out
