"""What to draw: thread tiles of values, block accesses of tensors, LDS accesses, and overviews.

Each builder returns a ``Picture``: the ``Figure`` to draw and the same facts as text (``--text``).
When a ``path`` is given the picture is also written there (PNG or SVG by the suffix).

- ``value_picture``: which wave / lane / register holds each element of a value with a ``Layout``;
- ``tensor_access_picture``: which block reads or writes each element of a tensor (from a trace);
- ``lds_picture`` / ``lds_accesses_picture``: who wrote and read each element of an LDS tile in a
  barrier interval; the second takes per-element owner arrays (``LdsAccesses``) so that the
  thread-level interpreter can draw threads where the block-level trace draws ops;
- ``overview_picture``: the out tensors' tiles and the thread tiles of the main values, side by side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tiledsl.ir.ops import KernelOp
from tiledsl.ir.types import TensorType
from tiledsl.layout import Layout, SliceSpec
from tiledsl.viz.palette import EMPTY, MAX_DISTINCT, Palette, grouped, qualitative
from tiledsl.viz.render import Figure, HeatMap, LegendEntry, LegendSection, render
from tiledsl.viz.tables import ranges, table
from tiledsl.viz.trace import AccessTrace

WRAP = 64
"""A 1-D array longer than this is drawn in rows of this many elements."""

_WHITE = (255, 255, 255)

LIST_LIMIT = 24
"""Up to this many owners the legend lists each one; more are shown as groups."""


@dataclass
class Picture:
    """A figure and its text summary."""

    figure: Figure
    text: str

    def save(self, path: str | os.PathLike) -> None:
        """Write the figure as PNG or SVG (by the suffix), atomically."""
        render(self.figure, path)


def text_summary(picture: Picture) -> str:
    """The ``--text`` form of a picture: compact ASCII tables of the same facts."""
    return picture.text


def _done(picture: Picture, path: str | os.PathLike | None) -> Picture:
    if path is not None:
        picture.save(path)
    return picture


# ---------------------------------------------------------------- N-D arrays as planes

@dataclass(frozen=True)
class _Plane:
    """How an array of ``shape`` is drawn in 2-D: rank 2 as is, rank 1 wrapped into rows of ``wrap``,
    rank 0 as one cell, higher ranks as the last two dims at the leading indices ``fixed``."""

    shape: tuple[int, ...]
    fixed: tuple[int, ...] = ()
    wrap: int = WRAP
    column: bool = False  # draw a 1-D array as one column (a per-row value beside its 2-D tile)

    @property
    def rows_cols(self) -> tuple[int, int]:
        if len(self.shape) >= 2:
            return self.shape[-2], self.shape[-1]
        if len(self.shape) == 1 and self.column:
            return self.shape[0], 1
        if len(self.shape) == 1:
            n = self.shape[0]
            width = min(n, self.wrap) or 1
            return -(-n // width), width
        return 1, 1

    def take(self, array: np.ndarray, fill: int = -2) -> np.ndarray:
        """``array`` (of ``shape``) as the 2-D array drawn; padding cells (past the end of a wrapped
        1-D array) get ``fill``, by default -2, which the palettes draw as background."""
        a = np.asarray(array)
        if len(self.shape) > 2:
            return a[self.fixed]
        if len(self.shape) == 2:
            return a
        rows, cols = self.rows_cols
        flat = np.full(rows * cols, fill, dtype=a.dtype)
        flat[:a.size] = a.reshape(-1)
        return flat.reshape(rows, cols)

    def row_index(self) -> np.ndarray:
        rows, cols = self.rows_cols
        return np.arange(rows) * cols if len(self.shape) == 1 and not self.column else np.arange(rows)

    def title(self, name: str) -> str:
        """``name`` and the part drawn: ``O[0, 1, :, :] of 1x2x200x64``, ``m[128]``."""
        if len(self.shape) > 2:
            return f"{name}[{', '.join(str(i) for i in self.fixed)}, :, :] of {_shape_text(self.shape)}"
        return f"{name} {_shape_text(self.shape)}"

    def note(self, name: str) -> str:
        if len(self.shape) > 2:
            at = ", ".join(str(i) for i in self.fixed)
            return f"{name}[{at}, :, :]: the last two dims, leading indices fixed at ({at})"
        if len(self.shape) == 1 and self.column:
            return f"{name}: 1-D, one value per row, drawn as a column"
        if len(self.shape) == 1 and self.shape[0] > self.wrap:
            return f"1-D, drawn {self.wrap} elements per row (row label = index of its first element)"
        return ""


def _plane(shape: tuple[int, ...], fixed: Sequence[int] | None, what: str, column: bool = False) -> _Plane:
    lead = len(shape) - 2
    if lead <= 0:
        return _Plane(tuple(shape), column=column and len(shape) == 1)
    at = tuple(fixed) if fixed is not None else (0,) * lead
    if len(at) != lead:
        raise ValueError(f"{what} has rank {len(shape)}: give {lead} leading indices, got {len(at)}")
    for i, (v, n) in enumerate(zip(at, shape)):
        if not 0 <= v < n:
            raise ValueError(f"leading index {v} of dim {i} of {what} is outside 0..{n - 1}")
    return _Plane(tuple(shape), at)


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


# ---------------------------------------------------------------- values (thread tiles)

def _thread_legend(num_waves: int, wave_size: int, palette: Palette, threads: np.ndarray) -> LegendSection:
    """One entry per thread when few hold data, else one strip per wave."""
    present = np.unique(threads[threads >= 0])
    section = LegendSection("thread: hue = wave, shade = lane")
    if len(present) <= LIST_LIMIT:
        for t in present.tolist():
            section.entries.append(LegendEntry(f"wave {t // wave_size} lane {t % wave_size}", (palette.color(t),)))
        return section
    for w in range(num_waves):
        lanes = present[(present // wave_size) == w] % wave_size
        if not len(lanes):
            continue
        colors = tuple(palette.color(w * wave_size + j) for j in range(wave_size))
        section.entries.append(LegendEntry(f"wave {w}: lanes {ranges(lanes)}", colors))
    return section


def _replication_note(layout: Layout) -> str:
    rep = np.asarray(layout.replication())
    held = rep[rep > 0]
    if not len(held):
        return "no thread holds an element"
    lo, hi = int(held.min()), int(held.max())
    nobody = int((rep == 0).sum())
    text = (f"each element held by {lo} thread{'s' if lo > 1 else ''}" if lo == hi
            else f"elements held by {lo} to {hi} threads")
    if hi > 1:
        text += " (the first holder is drawn)"
    if nobody:
        text += f"; {nobody} elements held by no thread (grey)"
    return text


def _value_panel(layout: Layout, name: str, fixed: Sequence[int] | None = None
                 ) -> tuple[HeatMap, LegendSection, list[str]]:
    wave, lane, reg = (np.asarray(a) for a in layout.owner_of())
    ws = layout.wave_size
    threads = np.where(wave >= 0, wave * ws + lane, -1)
    # A row reduction's result (the parent's dim 1 removed) has one value per row: draw it upright.
    column = isinstance(layout.spec, SliceSpec) and layout.spec.dim == 1
    plane = _plane(layout.shape, fixed, name, column)
    palette = Palette(grouped(layout.num_waves, ws))
    w2, l2, r2 = (plane.take(a) for a in (wave, lane, reg))

    def label(r: int, c: int) -> str:
        return f"w{w2[r, c]} l{l2[r, c]}\nr{r2[r, c]}"

    panel = HeatMap(plane.take(threads), palette, plane.title(name), labels=label,
                    row_index=plane.row_index(), outline=w2)
    notes = [n for n in (plane.note(name),) if n]
    return panel, _thread_legend(layout.num_waves, ws, palette, plane.take(threads)), notes


def _layout_title(layout: Layout, name: str) -> str:
    instr = f", {layout.instr.name}" if layout.instr is not None else ""
    return f"{name}: {layout.dtype}[{_shape_text(layout.shape)}] @ {layout.spec} on {layout.target.name}{instr}"


def value_picture(layout: Layout, name: str, path: str | os.PathLike | None = None,
                  fixed: Sequence[int] | None = None) -> Picture:
    """Which wave, lane and register holds each element of ``name`` (a value laid out by ``layout``).

    Colour = thread (hue by wave, shade by lane), dark borders between waves, cell text
    ``w{wave} l{lane} r{reg}`` where cells are large enough.  Replicated elements show their first
    holder; the notes say how many threads hold each element.
    """
    panel, section, notes = _value_panel(layout, name, fixed)
    regs = layout.valid().sum(axis=2)
    notes = [(f"{layout.num_waves} waves x {layout.wave_size} lanes, {int(regs.max())} registers per thread; "
             f"{_replication_note(layout)}; borders between waves"), *notes]
    fig = Figure(_layout_title(layout, name), [panel], [section], notes)
    return _done(Picture(fig, layout_text(layout, name)), path)


def layout_text(layout: Layout, name: str) -> str:
    """Per wave: the rows and columns (or elements) it covers, its elements, lanes and registers."""
    coords = layout.index_map()
    valid = layout.valid()
    rank = len(layout.shape)
    lines = [_layout_title(layout, name),
             f"{layout.num_waves} waves x {layout.wave_size} lanes; {_replication_note(layout)}"]
    header = (["wave"] + (["rows", "cols"] if rank >= 2 else ["elements"] if rank == 1 else [])
              + ["held", "lanes", "regs/thread"])
    lin = layout.linear_map()
    rows = []
    for w in range(layout.num_waves):
        ok = valid[w]
        per_thread = ok.sum(axis=1)
        used = per_thread > 0
        row: list[object] = [w]
        if rank >= 2:
            row += [ranges(coords[w][..., -2][ok]), ranges(coords[w][..., -1][ok])]
        elif rank == 1:
            row += [ranges(coords[w][..., 0][ok])]
        regs = per_thread[used]
        regs_text = "-" if not len(regs) else str(regs.min()) if regs.min() == regs.max() \
            else f"{regs.min()}-{regs.max()}"
        row += [len(np.unique(lin[w][ok])), int(used.sum()), regs_text]
        rows.append(row)
    lines.append(table(header, rows))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- tensors (block accesses)

_VERB = {"read": ("reads", "read"), "write": ("writes", "written"),
         "lds_read": ("reads", "read"), "lds_write": ("writes", "written")}


def _block_legend(trace: AccessTrace, palette: Palette, owners: np.ndarray) -> LegendSection:
    present = np.unique(owners[owners >= 0])
    names = ", ".join(trace.grid_names) if trace.grid_names else "grid coordinates"
    section = LegendSection(f"block id ({names})")
    if len(present) <= LIST_LIMIT:
        for b in present.tolist():
            section.entries.append(LegendEntry(f"block {b} ({trace.block_text(b)})", (palette.color(b),)))
        return section
    for start in range(0, int(present.max()) + 1, MAX_DISTINCT):
        here = present[(present >= start) & (present < start + MAX_DISTINCT)]
        if len(here):
            colors = tuple(palette.color(b) for b in range(start, start + MAX_DISTINCT))
            section.entries.append(LegendEntry(f"blocks {ranges(here, 2)}", colors))
    if len(palette) < trace.num_blocks:
        section.entries.append(LegendEntry(f"colours repeat every {len(palette)} blocks", (EMPTY,)))
    return section


def _tensor_panel(trace: AccessTrace, name: str, kind: str, shape: tuple[int, ...],
                  fixed: Sequence[int] | None) -> tuple[HeatMap, list[LegendSection], list[str]]:
    owners = trace.owner(name, kind).reshape(shape)
    counts = trace.count(name, kind).reshape(shape)
    plane = _plane(shape, fixed, f"tensor '{name}'")
    palette = Palette(qualitative(min(max(trace.num_blocks, 1), MAX_DISTINCT)))
    own2, cnt2 = plane.take(owners), plane.take(counts, fill=0)
    last2 = plane.take(trace.last(name, kind).reshape(shape))
    writes = kind.endswith("write")
    marks = (cnt2 > 1) if writes else None
    tile = trace.tiles.get((name, kind), ())
    grid = (tile[-2], tile[-1]) if len(tile) >= 2 and len(shape) >= 2 else None

    def label(r: int, c: int) -> str:
        if cnt2[r, c] < 2:
            return f"b{own2[r, c]}"
        if last2[r, c] != own2[r, c]:
            return f"b{own2[r, c]}\nb{last2[r, c]}" if cnt2[r, c] == 2 else f"b{own2[r, c]}..\nb{last2[r, c]}"
        return f"b{own2[r, c]}\nx{cnt2[r, c]}"

    panel = HeatMap(own2, palette, plane.title(name), labels=label, row_index=plane.row_index(),
                    grid=grid, outline=own2, marks=marks)
    drawn = cnt2 if len(shape) > 2 else counts  # padding cells of a wrapped 1-D array are no elements
    holes, doubles = int((drawn == 0).sum()), int((drawn > 1).sum())
    past = _VERB[kind][1]
    coverage = LegendSection("coverage", [LegendEntry(f"never {past}: {holes} elements", (EMPTY,))])
    if writes:
        coverage.entries.append(LegendEntry(f"{past} 2+ times: {doubles} elements (red)", (_WHITE,), marked=True))
    notes = [n for n in (plane.note(name),) if n]
    return panel, [_block_legend(trace, palette, own2), coverage], notes


def tensor_access_picture(trace: AccessTrace, tensor_name: str, kind: str,
                          path: str | os.PathLike | None = None, shape: tuple[int, ...] | None = None,
                          fixed: Sequence[int] | None = None) -> Picture:
    """Which block ``kind``s (``read`` / ``write``) each element of ``tensor_name``, from a trace.

    Rank > 2 tensors show the last two dims at the leading indices ``fixed`` (default 0).  Borders
    outline the blocks' regions and thin lines the tiles of the access; elements never touched are
    grey and, for writes, elements written twice or more carry a red cross.
    """
    if tensor_name not in trace.shapes:
        raise ValueError(f"the trace has no tensor '{tensor_name}' (it has: {', '.join(sorted(trace.shapes))})")
    shape = tuple(shape) if shape is not None else tuple(trace.shapes[tensor_name])
    panel, legend, notes = _tensor_panel(trace, tensor_name, kind, shape, fixed)
    counts = trace.count(tensor_name, kind)
    verb = _VERB[kind][0]
    grid = " x ".join(str(g) for g in trace.grid) or "1"
    notes = [(f"grid {grid} = {trace.num_blocks} blocks; colour = the first block that {verb[:-1]}s the element; "
             f"{int((counts == 0).sum())} elements never {_VERB[kind][1]}, "
             f"{int((counts > 1).sum())} {_VERB[kind][1]} more than once"), *notes]
    fig = Figure(f"{tensor_name}: which block {verb} each element", [panel], legend, notes)
    return _done(Picture(fig, tensor_text(trace, tensor_name, kind)), path)


def tensor_text(trace: AccessTrace, name: str, kind: str, limit: int = 32) -> str:
    """Per block: its coordinates, the box (per-dim ranges) of the elements it accesses and how many
    accesses it makes; then the counts of holes and of elements accessed more than once."""
    shape = trace.shapes[name]
    counts = trace.count(name, kind)
    verb, past = _VERB[kind]
    lo, hi, accesses = trace.boxes(name, kind)
    lines = [(f"{name}{list(shape)}: {verb} by block (grid {list(trace.grid)}, {trace.num_blocks} blocks); "
             f"box = the ranges of the elements the block {verb[:-1]}s")]
    rows: list[list[object]] = []
    for b in np.flatnonzero(accesses).tolist():
        box = ", ".join(f"{int(a)}:{int(z) + 1}" for a, z in zip(lo[b], hi[b]))
        rows.append([b, trace.block_text(b), f"[{box}]", int(accesses[b])])
    lines.append(table(["block", "coords", "box", "elements"], rows, limit))
    lines.append(f"never {past}: {int((counts == 0).sum())} of {counts.size}; "
                 f"{past} more than once: {int((counts > 1).sum())}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- LDS tiles

@dataclass
class LdsAccesses:
    """Who wrote and who read each element of one LDS tile in one barrier interval.

    ``writer``/``reader`` hold an owner id per element (-1 = nobody).  Owners are threads
    (``wave * wave_size + lane``) when ``threads = (num_waves, wave_size)`` is given, else ops or
    any other ids named in ``owner_names``.  ``conflicts`` flags elements drawn with a red cross
    (two writers with no barrier between, for the thread interpreter).
    """

    buffer: str
    shape: tuple[int, ...]
    writer: np.ndarray
    reader: np.ndarray
    interval: int | None = None
    owner_names: Mapping[int, str] = field(default_factory=dict)
    threads: tuple[int, int] | None = None
    conflicts: np.ndarray | None = None


def _owner_palette(accesses: Sequence[LdsAccesses]) -> Palette:
    """Threads in the wave/lane palette; other owners (ops) in the qualitative one, sized for the largest id."""
    if accesses[0].threads is not None:
        return Palette(grouped(*accesses[0].threads))
    top = max(max([*a.owner_names, int(a.writer.max(initial=-1)), int(a.reader.max(initial=-1))])
              for a in accesses)
    return Palette(qualitative(min(max(top + 1, 1), MAX_DISTINCT)))


def _owner_text(acc: LdsAccesses, owner: int) -> str:
    if owner in acc.owner_names:
        return acc.owner_names[owner]
    if acc.threads is not None:
        return f"wave {owner // acc.threads[1]} lane {owner % acc.threads[1]}"
    return f"owner {owner}"


def _lds_label(acc: LdsAccesses, owners: np.ndarray) -> Callable[[int, int], str]:
    def label(r: int, c: int) -> str:
        o = int(owners[r, c])
        if acc.threads is not None:
            return f"w{o // acc.threads[1]}\nl{o % acc.threads[1]}"
        return f"op{o}"
    return label


def lds_accesses_picture(accesses: Sequence[LdsAccesses], path: str | os.PathLike | None = None,
                         title: str | None = None) -> Picture:
    """Writers and readers of LDS tiles, one pair of panels per ``LdsAccesses`` (an interval)."""
    if not accesses:
        raise ValueError("no LDS accesses to draw")
    panels: list[HeatMap] = []
    owners_seen: dict[int, str] = {}
    palette = _owner_palette(accesses)
    for acc in accesses:
        plane = _plane(acc.shape, None, f"LDS tile '{acc.buffer}'")
        when = f"interval {acc.interval}: " if acc.interval is not None else ""
        for what, owners in (("written by", acc.writer), ("read by", acc.reader)):
            if not (owners >= 0).any():
                continue
            own2 = plane.take(owners)
            marks = plane.take(acc.conflicts, fill=0).astype(bool) if acc.conflicts is not None and \
                what == "written by" else None
            panels.append(HeatMap(own2, palette, f"{when}{what}", labels=_lds_label(acc, own2),
                                  row_index=plane.row_index(), outline=own2, marks=marks))
            for o in np.unique(owners[owners >= 0]).tolist():
                owners_seen.setdefault(o, _owner_text(acc, o))
    if not panels:
        raise ValueError(f"nothing wrote or read LDS tile '{accesses[0].buffer}' in the intervals given")
    first = accesses[0]
    if first.threads is not None:
        threads = np.array(sorted(owners_seen))
        legend = [_thread_legend(*first.threads, palette, threads)]
    else:
        legend = [LegendSection("op", [LegendEntry(t, (palette.color(o),)) for o, t in sorted(owners_seen.items())])]
    legend[0].entries.append(LegendEntry("not accessed", (EMPTY,)))
    if any(a.conflicts is not None and a.conflicts.any() for a in accesses):
        legend.append(LegendSection("conflicts", [LegendEntry("written twice, no barrier between (red)", (_WHITE,),
                                                             marked=True)]))
    notes = ["a barrier interval is the time between two syncs of the block (interval k: after the k-th sync)"]
    fig = Figure(title or f"LDS tile {first.buffer} {_shape_text(first.shape)}: who writes and reads it",
                 panels, legend, notes)
    return _done(Picture(fig, lds_text(accesses)), path)


def lds_text(accesses: Sequence[LdsAccesses]) -> str:
    """Per interval and access kind: each owner and how many elements it touched."""
    rows: list[list[object]] = []
    for acc in accesses:
        for what, owners in (("write", acc.writer), ("read", acc.reader)):
            ids, counts = np.unique(owners[owners >= 0], return_counts=True)
            for o, n in zip(ids.tolist(), counts.tolist()):
                rows.append(["-" if acc.interval is None else acc.interval, what, _owner_text(acc, o), n])
    first = accesses[0]
    head = f"LDS tile {first.buffer}{list(first.shape)}: accesses per barrier interval"
    return head + "\n" + table(["interval", "access", "by", "elements"], rows, 64) + "\n"


def lds_intervals(trace: AccessTrace, buffer_name: str) -> dict[int, LdsAccesses]:
    """The watched block's accesses to ``buffer_name``, per barrier interval, with ops as owners."""
    if buffer_name not in trace.shapes:
        raise ValueError(f"the trace has no LDS tile '{buffer_name}'")
    shape = tuple(trace.shapes[buffer_name])
    out: dict[int, LdsAccesses] = {}
    names: dict[int, dict[int, str]] = {}
    for e in trace.lds_events:
        if e.buffer != buffer_name:
            continue
        acc = out.get(e.interval)
        if acc is None:
            names[e.interval] = {}
            acc = LdsAccesses(buffer_name, shape, np.full(shape, -1, np.int64), np.full(shape, -1, np.int64),
                              e.interval, names[e.interval], None, np.zeros(shape, dtype=bool))
            out[e.interval] = acc
        owners = acc.writer if e.kind == "lds_write" else acc.reader
        if e.kind == "lds_write" and acc.conflicts is not None:
            # At block level the ops of one interval run in program order: a second write is no race,
            # but worth seeing.
            acc.conflicts |= e.elements & (owners >= 0) & (owners != e.op_id)
        owners[e.elements & (owners < 0)] = e.op_id
        names[e.interval][e.op_id] = e.op_label
    return out


