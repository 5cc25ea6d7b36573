"""The toolchain of this installation, as ``tdslc --version`` reports it for bug reports: tiledsl,
Python, llvmlite and the LLVM inside it, and the external tools found (``ld.lld`` links AMDGPU
code objects, ``ptxas`` makes cubins)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import numpy as np


def _tool_version(path: str) -> str:
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"(cannot run it: {e})"
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    release = [ln for ln in lines if "release" in ln]      # ptxas: "Cuda compilation tools, release 13.0, ..."
    return (release or lines or ["(no version printed)"])[0]


def version_report() -> str:
    """What ``tdslc --version`` prints: enough to reproduce a bug report."""
    import llvmlite
    import llvmlite.binding as llvm

    import tiledsl
    from tiledsl.backend_amdgpu.codeobject import LinkerNotFound, find_linker
    from tiledsl.backend_nvptx.ptx import PtxasNotFound, find_ptxas
    lines = [f"tdslc (tiledsl) {tiledsl.__version__}",
             f"Python {platform.python_version()} ({sys.executable})",
             f"llvmlite {llvmlite.__version__}, LLVM {'.'.join(map(str, llvm.llvm_version_info))}",
             f"numpy {np.__version__}"]
    for tool, find, missing in (("ld.lld", find_linker, LinkerNotFound), ("ptxas", find_ptxas, PtxasNotFound)):
        try:
            path = find()
        except missing:
            lines.append(f"{tool}: not found (needed for {'AMDGPU code objects' if tool == 'ld.lld' else 'cubins'})")
            continue
        lines.append(f"{tool}: {shutil.which(path) or path}: {_tool_version(path)}")
    return "\n".join(lines) + "\n"
