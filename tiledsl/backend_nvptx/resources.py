"""What an NVIDIA kernel uses, for ``tdslc resources``: from ``ptxas -v`` where ptxas is
installed, else only what the PTX itself says.

The PTX alone does not know the registers: its ``.reg`` declarations name virtual registers
(``%r<319>`` is 319 of them), which ptxas allocates onto at most 255 physical ones per thread
and spills beyond that; so without ptxas the registers and spills are reported as unknown,
not guessed. Shared memory is known either way: the static ``.shared`` arrays are declared in
the PTX, and tiledsl's LDS arena is dynamic shared memory whose size the launch passes.
Occupancy is not computed: the target records do not hold the SM's register file and its
allocation granularity (CUDA's ``cudaOccupancyMaxActiveBlocksPerMultiprocessor`` gives it on a GPU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tiledsl.backend_nvptx import ptx

_STATIC_SHARED = re.compile(r"^\s*(?!\.extern)(?:\.visible\s+)?\.shared\b[^\[;]*\[(\d+)\]", re.MULTILINE)
_VIRTUAL_REGS = re.compile(r"^\s*\.reg\s+\.\w+\s+%\w+<(\d+)>;", re.MULTILINE)


@dataclass(frozen=True)
class NvResources:
    """One kernel's resources; ``registers`` and the spill fields are None without ptxas."""

    kernel: str
    arch: str
    block_threads: int
    static_shared_bytes: int
    dynamic_shared_bytes: int
    registers: int | None
    spill_store_bytes: int | None
    spill_load_bytes: int | None
    stack_bytes: int | None
    virtual_registers: int

    @classmethod
    def of(cls, ptx_text: str, kernel: str, arch: str, block_threads: int, dynamic_shared_bytes: int,
           ptxas: str | None = None) -> NvResources:
        """Ask ptxas (``-v``) when it is found; else read what the PTX declares."""
        virtual = sum(int(n) for n in _VIRTUAL_REGS.findall(ptx_text))
        static = sum(int(n) for n in _STATIC_SHARED.findall(ptx_text))
        try:
            report = ptx.ptxas_resources(ptx_text, arch, ptxas)[kernel]
        except ptx.PtxasNotFound:
            return cls(kernel, arch, block_threads, static, dynamic_shared_bytes, None, None, None, None, virtual)
        return cls(kernel, arch, block_threads, report.shared_bytes, dynamic_shared_bytes, report.registers,
                   report.spill_store_bytes, report.spill_load_bytes, report.stack_bytes, virtual)

    @property
    def spills(self) -> bool:
        """Whether ptxas spilled registers to local memory (False when unknown)."""
        return bool(self.spill_store_bytes or self.spill_load_bytes)

    def table(self) -> str:
        """A small aligned text table, as the AMDGPU one of ``tdslc resources``."""
        unknown = "unknown (ptxas not found)"
        rows = [("kernel", f"{self.kernel} ({self.arch}, warp32, block {self.block_threads})")]
        if self.registers is None:
            virtual = (f"{unknown}; the PTX names {self.virtual_registers} virtual registers, which ptxas "
                       "allocates onto at most 255")
            rows += [("registers", virtual),
                     ("spills", unknown), ("stack", unknown)]
        else:
            rows += [("registers", f"{self.registers} per thread"),
                     ("spills", f"{self.spill_store_bytes} B stored, {self.spill_load_bytes} B loaded"),
                     ("stack", f"{self.stack_bytes} B per thread")]
        rows += [("shared", f"{self.static_shared_bytes} B static + {self.dynamic_shared_bytes} B dynamic"),
                 ("occupancy", "not computed (cudaOccupancyMaxActiveBlocksPerMultiprocessor on the GPU)")]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