def lds_picture(trace_events: AccessTrace, buffer_name: str, path: str | os.PathLike | None = None,
                interval: int | None = None, max_intervals: int = 3) -> Picture:
    """Who (which op, at block level) wrote and read each element of an LDS tile, per barrier interval.

    Draws ``interval`` only, or else the first ``max_intervals`` intervals that touch the tile.
    """
    found = lds_intervals(trace_events, buffer_name)
    if not found:
        raise ValueError(f"block {trace_events.watch_block} never touches LDS tile '{buffer_name}'")
    if interval is not None:
        if interval not in found:
            raise ValueError(f"LDS tile '{buffer_name}' is not touched in interval {interval} "
                             f"(intervals with accesses: {ranges(np.array(sorted(found)))})")
        chosen = [found[interval]]
    else:
        chosen = [found[k] for k in sorted(found)[:max_intervals]]
    title = (f"LDS tile {buffer_name} {_shape_text(chosen[0].shape)} in block {trace_events.watch_block}: "
             f"which op writes and reads each element")
    picture = lds_accesses_picture(chosen, None, title)
    if len(found) > len(chosen):
        picture.figure.notes.append(f"{len(found)} intervals touch the tile: "
                                    f"{ranges(np.array(sorted(found)))}; --interval K draws one")
    return _done(picture, path)


