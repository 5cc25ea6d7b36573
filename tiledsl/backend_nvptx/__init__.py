"""NVPTX backend: the target module (sm_80, sm_90, sm_90a) and PTX assembly through ptxas."""

from tiledsl.backend_nvptx.compiled import NvptxCompiledModule
from tiledsl.backend_nvptx.ptx import (
    PtxasError,
    PtxasNotFound,
    PtxasResources,
    find_ptxas,
    ptxas_resources,
    to_cubin,
)
from tiledsl.backend_nvptx.target import NV_ARCHES, NvArch, NvptxTarget

__all__ = [
    "NV_ARCHES",
    "NvArch",
    "NvptxCompiledModule",
    "NvptxTarget",
    "PtxasError",
    "PtxasNotFound",
    "PtxasResources",
    "find_ptxas",
    "ptxas_resources",
    "to_cubin",
]
