"""Plain-text forms of the pictures (``tdslc tiles --text``): small aligned ASCII tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranges(values: np.ndarray, limit: int = 4) -> str:
    """Sorted distinct integers as intervals: ``0-31,64-95``; more than ``limit`` intervals are cut."""
    v = np.unique(np.asarray(values, dtype=np.int64))
    if not len(v):
        return "-"
    breaks = np.flatnonzero(np.diff(v) != 1)
    starts = np.r_[v[0], v[breaks + 1]]
    ends = np.r_[v[breaks], v[-1]]
    parts = [str(s) if s == e else f"{s}-{e}" for s, e in zip(starts.tolist(), ends.tolist())]
    if len(parts) > limit:
        return ",".join(parts[:limit]) + f",... ({len(parts)} ranges)"
    return ",".join(parts)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], limit: int = 32) -> str:
    """An aligned table: numbers right-aligned, text left-aligned; rows past ``limit`` are counted, not shown."""
    shown = [[str(c) for c in row] for row in rows[:limit]]
    cells = [list(header), *shown]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in shown) and bool(shown) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in shown)
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more rows")
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
