"""Heat maps on the canvas: PNG and SVG files, their size bounds, sampling, labels and the legend."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiledsl.viz.palette import Palette, qualitative
from tiledsl.viz.render import (
    MAX_HEIGHT,
    MAX_WIDTH,
    Figure,
    HeatMap,
    LegendEntry,
    LegendSection,
    layout,
    render,
)
from tiledsl.viz.scene import PictureError, Raster, Text

SVG = "{http://www.w3.org/2000/svg}"


def _quadrants(n: int) -> np.ndarray:
    i, j = np.indices((n, n))
    return (i // (n // 2)) + 2 * (j // (n // 2))


def _figure(owners: np.ndarray, **panel: object) -> Figure:
    pal = Palette(qualitative(4))
    legend = [LegendSection("blocks", [LegendEntry(f"block {b}", (pal.color(b),)) for b in range(4)])]
    return Figure("four quadrants", [HeatMap(owners, pal, "q", **panel)], legend, ["a note"])  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [4, 64, 3000])
def test_png_within_screen_bounds(tmp_path: Path, n: int) -> None:
    path = tmp_path / "q.png"
    render(_figure(_quadrants(n), outline=_quadrants(n)), path)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert 300 <= im.width <= MAX_WIDTH and 100 <= im.height <= MAX_HEIGHT
        # the top-left and bottom-right quadrants are drawn in their own colours
        pixels = np.asarray(im.convert("RGB"))
        colors = {tuple(int(v) for v in c) for c in pixels.reshape(-1, 3)}
        pal = Palette(qualitative(4))
        assert all(pal.color(b) in colors for b in range(4))


def test_large_array_is_sampled(tmp_path: Path) -> None:
    scene = layout(_figure(_quadrants(3000)))
    raster = next(item for item in scene.items if isinstance(item, Raster) and item.colors.shape[0] > 100)
    assert raster.cell == 1 and raster.colors.shape[0] <= MAX_HEIGHT
    titles = [item.text for item in scene.items if isinstance(item, Text)]
    assert any("1 in 4 rows and cols shown" in t for t in titles)


def test_svg_parses_and_merges_runs(tmp_path: Path) -> None:
    path = tmp_path / "q.svg"
    render(_figure(_quadrants(64), grid=(32, 32)), path)
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    assert int(root.get("width", "0")) <= MAX_WIDTH and int(root.get("height", "0")) <= MAX_HEIGHT
    rects = root.findall(f"{SVG}rect")
    # runs of one colour along a row are one rect: 64 rows x 2 quadrants, not 4096 cells
    assert len(rects) < 200
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "four quadrants" in texts and "block 3" in texts


def test_labels_only_where_they_fit(tmp_path: Path) -> None:
    def label(r: int, c: int) -> str:
        return f"c{r}.{c}"
    small = layout(_figure(_quadrants(8), labels=label))
    large = layout(_figure(_quadrants(512), labels=label))
    assert "c7.7" in {i.text for i in small.items if isinstance(i, Text)}
    assert not any(i.text.startswith("c") for i in large.items if isinstance(i, Text) and "." in i.text)


def test_side_by_side_panels_share_the_legend(tmp_path: Path) -> None:
    pal = Palette(qualitative(4))
    fig = Figure("two", [HeatMap(_quadrants(16), pal, "left"), HeatMap(_quadrants(16)[:, :4], pal, "right")],
                 [LegendSection("blocks", [LegendEntry("block 0", (pal.color(0),))])])
    path = tmp_path / "two.svg"
    render(fig, path)
    texts = [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]
    assert texts.count("block 0") == 1 and "left" in texts and "right" in texts


def test_long_legend_is_cut(tmp_path: Path) -> None:
    pal = Palette(qualitative(64))
    entries = [LegendEntry(f"owner {i}", (pal.color(i % 64),)) for i in range(300)]
    scene = layout(Figure("many", [HeatMap(np.arange(300).reshape(15, 20), pal)], [LegendSection("o", entries)]))
    texts = [i.text for i in scene.items if isinstance(i, Text)]
    assert any(t.startswith("… ") and t.endswith(" more") for t in texts)
    assert scene.height <= MAX_HEIGHT


def test_unknown_suffix_and_atomic_write(tmp_path: Path) -> None:
    with pytest.raises(PictureError, match=r"\.png or \.svg"):
        render(_figure(_quadrants(4)), tmp_path / "q.jpg")
    with pytest.raises(PictureError, match="does not exist"):
        render(_figure(_quadrants(4)), tmp_path / "missing" / "q.svg")
    render(_figure(_quadrants(4)), tmp_path / "q.svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.svg"]


def test_heat_map_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        HeatMap(np.zeros(5, dtype=int), Palette(qualitative(1)))
