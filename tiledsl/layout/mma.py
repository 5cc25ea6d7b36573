"""Binding ``mma`` and ``dot_operand`` specs: matrix-instruction fragments tiled over waves.

Waves ``waves = [Wm, Wn]`` are numbered row-major (``wave = wm * Wn + wn``).  Wave ``(wm, wn)`` owns
the contiguous block of rows ``[wm * M/Wm, (wm+1) * M/Wm)`` and of columns ``[wn * N/Wn, ...)``: with
``waves=[W, 1]`` a row of the tile lives inside one wave, which is what FA2's row reductions need.
Inside its share a wave repeats the instruction tile; registers run over the repetitions along M,
then along N, then the instruction's C registers.

A tile need only be a whole number of instruction tiles along each dim, not of waves times the
instruction (as in Triton, a layout may cover more than the tile).  Along a dim of ``U`` instruction
tiles and ``W`` waves, ``D = gcd(U, W)`` groups of waves hold different parts (``U / D`` instruction
tiles each) and wave ``w`` holds what wave ``w % D`` holds: the waves past the first ``D`` replicate
the data (``split_dim``).  Everything downstream reads the index map, so a replicated layout needs
one writer per element (``valid`` with ``owner``) and reductions that count each wave's data once.

Operands: the A tile (M x K) is split over waves along M like the accumulator, the B tile (K x N)
along N; every wave holds all of K (waves with the same ``wm`` hold the same A data).  Registers run
over the repetitions along M (N for B), then the k-steps, then the instruction's operand elements.

``swap=True``: the hardware computes Cᵀ = Bᵀ·Aᵀ, so the tile's (i, j) is the instruction's (j, i),
the instruction's M runs along the tile's columns, and the tile's A operand is the hardware B
operand transposed (and the other way round): the AMD FA2 recipe (docs/targets/matrix-layouts.md §7.1).

On a target without matrix instructions the FMA fallback (``tiledsl.targets.fma_fallback``) takes
the instruction's place, so these layouts exist on every target.
"""

from __future__ import annotations

import math

import numpy as np

from tiledsl.layout.spec import DotOperandSpec, LayoutError, MmaSpec
from tiledsl.targets import MatrixInstr, Target, fma_fallback

_MATRIX_IN_DTYPES = ("f16", "bf16")
#: Operand dtypes whose instructions differ from the f16 one in k (or are missing): 8-bit operands.
_VARIANT_DTYPES = ("f8e4m3", "f8e5m2", "i8", "u8")


def select_instr(spec: MmaSpec, target: Target, dtype: str) -> MatrixInstr:
    """The instruction an mma spec means on ``target`` for tiles of ``dtype``.

    An accumulator tile is f32; its instruction is chosen as for f16 operands.  The f16 and bf16
    variants of an instruction have the same lane layout on every target, so this choice never
    changes a layout; the lowering picks the variant from the operand types.
    """
    if not target.matrix_instrs:
        if spec.instr is not None:
            raise LayoutError(f"{spec}: target {target.name} has no matrix instructions; "
                              f"leave out instr= to use the FMA fallback layout")
        return fma_fallback(target.wave_size)
    if spec.instr is not None:
        instr = target.matrix_instr(spec.instr)
        if instr is None:
            known = ", ".join(i.name for i in target.matrix_instrs)
            raise LayoutError(f"{spec}: target {target.name} has no instruction '{spec.instr}' "
                              f"(it has: {known})")
        return instr
    in_dtype = dtype if dtype in _MATRIX_IN_DTYPES else "f16"
    return target.default_matrix_instr(in_dtype) or target.matrix_instrs[0]


def operand_instr(spec: MmaSpec, target: Target, dtype: str) -> MatrixInstr:
    """The instruction whose operand fragments a ``dot_operand`` of ``spec`` holds for ``dtype``
    operands: the variant of ``select_instr``'s choice for that dtype (``Target.matrix_variant``:
    same m x n and accumulator layout, the dtype's own k)."""
    instr = select_instr(spec, target, dtype)
    if instr.family == "fma" or dtype not in _VARIANT_DTYPES:
        return instr
    variant = target.matrix_variant(instr, dtype)
    if variant is None:
        raise LayoutError(f"{spec}: target {target.name} has no {dtype} variant of {instr.name}")
    return variant


def _check_waves(text: str, spec: MmaSpec, num_waves: int) -> tuple[int, int]:
    wm, wn = spec.waves
    if wm * wn != num_waves:
        raise LayoutError(f"{text} needs {wm}x{wn} = {wm * wn} waves but the block has {num_waves}")
    return wm, wn


