"""Heat maps of owner arrays: figures of one or more panels with ticks, outlines and a legend.

A ``HeatMap`` is a 2-D integer array of owners (-1 = nobody) with a palette and annotations; a
``Figure`` puts panels side by side under a title, with one legend on the right.  ``render``
lays the figure out for a 1080p screen (at most 1900 x 1000 pixels) and writes a PNG or an SVG by
the suffix of the path.

Cells shrink with the array, down to one pixel; an array larger than its share of the canvas is
sampled (every k-th row and column, k a power of two, said in the panel title).  Cell labels are
drawn only where they fit; tick labels follow the original row and column indices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiledsl.viz.palette import MARK, RGB, Palette, text_color
from tiledsl.viz.scene import Line, Raster, Rect, Scene, Text, fit_text, scene_bytes, text_width, write_atomic

MAX_WIDTH = 1900
MAX_HEIGHT = 1000
MARGIN = 16
GAP = 28
MAX_CELL = 56

TITLE_SIZE = 18
NOTE_SIZE = 13
PANEL_TITLE_SIZE = 13
TICK_SIZE = 11
LEGEND_SIZE = 12
LEGEND_LINE = 18
STRIP_WIDTH = 64
MIN_LABEL_SIZE = 8
MIN_PANEL = 240

_INK: RGB = (30, 30, 30)
_TICK_INK: RGB = (90, 90, 90)
_GRID_INK: RGB = (70, 70, 70)
_SEPARATOR: RGB = (255, 255, 255)


@dataclass
class HeatMap:
    """One panel: ``owners[row, col]`` (-1 = nobody) drawn in the colours of ``palette``.

    ``labels(row, col)`` gives a cell's text (lines split on newlines), drawn where cells are large
    enough.  ``row_index``/``col_index`` are the original indices of the rows and columns (for the
    tick labels; default 0, 1, ...).  ``grid`` draws lines every (rows, cols) original indices (tile
    boundaries); ``outline`` is an integer array of the same shape whose changes between
    neighbouring cells are drawn as dark borders (the regions of a wave, of a block); ``marks``
    flags cells drawn with a red cross (double writes).
    """

    owners: np.ndarray
    palette: Palette
    title: str = ""
    labels: Callable[[int, int], str] | None = None
    row_index: np.ndarray | None = None
    col_index: np.ndarray | None = None
    grid: tuple[int, int] | None = None
    outline: np.ndarray | None = None
    marks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.owners = np.asarray(self.owners)
        if self.owners.ndim != 2:
            raise ValueError(f"a heat map draws a 2-D array, got shape {self.owners.shape}")
        for name in ("outline", "marks"):
            extra = getattr(self, name)
            if extra is not None and np.shape(extra) != self.owners.shape:
                raise ValueError(f"{name} has shape {np.shape(extra)}, the owners {self.owners.shape}")
        rows, cols = self.owners.shape
        self.row_index = np.arange(rows) if self.row_index is None else np.asarray(self.row_index)
        self.col_index = np.arange(cols) if self.col_index is None else np.asarray(self.col_index)


@dataclass(frozen=True)
class LegendEntry:
    """A swatch (one colour, or a strip of a group's colours) and its text; ``marked`` adds the red cross."""

    text: str
    colors: tuple[RGB, ...]
    marked: bool = False


@dataclass
class LegendSection:
    title: str
    entries: list[LegendEntry] = field(default_factory=list)


@dataclass
class Figure:
    """Panels side by side under a title and note lines, with a legend shared by all panels."""

    title: str
    panels: list[HeatMap]
    legend: list[LegendSection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Placed:
    """A panel with its cell size, sampling stride and position on the canvas."""

    panel: HeatMap
    cell: int
    stride: int
    left: float  # room for the row tick labels
    x: float = 0.0
    width: float = 0.0

    @property
    def shown(self) -> tuple[int, int]:
        rows, cols = self.panel.owners.shape
        return -(-rows // self.stride), -(-cols // self.stride)


def _pow2_at_least(x: float) -> int:
    return 1 if x <= 1 else 1 << math.ceil(math.log2(x))


def _tick_room(panel: HeatMap) -> float:
    assert panel.row_index is not None
    widest = max((len(str(int(v))) for v in panel.row_index), default=1)
    return widest * TICK_SIZE * 0.6 + 8


def _cell_sizes(panels: list[HeatMap], lefts: list[float], width: float, height: float) -> list[float]:
    """Cell size (pixels, may be < 1) of each panel.

    Panels share one size where the width decides.  A panel too tall for it gets a smaller one, and
    a narrow panel (a short vector beside a wide tensor) a larger one, so that it is at least
    ``MIN_PANEL`` pixels wide; the others share what is left.
    """
    free_width = width - sum(lefts) - GAP * (len(panels) - 1)
    shapes = [p.owners.shape for p in panels]
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(len(panels)) if i not in fixed]
        if not free:
            break
        room = free_width - sum(shapes[i][1] * s for i, s in fixed.items())
        shared = min(MAX_CELL, max(room, 1.0) / sum(shapes[i][1] for i in free))
        own = {i: min(MAX_CELL, height / shapes[i][0], max(shared, MIN_PANEL / shapes[i][1])) for i in free}
        changed = {i: s for i, s in own.items() if s != shared}
        if not changed:
            return [fixed.get(i, shared) for i in range(len(panels))]
        fixed.update(changed)
    return [fixed[i] for i in range(len(panels))]


def _legend_lines(legend: list[LegendSection], room: float) -> list[tuple[str, LegendEntry | None]]:
    """The legend as lines (section titles and entries), cut to ``room`` pixels with "... n more"."""
    lines: list[tuple[str, LegendEntry | None]] = []
    budget = int(room // LEGEND_LINE)
    sections = [s for s in legend if s.entries]
    needed = sum(1 + len(s.entries) for s in sections)
    over = max(0, needed - budget)
    for s in sections:
        lines.append((s.title, None))
        entries = s.entries
        cut = min(over + 1, len(entries) - 1) if over and len(entries) > 2 else 0
        if cut:
            over -= cut - 1
            entries = entries[:len(entries) - cut]
        lines.extend((e.text, e) for e in entries)
        if cut:
            lines.append((f"… {cut} more", None))
    return lines[:max(budget, 1)]


def _legend_width(legend: list[LegendSection]) -> float:
    widths = [text_width(s.title, LEGEND_SIZE, bold=True) for s in legend if s.entries]
    for s in legend:
        for e in s.entries:
            swatch = STRIP_WIDTH if len(e.colors) > 1 else 14
            widths.append(swatch + 8 + text_width(e.text, LEGEND_SIZE))
    return min(380.0, max(widths, default=0.0))


def layout(fig: Figure) -> Scene:
    """Place the figure's title, panels and legend on a canvas of at most 1900 x 1000 pixels."""
    if not fig.panels:
        raise ValueError("a figure needs at least one panel")
    header = MARGIN + 26 + 18 * len(fig.notes) + 6
    panel_top = 20 + TICK_SIZE + 8  # panel title, then the column ticks
    legend_w = _legend_width(fig.legend)
    width = MAX_WIDTH - 2 * MARGIN - (legend_w + GAP if legend_w else 0)
    height = MAX_HEIGHT - header - panel_top - MARGIN
    lefts = [_tick_room(p) for p in fig.panels]
    placed = []
    for panel, left, size in zip(fig.panels, lefts, _cell_sizes(fig.panels, lefts, width, height)):
        cell, stride = (int(size), 1) if size >= 1 else (1, _pow2_at_least(1 / size))
        placed.append(_Placed(panel, cell, stride, left))

    x = float(MARGIN)
    for p in placed:
        _rows, cols = p.shown
        grid_w = p.left + cols * p.cell
        p.x, p.width = x, max(grid_w, min(text_width(_panel_title(p), PANEL_TITLE_SIZE, bold=True), 300.0))
        x += p.width + GAP
    panels_right = x - GAP
    grid_bottom = header + panel_top + max(p.shown[0] * p.cell for p in placed)

    scene_w = panels_right + (GAP + legend_w if legend_w else 0) + MARGIN
    header_w = max([text_width(fig.title, TITLE_SIZE, bold=True)] + [text_width(n, NOTE_SIZE) for n in fig.notes])
    scene_w = min(MAX_WIDTH, max(scene_w, header_w + 2 * MARGIN, 360))
    lines = _legend_lines(fig.legend, MAX_HEIGHT - header - MARGIN)
    scene_h = min(MAX_HEIGHT, int(max(grid_bottom, header + len(lines) * LEGEND_LINE) + MARGIN))
    scene = Scene(math.ceil(scene_w), scene_h)

    scene.add(Text(MARGIN, MARGIN + 11, fit_text(fig.title, TITLE_SIZE, scene_w - 2 * MARGIN, bold=True),
                   TITLE_SIZE, _INK, bold=True))
    for i, note in enumerate(fig.notes):
        scene.add(Text(MARGIN, MARGIN + 33 + 18 * i, fit_text(note, NOTE_SIZE, scene_w - 2 * MARGIN),
                       NOTE_SIZE, _TICK_INK))
    for p in placed:
        _draw_panel(scene, p, header, panel_top)
    if lines:
        _draw_legend(scene, lines, panels_right + GAP, header, legend_w)
    return scene


def _panel_title(p: _Placed) -> str:
    title = p.panel.title
    if p.stride > 1:
        title += f" (1 in {p.stride} rows and cols shown)"
    return title


def _draw_panel(scene: Scene, p: _Placed, header: float, panel_top: float) -> None:
    panel, cell, k = p.panel, p.cell, p.stride
    assert panel.row_index is not None and panel.col_index is not None
    owners = panel.owners[::k, ::k]
    rows, cols = owners.shape
    gx, gy = round(p.x + p.left), int(header + panel_top)
    scene.add(Text(p.x, header + 9, fit_text(_panel_title(p), PANEL_TITLE_SIZE, p.width, bold=True),
                   PANEL_TITLE_SIZE, _INK, bold=True))

    colors = panel.palette.colorize(owners)
    marks = panel.marks[::k, ::k] if panel.marks is not None else None
    if marks is not None and cell < 6:
        colors[marks] = MARK
    scene.add(Raster(gx, gy, cell, colors))
    if cell >= 10:
        for c in range(1, cols):
            scene.add(Line(gx + c * cell, gy, gx + c * cell, gy + rows * cell - 1, _SEPARATOR))
        for r in range(1, rows):
            scene.add(Line(gx, gy + r * cell, gx + cols * cell - 1, gy + r * cell, _SEPARATOR))
    if cell >= 18 and k == 1 and panel.labels is not None:
        _draw_labels(scene, panel, colors, gx, gy, cell)
    if marks is not None and cell >= 18:
        # A red frame keeps the cell's label readable; smaller cells get a cross.
        for r, c in np.argwhere(marks):
            scene.add(Rect(gx + c * cell + 1, gy + r * cell + 1, cell - 2, cell - 2, stroke=MARK,
                           width=3 if cell >= 24 else 2))
    elif marks is not None and cell >= 6:
        w = 2 if cell >= 12 else 1
        for r, c in np.argwhere(marks):
            x0, y0 = gx + c * cell + 2, gy + r * cell + 2
            scene.add(Line(x0, y0, x0 + cell - 5, y0 + cell - 5, MARK, w))
            scene.add(Line(x0, y0 + cell - 5, x0 + cell - 5, y0, MARK, w))
    if panel.grid is not None:
        _draw_grid(scene, panel.grid, panel.row_index[::k], panel.col_index[::k], gx, gy, cell, k)
    if panel.outline is not None and cell >= 2:
        _draw_outline(scene, np.asarray(panel.outline)[::k, ::k], gx, gy, cell)
    scene.add(Rect(gx - 1, gy - 1, cols * cell + 2, rows * cell + 2, stroke=_TICK_INK))
    _draw_ticks(scene, panel.row_index[::k], panel.col_index[::k], gx, gy, cell)


def _draw_labels(scene: Scene, panel: HeatMap, colors: np.ndarray, gx: int, gy: int, cell: int) -> None:
    assert panel.labels is not None
    for r, c in np.argwhere(panel.owners >= 0):
        lines = panel.labels(int(r), int(c)).split("\n")
        widest = max(len(line) for line in lines)
        size = int(min(12, (cell - 4) / (1.25 * len(lines)), (cell - 4) / (0.6 * max(widest, 1))))
        if size < MIN_LABEL_SIZE:
            continue
        ink = text_color(tuple(int(v) for v in colors[r, c]))  # type: ignore[arg-type]
        for i, line in enumerate(lines):
            y = gy + r * cell + cell / 2 + (i - (len(lines) - 1) / 2) * size * 1.2
            scene.add(Text(gx + c * cell + cell / 2, y, line, size, ink, anchor="middle"))


def _draw_grid(scene: Scene, grid: tuple[int, int], row_index: np.ndarray, col_index: np.ndarray,
               gx: int, gy: int, cell: int, stride: int) -> None:
    rows, cols = len(row_index), len(col_index)
    every_r, every_c = grid
    if every_r > 0 and every_r / stride * cell >= 4:
        for r in range(1, rows):
            if row_index[r] % every_r == 0:
                scene.add(Line(gx, gy + r * cell, gx + cols * cell, gy + r * cell, _GRID_INK))
    if every_c > 0 and every_c / stride * cell >= 4:
        for c in range(1, cols):
            if col_index[c] % every_c == 0:
                scene.add(Line(gx + c * cell, gy, gx + c * cell, gy + rows * cell, _GRID_INK))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the runs of True in a 1-D bool array."""
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _draw_outline(scene: Scene, outline: np.ndarray, gx: int, gy: int, cell: int) -> None:
    width = 2 if cell >= 4 else 1
    for c in range(outline.shape[1] - 1):
        for r0, r1 in _runs(outline[:, c] != outline[:, c + 1]):
            x = gx + (c + 1) * cell
            scene.add(Line(x, gy + r0 * cell, x, gy + r1 * cell, _INK, width))
    for r in range(outline.shape[0] - 1):
        for c0, c1 in _runs(outline[r, :] != outline[r + 1, :]):
            y = gy + (r + 1) * cell
            scene.add(Line(gx + c0 * cell, y, gx + c1 * cell, y, _INK, width))


def _tick_every(cell: int, room: float) -> int:
    """Label every m-th cell, m a power of two, so that labels are at least ``room`` pixels apart."""
    return _pow2_at_least(room / cell)


def _draw_ticks(scene: Scene, row_index: np.ndarray, col_index: np.ndarray, gx: int, gy: int, cell: int) -> None:
    widest = max(len(str(int(v))) for v in col_index)
    every_c = _tick_every(cell, widest * TICK_SIZE * 0.6 + 6)
    for c in range(0, len(col_index), every_c):
        scene.add(Text(gx + c * cell + cell / 2, gy - 9, str(int(col_index[c])), TICK_SIZE, _TICK_INK,
                       anchor="middle"))
    every_r = _tick_every(cell, TICK_SIZE + 4)
    for r in range(0, len(row_index), every_r):
        scene.add(Text(gx - 4, gy + r * cell + cell / 2, str(int(row_index[r])), TICK_SIZE, _TICK_INK,
                       anchor="end"))


def _draw_legend(scene: Scene, lines: list[tuple[str, LegendEntry | None]], x: float, y: float,
                 width: float) -> None:
    for i, (text, entry) in enumerate(lines):
        cy = y + i * LEGEND_LINE + LEGEND_LINE / 2
        if entry is None:
            bold = not text.startswith("…")
            scene.add(Text(x, cy, fit_text(text, LEGEND_SIZE, width, bold), LEGEND_SIZE, _INK, bold=bold))
            continue
        swatch = _draw_swatch(scene, entry, x, cy)
        scene.add(Text(x + swatch + 8, cy, fit_text(text, LEGEND_SIZE, width - swatch - 8), LEGEND_SIZE, _INK))


def _draw_swatch(scene: Scene, entry: LegendEntry, x: float, cy: float) -> float:
    top = cy - 7
    if len(entry.colors) == 1:
        scene.add(Rect(x, top, 14, 14, fill=entry.colors[0], stroke=_TICK_INK))
        width = 14.0
    else:
        step = max(1, STRIP_WIDTH // len(entry.colors))
        shown = entry.colors[:STRIP_WIDTH]
        colors = np.array(shown, dtype=np.uint8).reshape(1, len(shown), 3)
        scene.add(Raster(int(x), int(top), 1, np.repeat(np.repeat(colors, step, axis=1), 14, axis=0)))
        width = float(step * len(shown))
        scene.add(Rect(x - 1, top - 1, width + 2, 16, stroke=_TICK_INK))
    if entry.marked:
        scene.add(Line(x + 2, top + 2, x + 12, top + 12, MARK, 2))
        scene.add(Line(x + 2, top + 12, x + 12, top + 2, MARK, 2))
    return width


def render(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` to ``path`` as PNG or SVG (by the suffix), atomically."""
    write_atomic(path, figure_bytes(fig, Path(path).suffix))


def figure_bytes(fig: Figure, suffix: str) -> bytes:
    """``fig`` encoded as the file type of ``suffix`` (``.png`` or ``.svg``)."""
    return scene_bytes(layout(fig), suffix)


def heat_map(owners: np.ndarray, palette: Palette, path: str | os.PathLike, *, title: str = "",
             legend: list[LegendSection] | None = None, notes: list[str] | None = None,
             **panel: object) -> None:
    """Draw one owner array as a one-panel figure; ``panel`` takes the other ``HeatMap`` fields."""
    fig = Figure(title, [HeatMap(owners, palette, **panel)], legend or [], notes or [])  # type: ignore[arg-type]
    render(fig, path)