# ---------------------------------------------------------------- overview

def _main_values(layouts: Mapping[str, Layout], limit: int) -> list[str]:
    """Values worth a panel: 2-D ones first, one per distinct layout, plain names before ``x_1`` copies."""
    def plain(n: str) -> bool:
        base, _, suffix = n.rpartition("_")
        return not (base and suffix.isdigit())
    names = sorted(layouts, key=lambda n: (len(layouts[n].shape) != 2, not plain(n)))
    chosen: list[str] = []
    for n in names:
        if len(layouts[n].shape) in (1, 2) and all(layouts[n] != layouts[c] for c in chosen):
            chosen.append(n)
    return chosen[:limit]


def _kernel_facts(program_or_kernel: object) -> tuple[str, list[str]]:
    """The kernel's name and its out tensors, from a ``Program`` or a tile IR ``KernelOp`` (or neither)."""
    if isinstance(program_or_kernel, KernelOp):
        outs = [a.hint for a in program_or_kernel.body.args
                if isinstance(a.type, TensorType) and a.type.out and a.hint]
        return str(program_or_kernel.attrs.get("sym_name", "kernel")), outs
    name = getattr(program_or_kernel, "name", None) or "kernel"
    return str(name), [p.name for p in getattr(program_or_kernel, "tensor_params", []) if p.out]


