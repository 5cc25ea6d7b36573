"""Targets as data: one ``Target`` per GPU, with its matrix instructions and their lane layouts."""

from __future__ import annotations

from tiledsl.targets.amdgpu import GFX90A, GFX942, GFX1030, GFX1100
from tiledsl.targets.arch import AmdArch, NvArch
from tiledsl.targets.generic import GENERIC
from tiledsl.targets.matrix import MATRIX_INSTRS, MatrixInstr, fma_fallback
from tiledsl.targets.nvidia import SM_80, SM_90, SM_90A
from tiledsl.targets.target import CROSS_LANE_OPS, Target

TARGETS: dict[str, Target] = {t.name: t for t in (GFX90A, GFX942, GFX1100, GFX1030, SM_80, SM_90, SM_90A, GENERIC)}
#: The targets an LLVM backend compiles for, by name.
NATIVE_TARGETS: dict[str, Target] = {n: t for n, t in TARGETS.items() if t.native}


class UnknownTargetError(KeyError):
    """Raised by ``get_target`` for a name that is not in ``TARGETS``."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and show it in quotes.
        return str(self.args[0]) if self.args else ""


def get_target(name: str) -> Target:
    """The target called ``name`` (``NAME-fma``: the same machine without matrix instructions);
    raises ``UnknownTargetError`` listing the known names."""
    base, fma = (name[:-4], True) if name.endswith("-fma") else (name, False)
    t = TARGETS.get(base)
    if t is None or fma and not t.matrix_instrs:
        known = ", ".join(TARGETS)
        raise UnknownTargetError(f"unknown target '{name}'; known targets: {known}")
    return t.without_matrix() if fma else t


__all__ = ["CROSS_LANE_OPS", "MATRIX_INSTRS", "NATIVE_TARGETS", "TARGETS", "AmdArch", "MatrixInstr", "NvArch",
           "Target", "UnknownTargetError", "fma_fallback", "get_target"]