def _check_rank2(text: str, shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 2:
        raise LayoutError(f"{text} lays out 2-D tiles, not a rank-{len(shape)} tile "
                          f"{'x'.join(map(str, shape))}")
    return shape[0], shape[1]


class UnevenTileError(LayoutError):
    """The tile is not a whole number of the instruction's tiles; ``units`` is the multiple it needs."""

    def __init__(self, message: str, units: tuple[int, int]) -> None:
        super().__init__(message)
        self.units = units


def _check_multiple(text: str, shape: tuple[int, int], units: tuple[int, int], why: tuple[str, str]) -> None:
    """A tile is a whole number of instruction tiles (tile dims are compile-time constants that
    callers pad: an uneven tile is the caller's mistake); waves need not divide it."""
    for d, name in enumerate(("rows", "columns")):
        if shape[d] % units[d]:
            raise UnevenTileError(
                f"{text} on a {shape[0]}x{shape[1]} tile: {shape[d]} {name} is not a multiple of "
                f"{why[d]} = {units[d]}; the tile must be a multiple of ({units[0]}, {units[1]}) "
                f"(pad the tile)", units)


def split_dim(size: int, waves: int, unit: int) -> tuple[int, int]:
    """(distinct, reps): how ``waves`` waves share ``size`` elements in instruction tiles of ``unit``.

    ``distinct`` groups of waves hold different ``reps * unit``-element parts; wave ``w`` along the
    dim holds the part of ``w % distinct``, so with fewer tiles than waves the rest replicate.
    ``size`` must be a multiple of ``unit`` (``_check_multiple``).
    """
    tiles = size // unit
    distinct = math.gcd(tiles, waves)
    return distinct, tiles // distinct


def accumulator_unit(spec: MmaSpec, instr: MatrixInstr) -> tuple[int, int]:
    """Rows x columns of the tile covered by one instruction."""
    return (instr.n, instr.m) if spec.swap else (instr.m, instr.n)


def mma_index_map(spec: MmaSpec, shape: tuple[int, ...], num_waves: int, instr: MatrixInstr) -> np.ndarray:
    """The ``[num_waves, lanes, regs, 2]`` index map of an mma accumulator tile."""
    text = str(spec)
    rows, cols = _check_rank2(text, shape)
    wm, wn = _check_waves(text, spec, num_waves)
    um, un = accumulator_unit(spec, instr)
    mname, nname = ("n", "m") if spec.swap else ("m", "n")
    _check_multiple(text, (rows, cols), (um, un), (f"{mname} of {instr.name}", f"{nname} of {instr.name}"))
    dm, reps_m = split_dim(rows, wm, um)
    dn, reps_n = split_dim(cols, wn, un)

    cmap = instr.c_map()
    if spec.swap:
        cmap = cmap[..., ::-1]
    wave = np.arange(num_waves)
    # Axes: wave, lane, rep along M, rep along N, C register.
    row = ((wave // wn % dm) * (reps_m * um))[:, None, None, None, None] \
        + (np.arange(reps_m) * um)[None, None, :, None, None] + cmap[None, :, None, None, :, 0]
    col = ((wave % wn % dn) * (reps_n * un))[:, None, None, None, None] \
        + (np.arange(reps_n) * un)[None, None, None, :, None] + cmap[None, :, None, None, :, 1]
    full = np.stack(np.broadcast_arrays(row, col), axis=-1)
    return full.reshape(num_waves, instr.lanes, reps_m * reps_n * instr.c_elems, 2)


def operand_units(spec: DotOperandSpec, instr: MatrixInstr) -> tuple[int, int]:
    """Rows x columns of the operand tile covered by one instruction."""
    if spec.operand == 0:
        return (instr.n if spec.parent.swap else instr.m), instr.k
    return instr.k, (instr.m if spec.parent.swap else instr.n)


def _operand_fragment(spec: DotOperandSpec, instr: MatrixInstr) -> np.ndarray:
    """``[lanes, elems, 2]``: the operand tile coordinates (row, col) each lane element holds."""
    if not spec.parent.swap:
        return instr.operand_map(spec.operand)
    # Swapped: the tile's A (M x K) is the hardware's B (K x M) read transposed, and vice versa.
    return instr.operand_map(1 - spec.operand)[..., ::-1]


def dot_operand_index_map(spec: DotOperandSpec, shape: tuple[int, ...], num_waves: int,
                          instr: MatrixInstr) -> np.ndarray:
    """The ``[num_waves, lanes, regs, 2]`` index map of a dot operand tile (A: M x K, B: K x N)."""
    text = str(spec)
    _check_rank2(text, shape)
    wm, wn = _check_waves(text, spec.parent, num_waves)
    units = operand_units(spec, instr)
    split = 0 if spec.operand == 0 else 1  # the dim the waves split; the other one is K
    kdim = 1 - split
    wave_count = (wm, wn)[split]
    why = ["", ""]
    why[split] = f"{('m', 'n')[split ^ bool(spec.parent.swap)]} of {instr.name}"
    why[kdim] = f"the k of {instr.name}"
    _check_multiple(text, (shape[0], shape[1]), units, (why[0], why[1]))
    distinct, reps = split_dim(shape[split], wave_count, units[split])
    share = reps * units[split]
    ksteps = shape[kdim] // instr.k

    frag = _operand_fragment(spec, instr)
    elems = frag.shape[1]
    wave = np.arange(num_waves)
    wave_pos = (wave // wn if split == 0 else wave % wn) % distinct
    # Axes: wave, lane, rep along the split dim, k-step, operand element.
    split_coord = (wave_pos * share)[:, None, None, None, None] \
        + (np.arange(reps) * units[split])[None, None, :, None, None] + frag[None, :, None, None, :, split]
    k_coord = (np.arange(ksteps) * instr.k)[None, None, None, :, None] + frag[None, :, None, None, :, kdim]
    parts = [split_coord, k_coord] if split == 0 else [k_coord, split_coord]
    full = np.stack(np.broadcast_arrays(*parts), axis=-1)
    return full.reshape(num_waves, instr.lanes, reps * ksteps * elems, 2)


def natural_extent_mma(spec: MmaSpec, dim: int, instr: MatrixInstr) -> int:
    """The smallest extent along ``dim`` that the accumulator layout covers; it repeats with this period."""
    return spec.waves[dim] * accumulator_unit(spec, instr)[dim]


def natural_extent_operand(spec: DotOperandSpec, dim: int, instr: MatrixInstr) -> int:
    """The same for an operand layout: waves times the instruction along the split dim, k along K."""
    split = 0 if spec.operand == 0 else 1
    unit = operand_units(spec, instr)[dim]
    return unit * spec.parent.waves[split] if dim == split else unit
