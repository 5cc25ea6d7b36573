"""``tdslc tiles``: pictures of the tiling, from the command line.

``add_tiles_parser(subparsers)`` adds the subcommand to ``tdslc``'s parser and ``cmd_tiles(args)``
runs it.  What is drawn depends on ``--value``:

- a tensor parameter: which block reads or writes each element (the kernel is traced at block level
  on random inputs of the ``--shape`` given);
- an LDS tile: which op writes and reads each element, per barrier interval, in block 0;
- a value of the kernel: which wave / lane / register holds each element of its thread tile;
- nothing: an overview of the out tensors' block tiles and the thread tiles of the main values.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from tiledsl.ir import ops
from tiledsl.ir.types import TileType, is_static_shape
from tiledsl.layout import Layout, LayoutError, bind, parse_layout_spec
from tiledsl.targets import TARGETS, Target, UnknownTargetError, get_target
from tiledsl.viz.pictures import (
    Picture,
    lds_picture,
    overview_picture,
    tensor_access_picture,
    value_picture,
)
from tiledsl.viz.scene import PictureError
from tiledsl.viz.trace import AccessTrace, record_block_level

_DESCRIPTION = """\
Draw the tiling of FILE as a heat map (PNG or SVG, by the suffix of -o): who owns, reads
or writes each element.  Without --value: the out tensors' tiles, coloured by block, beside
the thread tiles of the main values, coloured by thread.  With --value NAME:
  a tensor parameter   which block reads or writes each element (last two dims of a
                       higher-rank tensor, leading indices from --at);
  an LDS tile          which op writes and reads each element, per barrier interval, in block 0;
  a value              which wave, lane and register holds each element of its thread tile.
