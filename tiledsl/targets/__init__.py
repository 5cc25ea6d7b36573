"""Targets as data: one ``Target`` per GPU, with its matrix instructions and their lane layouts."""

from __future__ import annotations

from tiledsl.targets.amdgpu import GFX90A, GFX942, GFX1100
from tiledsl.targets.generic import GENERIC
from tiledsl.targets.matrix import MatrixInstr, fma_fallback
from tiledsl.targets.nvidia import SM_80, SM_90, SM_90A
from tiledsl.targets.target import CROSS_LANE_OPS, Target

TARGETS: dict[str, Target] = {t.name: t for t in (GFX90A, GFX942, GFX1100, SM_80, SM_90, SM_90A, GENERIC)}


class UnknownTargetError(KeyError):
    """Raised by ``get_target`` for a name that is not in ``TARGETS``."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and show it in quotes.
        return str(self.args[0]) if self.args else ""


def get_target(name: str) -> Target:
    """The target called ``name``; raises ``UnknownTargetError`` listing the known names."""
    try:
        return TARGETS[name]
    except KeyError:
        known = ", ".join(TARGETS)
        raise UnknownTargetError(f"unknown target '{name}'; known targets: {known}") from None


__all__ = ["CROSS_LANE_OPS", "TARGETS", "MatrixInstr", "Target", "UnknownTargetError", "fma_fallback",
           "get_target"]
