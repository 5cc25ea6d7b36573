"""Linking an AMDGPU relocatable object into an HSA code object (``.hsaco``) with ld.lld.

LLVM emits an ELF relocatable; the ROCm loader wants a shared object, which ``ld.lld -shared``
makes. llvmlite does not ship lld, so the system linker is used: Debian/Ubuntu install it as
``ld.lld-NN`` (package ``lld-19`` links LLVM 22 objects fine, docs/targets/llvm-pipeline.md §5.1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_VERSIONED = re.compile(r"^ld\.lld-(\d+)$")


class LinkerNotFound(FileNotFoundError):
    """No ``ld.lld`` / ``ld.lld-NN`` on PATH."""


class LinkError(RuntimeError):
    """ld.lld failed; the message carries its stderr."""


def find_linker(path: str | None = None) -> str:
    """The ld.lld to use: ``ld.lld`` if on PATH, else the highest-numbered ``ld.lld-NN``.

    ``path`` replaces ``$PATH`` for the search. Raises LinkerNotFound saying how to install one.
    """
    search = os.environ.get("PATH", "") if path is None else path
    plain = shutil.which("ld.lld", path=search)
    if plain:
        return plain
    versioned: list[tuple[int, str]] = []
    for directory in filter(None, search.split(os.pathsep)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            m = _VERSIONED.match(name)
            full = os.path.join(directory, name)
            if m and os.access(full, os.X_OK) and not os.path.isdir(full):
                versioned.append((int(m.group(1)), full))
    if versioned:
        return max(versioned)[1]
    raise LinkerNotFound(
        "no ld.lld found on PATH (looked for ld.lld and ld.lld-NN); it links AMDGPU code objects. "
        "Install the Debian/Ubuntu package lld-19 (apt-get install lld-19) or put ld.lld on PATH."
    )


def link(object_bytes: bytes, linker: str | None = None) -> bytes:
    """Link one AMDGPU relocatable object into a loadable code object (``.hsaco`` bytes).

    ``--no-undefined`` turns a call to a missing device function into a link error here rather
    than a load failure on the GPU.
    """
    lld = linker or find_linker()
    with tempfile.TemporaryDirectory(prefix="tiledsl-link-") as tmp:
        obj, out = Path(tmp, "kernel.o"), Path(tmp, "kernel.hsaco")
        obj.write_bytes(object_bytes)
        proc = subprocess.run(
            [lld, "-shared", "--no-undefined", str(obj), "-o", str(out)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise LinkError(f"{lld} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        return out.read_bytes()
