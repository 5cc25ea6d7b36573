"""A picture as a list of shapes, and the two writers that turn it into a PNG or an SVG file.

``tiledsl.viz.render`` lays figures out as ``Scene`` primitives (cell rasters, rectangles, lines,
text) in pixel coordinates; ``write_scene`` picks the format from the file suffix.  PNG goes
through Pillow (an optional dependency: ``pip install tiledsl[pictures]``); SVG is written by hand
and needs nothing.  Files are written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from tiledsl.viz.palette import RGB

Anchor = Literal["start", "middle", "end"]

FONT_FAMILY = "DejaVu Sans, Verdana, Arial, sans-serif"
CHAR_WIDTH = 0.6
"""Width of an average character as a fraction of the font size; the layout uses it for both formats."""


class PictureError(Exception):
    """A picture that cannot be written (unknown suffix, Pillow missing); worded for the user."""


@dataclass(frozen=True)
class Raster:
    """A grid of square cells: ``colors[row, col]`` fills a ``cell`` x ``cell`` pixel square at (x, y)."""

    x: int
    y: int
    cell: int
    colors: np.ndarray  # [rows, cols, 3] uint8


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: RGB | None = None
    stroke: RGB | None = None
    width: int = 1


@dataclass(frozen=True)
class Line:
    x0: float
    y0: float
    x1: float
    y1: float
    color: RGB
    width: int = 1


@dataclass(frozen=True)
class Text:
    """One line of text, vertically centred on ``y``; ``anchor`` says which end of it is at ``x``."""

    x: float
    y: float
    text: str
    size: int
    color: RGB = (0, 0, 0)
    anchor: Anchor = "start"
    bold: bool = False


@dataclass
class Scene:
    width: int
    height: int
    items: list[Raster | Rect | Line | Text] = field(default_factory=list)
    background: RGB = (255, 255, 255)

    def add(self, item: Raster | Rect | Line | Text) -> None:
        self.items.append(item)


CHAR_WIDTH_BOLD = 0.68


def text_width(text: str, size: int, bold: bool = False) -> float:
    """The width the layout reserves for ``text`` at ``size`` (an estimate, the same for PNG and SVG)."""
    return len(text) * size * (CHAR_WIDTH_BOLD if bold else CHAR_WIDTH)


def fit_text(text: str, size: int, width: float, bold: bool = False) -> str:
    """``text`` cut (with an ellipsis) to about ``width`` pixels."""
    room = int(width / (size * (CHAR_WIDTH_BOLD if bold else CHAR_WIDTH)) + 1e-6)
    if len(text) <= room:
        return text
    return text[:max(room - 1, 0)] + "…"


# ---------------------------------------------------------------- PNG

def _hex(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


@lru_cache(maxsize=32)
def _font(size: int, bold: bool) -> Any:
    from PIL import ImageFont
    for name in (("DejaVuSans-Bold.ttf", "DejaVuSans.ttf") if bold else ("DejaVuSans.ttf",)):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def png_bytes(scene: Scene) -> bytes:
    """The scene as PNG bytes (needs Pillow)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise PictureError("PNG pictures need Pillow: pip install 'tiledsl[pictures]' "
                           "(or write an .svg file, which needs nothing)") from None
    canvas = np.empty((scene.height, scene.width, 3), dtype=np.uint8)
    canvas[...] = scene.background
    for item in scene.items:
        if isinstance(item, Raster):
            pixels = np.repeat(np.repeat(item.colors, item.cell, axis=0), item.cell, axis=1)
            h = min(pixels.shape[0], scene.height - item.y)
            w = min(pixels.shape[1], scene.width - item.x)
            canvas[item.y:item.y + h, item.x:item.x + w] = pixels[:h, :w]
    image = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(image)
    for item in scene.items:
        if isinstance(item, Rect):
            draw.rectangle((item.x, item.y, item.x + item.w - 1, item.y + item.h - 1),
                           fill=item.fill, outline=item.stroke, width=item.width if item.stroke else 0)
        elif isinstance(item, Line):
            draw.line((item.x0, item.y0, item.x1, item.y1), fill=item.color, width=item.width)
        elif isinstance(item, Text):
            font = _font(item.size, item.bold)
            left, top, right, bottom = draw.textbbox((0, 0), item.text, font=font)
            shift = {"start": 0.0, "middle": (right - left) / 2, "end": float(right - left)}[item.anchor]
            draw.text((item.x - shift - left, item.y - (top + bottom) / 2), item.text, fill=item.color, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# ---------------------------------------------------------------- SVG

def _svg_raster(r: Raster) -> list[str]:
    """One rect per run of equal colours along a row: tiles are runs, so this stays small."""
    rows, cols, _ = r.colors.shape
    out = []
    packed = (r.colors[..., 0].astype(np.int32) << 16) | (r.colors[..., 1].astype(np.int32) << 8) | r.colors[..., 2]
    for i in range(rows):
        row = packed[i]
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        ends = np.r_[starts[1:], cols]
        y = r.y + i * r.cell
        for s, e in zip(starts, ends):
            out.append(f'<rect x="{r.x + s * r.cell}" y="{y}" width="{(e - s) * r.cell}" height="{r.cell}" '
                       f'fill="#{int(row[s]):06x}"/>')
    return out


def svg_bytes(scene: Scene) -> bytes:
    """The scene as a standalone SVG document."""
    lines = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width}" height="{scene.height}" '
             f'viewBox="0 0 {scene.width} {scene.height}" font-family={quoteattr(FONT_FAMILY)} '
             f'shape-rendering="crispEdges">'),
             f'<rect width="{scene.width}" height="{scene.height}" fill="{_hex(scene.background)}"/>']
    for item in scene.items:
        if isinstance(item, Raster):
            lines.extend(_svg_raster(item))
        elif isinstance(item, Rect):
            fill = _hex(item.fill) if item.fill else "none"
            stroke = f' stroke="{_hex(item.stroke)}" stroke-width="{item.width}"' if item.stroke else ""
            lines.append(f'<rect x="{item.x:g}" y="{item.y:g}" width="{item.w:g}" height="{item.h:g}" '
                         f'fill="{fill}"{stroke}/>')
        elif isinstance(item, Line):
            lines.append(f'<line x1="{item.x0:g}" y1="{item.y0:g}" x2="{item.x1:g}" y2="{item.y1:g}" '
                         f'stroke="{_hex(item.color)}" stroke-width="{item.width}"/>')
        elif isinstance(item, Text):
            weight = ' font-weight="bold"' if item.bold else ""
            lines.append(f'<text x="{item.x:g}" y="{item.y:g}" font-size="{item.size}" fill="{_hex(item.color)}" '
                         f'text-anchor="{item.anchor}" dominant-baseline="central"{weight}>'
                         f'{escape(item.text)}</text>')
    lines.append("</svg>")
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------- files

_WRITERS = {".png": png_bytes, ".svg": svg_bytes}


def scene_bytes(scene: Scene, suffix: str) -> bytes:
    """The scene encoded for a file ending in ``suffix`` (``.png`` or ``.svg``)."""
    writer = _WRITERS.get(suffix.lower())
    if writer is None:
        raise PictureError(f"cannot draw a '{suffix or '(no suffix)'}' file: the output must end in .png or .svg")
    return writer(scene)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, renamed into place."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise PictureError(f"cannot write '{target}': directory '{directory}' does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a picture is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_scene(scene: Scene, path: str | os.PathLike) -> None:
    """Write ``scene`` as PNG or SVG according to the suffix of ``path``."""
    write_atomic(path, scene_bytes(scene, Path(path).suffix))
