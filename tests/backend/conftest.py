"""Fixtures of the backend tests (helpers live in backend_kernels.py)."""

from __future__ import annotations

import pytest

from tiledsl.backend_amdgpu import AmdgpuTarget, LinkerNotFound, find_linker


@pytest.fixture(scope="session")
def linker() -> str:
    """The ld.lld to link with; skips the test when none is installed."""
    try:
        return find_linker()
    except LinkerNotFound as e:
        pytest.skip(f"no AMDGPU linker: {e}")


@pytest.fixture(scope="session")
def amd_targets() -> dict[str, AmdgpuTarget]:
    """One AmdgpuTarget per arch, shared so their TargetMachines are created once."""
    return {arch: AmdgpuTarget(arch) for arch in ("gfx90a", "gfx942", "gfx1100", "gfx1030")}
