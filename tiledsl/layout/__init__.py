"""Thread tiles as data: layout specs (source text), ``bind`` and the concrete ``Layout``."""

from __future__ import annotations

from tiledsl.layout.bind import bind, natural_extent
from tiledsl.layout.layout import Layout
from tiledsl.layout.parse import parse_layout_spec
from tiledsl.layout.spec import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    LayoutError,
    LayoutSpec,
    LayoutSyntaxError,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
)

__all__ = ["BlockedSpec", "DotOperandSpec", "ExpandSpec", "Layout", "LayoutError", "LayoutSpec", "LayoutSyntaxError",
           "MmaSpec", "ReplicatedSpec", "SliceSpec", "bind", "natural_extent", "parse_layout_spec"]