Block pictures come from a block-level run on random inputs: give the tensor dims with --shape."""

_EPILOG = """\
examples:
  tdslc tiles examples/gemm.tdsl --target gfx942 --shape M=128,N=128,K=64 -o gemm.png
  tdslc tiles examples/attention.tdsl --target gfx942 --shape Z=1,H=2,N=256,D=64 --value acc -o acc.svg
  tdslc tiles examples/attention.tdsl --target gfx942 --shape Z=1,H=2,N=256,D=64 --value O --at 0,1 --text"""


def _indices(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1, got '{text}'") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"indices must be non-negative, got '{text}'")
    return values


def add_tiles_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``tiles`` to ``tdslc``'s subcommands (``subparsers`` from ``add_subparsers``); returns its parser."""
    from tiledsl import cli  # here, not at the top: tiledsl.cli imports this module

    p = subparsers.add_parser("tiles", help="draw who owns, reads or writes each element (PNG or SVG heat maps)",
                              description=_DESCRIPTION, epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    p.add_argument("--target", required=True, choices=list(TARGETS), metavar="T",
                   help=f"the target whose waves, lanes and matrix instructions lay values out "
                        f"(one of: {', '.join(TARGETS)})")
    p.add_argument("--value", metavar="NAME",
                   help="what to draw: a tensor parameter, an LDS tile or a value of the kernel "
                        "(default: an overview of the out tensors and the main values)")
    p.add_argument("--shape", type=cli._shape, metavar="DIM=N,...",
                   help="sizes of the tensor dims for the block-level run, e.g. Z=1,H=2,N=256,D=64 "
                        "(consts among them are compile-time); needed for tensor, LDS and overview pictures")
    p.add_argument("--access", choices=["read", "write"], default=None,
                   help="for a tensor: draw its reads or its writes (default: write for out tensors, "
                        "read for the others)")
    p.add_argument("--at", type=_indices, metavar="I,J,...", default=None,
                   help="for a tensor or value of rank > 2: the indices of the leading dims "
                        "(default 0 for each); the last two dims are drawn")
    p.add_argument("--interval", type=int, metavar="K", default=None,
                   help="for an LDS tile: draw barrier interval K only (the accesses after the K-th sync); "
                        "default: the first three intervals that touch the tile")
    from tiledsl.cli import _seed
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the random inputs of the block-level run (default 0)")
    p.add_argument("--text", action="store_true",
                   help="print the picture's facts as compact ASCII tables on stdout (with or without -o)")
    p.add_argument("-o", dest="output", metavar="OUT",
                   help="the picture to write, OUT.png (needs Pillow: pip install 'tiledsl[pictures]') or "
                        "OUT.svg; written atomically")
    cli._add_defines(p)
    cli.add_kernel_flag(p, "the kernel to draw")
    return p


# ---------------------------------------------------------------- layouts of values

def block_waves(kernel: ops.KernelOp, target: Target) -> int:
    """Waves of a block: the kernel's ``block`` in waves, or its threads rounded up to whole waves."""
    size = int(kernel.attrs["block"])
    if kernel.attrs.get("block_unit", "waves") == "waves":
        return size
    return max(1, -(-size // target.wave_size))


def annotated_layouts(kernel: ops.KernelOp, target: Target) -> tuple[dict[str, Layout], dict[str, str]]:
    """Layouts of the named values whose type carries a layout (``@ layout`` in the source), bound for
    ``target``; and, for those that cannot be bound, why."""
    waves = block_waves(kernel, target)
    layouts: dict[str, Layout] = {}
    problems: dict[str, str] = {}
    for op in kernel.walk():
        values = [*op.results, *(a for region in op.regions for a in region.args)]
        for v in values:
            t = v.type
            if not (isinstance(t, TileType) and t.layout and v.hint) or v.hint in layouts or v.hint in problems:
                continue
            if not is_static_shape(t.shape):
                problems[v.hint] = f"its shape {list(t.shape)} is symbolic (give the consts with -D or --shape)"
                continue
            try:
                layouts[v.hint] = bind(parse_layout_spec(t.layout), tuple(int(d) for d in t.shape), waves,
                                       target, t.dtype)
            except LayoutError as e:
                problems[v.hint] = str(e)
    return layouts, problems


def value_layouts(program: Any, target: Target) -> tuple[dict[str, Layout], dict[str, str]]:
    """Every value's layout from ``tiledsl.thread.layouts_of`` when that exists, else the annotated ones."""
    if importlib.util.find_spec("tiledsl.thread") is not None:
        thread = importlib.import_module("tiledsl.thread")
        layouts_of = getattr(thread, "layouts_of", None)
        if layouts_of is not None:
            try:
                return dict(layouts_of(program, target.name)), {}
            except LayoutError as e:
                raise _user_error(f"cannot lay out the values of '{program.name}' on {target.name}: {e}") from None
    return annotated_layouts(program.lowered(), target)


# ---------------------------------------------------------------- the command

def _user_error(message: str) -> Exception:
    from tiledsl.cli import UserError
    return UserError(message)


def _lds_names(kernel: ops.KernelOp) -> list[str]:
    return [op.result.hint for op in kernel.walk() if isinstance(op, ops.LdsAllocOp) and op.result.hint]


def _trace(program: Any, args: argparse.Namespace) -> AccessTrace:
    from tiledsl.cli import _random_inputs
    inputs = _random_inputs(program, args.shape or {}, np.random.default_rng(args.seed), {})
    try:
        trace = record_block_level(program, inputs)
    except (ValueError, TypeError) as e:
        raise _user_error(str(e)) from None
    if trace.report is not None and not trace.report.ok:
        sys.stderr.write(f"tdslc: note: the block-level run reported:\n{trace.report}\n")
    return trace


def _drawable(program: Any, kernel: ops.KernelOp, layouts: Mapping[str, Layout]) -> str:
    tensors = ", ".join(p.name for p in program.tensor_params) or "none"
    lds = ", ".join(_lds_names(kernel)) or "none"
    values = ", ".join(sorted(layouts)) or "none has a layout yet (pin one with '@ layout' in the source)"
    return f"tensors: {tensors}; LDS tiles: {lds}; values: {values}"


def _check_flags(args: argparse.Namespace, subject: str) -> None:
    for flag, dest, allowed in (("--access", "access", {"tensor"}), ("--interval", "interval", {"lds"}),
                                ("--at", "at", {"tensor", "value"})):
        if getattr(args, dest) is not None and subject not in allowed:
            raise _user_error(f"{flag} applies to {' or '.join(sorted(allowed))} pictures, "
                              f"not to {'an overview' if subject == 'overview' else f'{subject} {args.value}'}")


def _picture(program: Any, args: argparse.Namespace, target: Target) -> Picture:
    kernel = program.lowered()
    tensors = {p.name: p for p in program.tensor_params}
    name = args.value
    if name in tensors:
        _check_flags(args, "tensor")
        kind = args.access or ("write" if tensors[name].out else "read")
        trace = _trace(program, args)
        if not trace.has(name, kind):
            raise _user_error(f"no block {'writes' if kind == 'write' else 'reads'} '{name}' "
                              f"(try --access {'read' if kind == 'write' else 'write'})")
        return tensor_access_picture(trace, name, kind, fixed=args.at)
    if name is not None and name in _lds_names(kernel):
        _check_flags(args, "lds")
        return lds_picture(_trace(program, args), name, interval=args.interval)
    layouts, problems = value_layouts(program, target)
    if name is None:
        _check_flags(args, "overview")
        return overview_picture(program, _trace(program, args), layouts=layouts)
    _check_flags(args, "value")
    if name in layouts:
        return value_picture(layouts[name], name, fixed=args.at)
    if name in problems:
        raise _user_error(f"cannot lay out '{name}' on {target.name}: {problems[name]}")
    raise _user_error(f"'{name}' is not a tensor, an LDS tile or a value with a layout in kernel "
                      f"'{program.name}'; what can be drawn: {_drawable(program, kernel, layouts)}")


def cmd_tiles(args: argparse.Namespace) -> int:
    """Run ``tdslc tiles``: build the picture, write it (``-o``) and/or print its text (``--text``)."""
    from tiledsl import cli
    if args.output is None and not args.text:
        raise _user_error("give the picture to write with -o OUT.png or -o OUT.svg (or --text for a summary)")
    if args.output is not None and not args.output.lower().endswith((".png", ".svg")):
        raise _user_error(f"cannot draw '{args.output}': the output must end in .png or .svg")
    cli.check_output_path(args.output)
    try:
        target = get_target(args.target)
    except UnknownTargetError as e:
        raise _user_error(str(e)) from None
    shape = args.shape or {}
    consts = {c.name for c in cli._load(args).ast.consts}
    program = cli._load(args, {k: v for k, v in shape.items() if k in consts and k not in dict(args.defines)})
    try:
        picture = _picture(program, args, target)
    except ValueError as e:  # what was asked does not fit the data: an index out of range, a layout, ...
        raise _user_error(str(e)) from None
    if args.text:
        sys.stdout.write(picture.text)
    if args.output is not None:
        try:
            picture.save(args.output)
        except PictureError as e:
            raise _user_error(str(e)) from None
        except OSError as e:
            raise _user_error(f"cannot write '{args.output}': {e.strerror or e}") from None
        if not args.text:
            print(f"wrote {args.output}: {picture.figure.title}")
    return 0
