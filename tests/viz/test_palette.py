"""Colours: every owner its own colour up to 64 owners, grey for nobody, white for padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiledsl.viz.palette import EMPTY, MAX_DISTINCT, PADDING, Palette, grouped, qualitative, text_color


def _distinct(colors: np.ndarray) -> int:
    return len({tuple(int(v) for v in c) for c in colors})


@given(st.integers(1, MAX_DISTINCT))
def test_qualitative_colours_are_distinct_and_not_grey(n: int) -> None:
    colors = qualitative(n)
    assert colors.shape == (n, 3)
    assert _distinct(colors) == n
    assert EMPTY not in {tuple(int(v) for v in c) for c in colors}


@pytest.mark.parametrize(("groups", "per_group"), [(1, 64), (2, 32), (4, 16), (8, 8), (4, 64), (16, 64), (4, 32)])
def test_grouped_colours_are_distinct(groups: int, per_group: int) -> None:
    colors = grouped(groups, per_group)
    assert _distinct(colors) == groups * per_group
    assert EMPTY not in {tuple(int(v) for v in c) for c in colors}


def test_grouped_hue_tells_the_wave() -> None:
    """Lane 0 of each wave sits in its own band of hues: the waves' first colours differ strongly."""
    colors = grouped(4, 64).astype(int)
    firsts = colors[::64]
    gaps = np.abs(firsts[:, None] - firsts[None]).sum(-1)
    assert gaps[~np.eye(4, dtype=bool)].min() > 60


def test_colorize_marks_nobody_and_padding() -> None:
    pal = Palette(qualitative(3))
    rgb = pal.colorize(np.array([[0, 1, 2], [-1, -2, 4]]))
    assert tuple(rgb[1, 0]) == EMPTY
    assert tuple(rgb[1, 1]) == PADDING
    assert tuple(rgb[0, 1]) == pal.color(1)
    assert tuple(rgb[1, 2]) == pal.color(1)  # more owners than colours: colours repeat
    assert pal.color(-1) == EMPTY


def test_text_colour_contrasts() -> None:
    assert text_color((255, 255, 240)) == (0, 0, 0)
    assert text_color((20, 20, 80)) == (255, 255, 255)
