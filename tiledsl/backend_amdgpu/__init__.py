"""AMDGPU backend: the target module (gfx90a, gfx942, gfx1100, FMA-only), code objects, resources."""

from tiledsl.backend_amdgpu.codeobject import LinkerNotFound, LinkError, find_linker, link
from tiledsl.backend_amdgpu.compiled import AmdgpuCompiledModule
from tiledsl.backend_amdgpu.metadata import (
    CodeObjectError,
    code_object_version,
    kernel_info_from_asm,
    metadata_from_asm,
    read_metadata,
)
from tiledsl.backend_amdgpu.resources import Resources, occupancy_limits
from tiledsl.backend_amdgpu.target import AMD_ARCHES, AmdArch, AmdgpuTarget

__all__ = [
    "AMD_ARCHES",
    "AmdArch",
    "AmdgpuCompiledModule",
    "AmdgpuTarget",
    "CodeObjectError",
    "LinkError",
    "LinkerNotFound",
    "Resources",
    "code_object_version",
    "find_linker",
    "kernel_info_from_asm",
    "link",
    "metadata_from_asm",
    "occupancy_limits",
    "read_metadata",
]
