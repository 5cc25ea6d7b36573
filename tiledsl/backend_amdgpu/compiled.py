"""The result of compiling for AMDGPU: asm, relocatable object, and what can be read from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tiledsl.backend_amdgpu import codeobject, metadata
from tiledsl.backend_amdgpu.resources import Resources
from tiledsl.llvm.target_base import CompiledModule

if TYPE_CHECKING:
    from tiledsl.targets import AmdArch


@dataclass(frozen=True)
class AmdgpuCompiledModule(CompiledModule):
    """A CompiledModule whose ``object`` is an AMDGPU ELF relocatable.

    The metadata note is already in the relocatable object, so ``metadata()`` and
    ``resources()`` need no linker; only ``link()`` (the loadable ``.hsaco``) does.
    """

    arch: AmdArch | None = field(default=None, kw_only=True)

    def metadata(self) -> dict[str, Any]:
        """The decoded ``NT_AMDGPU_METADATA`` note of the object."""
        return metadata.read_metadata(self.object)

    def kernel_names(self) -> list[str]:
        """Names of the kernels in the module, in metadata order."""
        return [k[".name"] for k in self.metadata()["amdhsa.kernels"]]

    def resources(self, kernel: str | None = None, dynamic_lds_bytes: int | None = None) -> Resources:
        """Resource usage and occupancy of ``kernel`` (default: the module's only kernel).

        ``dynamic_lds_bytes`` defaults to the module's own dynamic arena (0 on AMD).
        """
        if self.arch is None:
            raise ValueError("this compiled module does not know its arch")
        kernels = self.metadata()["amdhsa.kernels"]
        if kernel is None:
            if len(kernels) != 1:
                raise ValueError(f"the module has {len(kernels)} kernels; name one")
            entry = kernels[0]
        else:
            matches = [k for k in kernels if k[".name"] == kernel]
            if not matches:
                raise KeyError(f"no kernel {kernel!r}; have {[k['.name'] for k in kernels]}")
            entry = matches[0]
        dyn = self.dynamic_lds_bytes if dynamic_lds_bytes is None else dynamic_lds_bytes
        return Resources.from_metadata(entry, self.arch, dyn)

    def link(self, linker: str | None = None) -> bytes:
        """The loadable HSA code object (needs ld.lld; raises LinkerNotFound without it)."""
        return codeobject.link(self.object, linker)
