"""Helpers for tests of tiledsl and of kernels written in it (they need the ``test`` extra).

- ``filecheck(text, checks)``: LLVM FileCheck (the ``filecheck`` package) on compiler output.
- ``require_cuda()``: CuPy with a CUDA device, or skip the calling test module.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def filecheck(text: str, checks: str, show_input: bool = False) -> None:
    """Run the ``filecheck`` package on ``text``; fail the test with its report (and the input
    with ``show_input``)."""
    import pytest
    with tempfile.TemporaryDirectory() as tmp:
        check_file = Path(tmp, "checks")
        check_file.write_text(checks)
        proc = subprocess.run([sys.executable, "-m", "filecheck", str(check_file)], input=text,
                              capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shown = f"\n{text}" if show_input else ""
        pytest.fail(f"FileCheck failed:\n{proc.stdout}\n{proc.stderr}{shown}", pytrace=False)


def require_cuda() -> ModuleType:
    """CuPy, where it is installed and sees a CUDA device; otherwise the calling test module is
    skipped (call it at module level)."""
    import pytest
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device", allow_module_level=True)
    except cupy.cuda.runtime.CUDARuntimeError as e:   # no driver
        pytest.skip(f"no CUDA device: {e}", allow_module_level=True)
    return cupy


def require_torch_cuda() -> ModuleType:
    """PyTorch, where it sees a CUDA device and cuda-python (which launches) is installed;
    otherwise the calling test module is skipped (call it at module level)."""
    import pytest
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for PyTorch", allow_module_level=True)
    try:
        import cuda.bindings.driver  # noqa: F401
    except ImportError:
        pytest.importorskip("cuda.cuda")
    return torch


def load_module(path: Path | str, name: str) -> ModuleType:
    """The Python file ``path`` imported as the module ``name`` (registered in ``sys.modules``, so
    that dataclasses and pickling find it): the examples' ``reference.py`` and tests' case files,
    which are not in a package."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