def overview_picture(program_or_kernel: object, trace: AccessTrace | None, path: str | os.PathLike | None = None,
                     layouts: Mapping[str, Layout] | None = None, max_values: int = 3) -> Picture:
    """The grid's output tiles of each out tensor (colour = block) beside the thread tiles of the
    main values (colour = thread), from a trace and a dict value name -> ``Layout``."""
    name, outs = _kernel_facts(program_or_kernel)
    if trace is not None and not outs:
        outs = [n for n, _ in trace.traced("write")]
    panels: list[HeatMap] = []
    legend: list[LegendSection] = []
    texts: list[str] = []
    notes: list[str] = []
    if trace is not None:
        for t in outs:
            panel, sections, extra = _tensor_panel(trace, t, "write", tuple(trace.shapes[t]), None)
            panel.title = f"{t}: block tiles"
            panels.append(panel)
            notes += extra
            if not legend:
                legend += sections
            texts.append(tensor_text(trace, t, "write"))
    values = _main_values(layouts or {}, max_values)
    for v in values:
        lay = (layouts or {})[v]
        panel, section, extra = _value_panel(lay, v)
        panel.title = f"{v}: thread tile"
        panels.append(panel)
        notes += [f"{v}: {lay.spec}, {_replication_note(lay)}"] + extra
        if section.title not in {s.title for s in legend}:
            legend.append(section)
        texts.append(layout_text(lay, v))
    if not panels:
        raise ValueError("nothing to draw: no out tensor was traced and no value has a layout")
    head = f"{name}: output tiles by block"
    if trace is not None:
        head += f" (grid {' x '.join(str(g) for g in trace.grid) or '1'})"
    if values:
        head += ", thread tiles of " + ", ".join(values)
    return _done(Picture(Figure(head, panels, legend, notes), "\n".join(texts)), path)
