"""The result of compiling for NVPTX: PTX text, and what ptxas makes of it."""

from __future__ import annotations

from dataclasses import dataclass

from tiledsl.backend_nvptx import ptx
from tiledsl.llvm.target_base import CompiledModule


@dataclass(frozen=True)
class NvptxCompiledModule(CompiledModule):
    """A CompiledModule whose ``asm`` is PTX and whose ``object`` is the same text as bytes.

    LLVM's NVPTX backend cannot emit an object file; the driver JIT-compiles the PTX, or
    ``cubin()`` runs ptxas ahead of time. ``dynamic_lds_bytes`` must be passed at launch.
    """

    @property
    def ptx(self) -> str:
        """The PTX text."""
        return self.asm

    def cubin(self, ptxas: str | None = None) -> bytes:
        """The cubin from ptxas (raises PtxasNotFound without it)."""
        return ptx.to_cubin(self.asm, self.target, ptxas)

    def ptxas_resources(self, ptxas: str | None = None) -> dict[str, ptx.PtxasResources]:
        """Registers, spills and static shared memory per kernel, from ``ptxas -v``."""
        return ptx.ptxas_resources(self.asm, self.target, ptxas)
