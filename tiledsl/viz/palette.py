"""Colours for owner maps: one colour per owner (block, thread or op), grey for "nobody".

Two palettes:

- ``qualitative(n)``: ``n`` unrelated owners (blocks of the grid, ops).  Up to 9 owners get the
  Tableau colours; more get hues spaced by the golden angle, with the lightness cycling over three
  levels so that owners next to each other in id order never look alike.  Distinct for any ``n``
  up to 64; beyond that the pictures let colours repeat and say so in the legend.
- ``grouped(groups, per_group)``: owners in groups (the lanes of each wave).  Each group gets its
  own band of hues; inside the band the lightness cycles with the member index and the hue steps
  every four members, so neighbouring lanes differ in lightness and far-apart lanes in hue.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

EMPTY: RGB = (224, 224, 224)
"""The colour of an element nobody owns (never written, held by no thread)."""

PADDING: RGB = (255, 255, 255)
"""The colour of cells that are no element (the end of a wrapped 1-D array)."""

MARK: RGB = (200, 0, 0)
"""The colour of highlighted cells (double writes, conflicts)."""

# Tableau 10 without its grey (grey means "nobody" here).
_TABLEAU = ("4e79a7", "f28e2b", "e15759", "76b7b2", "59a14f", "edc948", "b07aa1", "ff9da7", "9c755f")

_GOLDEN = 0.6180339887498949
_LIGHTNESS = (0.50, 0.34, 0.68)
_LANE_LIGHTNESS = (0.36, 0.50, 0.64, 0.77)

MAX_DISTINCT = 64
"""Up to this many owners, every owner gets its own colour."""


def _hls(h: float, lightness: float, s: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, s)
    return (round(r * 255), round(g * 255), round(b * 255))


def qualitative(n: int) -> np.ndarray:
    """``[n, 3]`` uint8 colours for ``n`` unrelated owners, all distinct for ``n <= 64``."""
    if n <= len(_TABLEAU):
        colors = [tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) for c in _TABLEAU[:n]]
    else:
        colors = [_hls(i * _GOLDEN, _LIGHTNESS[i % 3], 0.70 if i % 2 else 0.55) for i in range(n)]
    return np.array(colors, dtype=np.uint8).reshape(n, 3)


def grouped(groups: int, per_group: int) -> np.ndarray:
    """``[groups * per_group, 3]`` uint8 colours: owner ``g * per_group + j`` is member ``j`` of group ``g``.

    Hue tells the group (the wave), lightness and a small hue step the member (the lane).
    """
    # The hues stop short of a full turn so that the last group does not meet the first one.
    wheel = 0.92
    band = 0.85 * wheel / groups
    levels = len(_LANE_LIGHTNESS)
    steps = max(1, -(-per_group // levels))
    colors = []
    for g in range(groups):
        start = wheel * (g + 0.5) / groups - band / 2
        for j in range(per_group):
            hue = start + band * ((j // levels) + 0.5) / steps
            colors.append(_hls(hue, _LANE_LIGHTNESS[j % levels], 0.68))
    return np.array(colors, dtype=np.uint8).reshape(groups * per_group, 3)


@dataclass(frozen=True)
class Palette:
    """Owner id -> colour.  Ids past the end wrap around (only when there are more than 64 owners)."""

    colors: np.ndarray
    empty: RGB = EMPTY

    def __len__(self) -> int:
        return len(self.colors)

    def color(self, owner: int) -> RGB:
        """The colour of one owner (``EMPTY`` for -1)."""
        if owner < 0 or not len(self.colors):
            return self.empty
        r, g, b = (int(c) for c in self.colors[owner % len(self.colors)])
        return (r, g, b)

    def colorize(self, owners: np.ndarray) -> np.ndarray:
        """``owners`` (any shape, -1 = nobody, -2 = no element: padding) as uint8 RGB, ``owners.shape + (3,)``."""
        out = np.empty(owners.shape + (3,), dtype=np.uint8)
        out[...] = self.empty
        out[owners < -1] = PADDING
        held = owners >= 0
        if len(self.colors):
            out[held] = self.colors[owners[held] % len(self.colors)]
        return out


def text_color(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background``."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
