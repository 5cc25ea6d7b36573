"""Pictures of the tiling (``tdslc tiles``): who owns, reads or writes each element, as PNG or SVG.

- ``trace``: ``AccessTrace``, the block interpreter's access recorder, and ``record_block_level``;
- ``pictures``: what to draw (thread tiles of values, block accesses of tensors, LDS accesses,
  overviews), each as a ``Picture`` with its text summary;
- ``render`` / ``scene`` / ``palette``: heat maps, their layout on the canvas, the PNG (Pillow)
  and SVG writers, and the colours;
- ``cli_tiles``: the ``tiles`` subcommand.

PNG output needs Pillow (``pip install 'tiledsl[pictures]'``); SVG needs nothing.
"""

from __future__ import annotations

from tiledsl.viz.pictures import (
    LdsAccesses,
    Picture,
    lds_accesses_picture,
    lds_picture,
    overview_picture,
    tensor_access_picture,
    text_summary,
    value_picture,
)
from tiledsl.viz.render import Figure, HeatMap, LegendEntry, LegendSection, render
from tiledsl.viz.scene import PictureError
from tiledsl.viz.trace import AccessTrace, record_block_level

__all__ = ["AccessTrace", "Figure", "HeatMap", "LdsAccesses", "LegendEntry", "LegendSection", "Picture",
           "PictureError", "lds_accesses_picture", "lds_picture", "overview_picture", "record_block_level",
           "render", "tensor_access_picture", "text_summary", "value_picture"]
