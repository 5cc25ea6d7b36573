"""Native compilation: thread IR → LLVM (shared lowering) → code object / PTX.

    artifact = program.compile(target="gfx942")
    artifact.llvm_ir, artifact.asm, artifact.binary, artifact.resources, artifact.meta

``meta`` tells a host program how to launch the kernel: the symbol, the kernel
arguments in order with byte offsets and sizes (tensor pointers, scalars, then the
run-time sizes of the symbolic dims), the block size, the grid as expressions of the
dims (and of the i32 scalar parameters the grid reads), and the dynamic LDS bytes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tiledsl.diagnostics import TdslError

if TYPE_CHECKING:
    from tiledsl.ir import ops
    from tiledsl.ir.core import Op, Value
    from tiledsl.targets import Target

# This module imports the compiler lazily: an Artifact read back from the compile cache
# (``tiledsl.cache``) is this class, and a cache hit must not pay for importing the compiler.
#: Bytes of each kernel argument, by kind or scalar dtype, as the ABI passes it (``llvm.lower``): an
#: i1 goes as an i32, an fp8 as its bit pattern, bf16 as its 16 bits; a stride as an i64.
_ARG_SIZE = {"ptr": 8, "f32": 4, "i32": 4, "f16": 2, "bf16": 2, "i1": 4, "f8e4m3": 1, "f8e5m2": 1, "i8": 1, "u8": 1,
             "i16": 2, "u32": 4, "i64": 8}


def grid_expressions(kernel: ops.KernelOp) -> list[str]:
    """The grid extents as C/Python expressions of the run-time dims and i32 scalar parameters
    (by name)."""
    from tiledsl.ir import ops
    text: dict[int, str] = {}
    symbols = {"add": "+", "sub": "-", "mul": "*", "floordiv": "/", "mod": "%"}

    def expr(v: Value) -> str:
        return text[id(v)]

    for op in kernel.grid.ops:
        if isinstance(op, ops.YieldOp):
            return [expr(v) for v in op.operands]
        if isinstance(op, ops.ConstOp):
            text[id(op.result)] = str(op.attrs["value"])
        elif isinstance(op, (ops.DimOp, ops.ScalarArgOp)):
            text[id(op.result)] = op.attrs["name"]
        elif op.name in symbols:
            a, b = op.operands
            text[id(op.result)] = f"({expr(a)} {symbols[op.name]} {expr(b)})"
        elif op.name in ("max", "min"):
            a, b = op.operands
            text[id(op.result)] = f"{op.name}({expr(a)}, {expr(b)})"
        else:
            raise TdslError(op.loc, f"the grid uses '{op.name}', which launch metadata cannot express")
    return []


@dataclass
class KernelArgInfo:
    name: str
    kind: str          # "tensor" | "scalar" | "dim" | "stride"
    dtype: str
    offset: int
    size: int
    axis: int | None = None     # the dim of a "stride" argument


@dataclass
class Artifact:
    """A kernel compiled for one target. ``binary`` is the linked HSA code object on
    AMDGPU and the PTX text (bytes) on NVPTX (``cubin()`` runs ptxas when present)."""

    target: str
    name: str
    compiled: Any
    args: list[KernelArgInfo]
    block_threads: int
    lds_bytes: int
    grid: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    thread_kernel: Op | None = None
    tensor_params: list[Any] = field(default_factory=list)
    #: The target record it was compiled for (``target`` is its name); None when read back from
    #: the compile cache, which keeps ``backend`` instead.
    record: Target | None = None
    backend: str = ""

    def launcher(self) -> Any:
        """A callable that launches this kernel on an NVIDIA GPU (sm_80/sm_90 artifacts)."""
        if self.is_amd:
            raise TdslError(None, "launching is supported for NVIDIA targets only (no AMD GPU here)")
        from tiledsl.runtime.cuda import CudaKernel
        return CudaKernel(self)

    @property
    def llvm_ir(self) -> str:
        return self.compiled.llvm_ir

    @property
    def asm(self) -> str:
        return self.compiled.asm

    @property
    def is_amd(self) -> bool:
        if self.record is not None:
            return self.record.backend == "amdgpu"
        if self.backend:
            return self.backend == "amdgpu"
        from tiledsl.targets import get_target
        return get_target(self.target).backend == "amdgpu"

    @cached_property
    def binary(self) -> bytes:
        if self.is_amd:
            return self.compiled.link()
        return self.compiled.asm.encode()

    @property
    def object(self) -> bytes:
        return self.compiled.object

    def cubin(self) -> bytes:
        return self.compiled.cubin()

    def image(self) -> bytes:
        """What the CUDA driver loads: the cubin where ptxas is installed (no JIT when loading; kept
        in the compile cache with the rest of the artifact), else the PTX (also when that ptxas
        rejects it: one older than the PTX ISA LLVM writes; the driver's JIT may know it)."""
        from tiledsl.backend_nvptx.ptx import PtxasError, PtxasNotFound
        try:
            return self.cubin()
        except (PtxasNotFound, PtxasError):
            return self.asm.encode()

    @cached_property
    def resources(self) -> Any:
        if self.is_amd:
            return self.compiled.resources(dynamic_lds_bytes=0)
        from tiledsl.backend_nvptx.ptx import ptxas_resources
        return ptxas_resources(self.compiled.asm, self.target)

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "kernel": self.name, "target": self.target,
            "args": [{k: v for k, v in dataclasses.asdict(a).items() if v is not None} for a in self.args],
            "kernarg_bytes": max((a.offset + a.size for a in self.args), default=0),
            "block": [self.block_threads, 1, 1], "grid": self.grid,
            "dynamic_lds_bytes": 0 if self.is_amd else self.lds_bytes,
            "static_lds_bytes": self.lds_bytes if self.is_amd else 0,
            "params": self.params,
        }

    def meta_json(self) -> str:
        return json.dumps(self.meta, indent=2) + "\n"


def _layout_args(lowered_args: list[Any]) -> list[KernelArgInfo]:
    out, offset = [], 0
    for a in lowered_args:
        size = _ARG_SIZE["ptr" if a.kind == "tensor" else a.dtype]
        offset = (offset + size - 1) // size * size
        out.append(KernelArgInfo(a.name, a.kind, a.dtype, offset, size, a.axis))
        offset += size
    return out


def artifact(program: Any, target: Target, lowered: Any, compiled: Any) -> Artifact:
    """The Artifact of a lowered and compiled kernel (the ``llvm`` stage's result)."""
    tk = lowered.kernel
    return Artifact(target.name, lowered.name, compiled, _layout_args(lowered.args), lowered.block_threads,
                    lowered.lds_bytes, grid_expressions(tk), dict(tk.attrs["params"]), tk,
                    list(program.tensor_params), target, target.backend)


def compile_program(program: Any, target: str | Target, matrix: bool = True, opt: int = 3,
                    strided: frozenset[str] = frozenset()) -> Artifact:
    """Compile ``program`` for ``target`` (a native target's name or record); ``matrix=False``
    computes ``dot`` with FMAs (AMDGPU); ``strided`` names the tensors whose strides are kernel
    arguments (views contiguous in their last dim, see ``tiledsl.llvm.lower``)."""
    from tiledsl.stages import Options, run_until
    from tiledsl.targets import get_target
    record = get_target(target) if isinstance(target, str) else target
    if not matrix:
        if record.backend != "amdgpu":
            raise TdslError(None, "--no-matrix-cores applies to AMDGPU targets")
        record = record.without_matrix()
    return run_until(program, "llvm", record, Options(opt=opt, strided=frozenset(strided)))
