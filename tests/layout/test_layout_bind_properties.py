"""Properties of bound layouts, for every layout kind, at hypothesis-drawn tiles that fit.

Each test checks coverage (every element held), the number of threads holding each element,
coordinates in range, and how the layout relates to the matrix instruction it is made of.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiledsl.layout import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    Layout,
    LayoutError,
    LayoutSpec,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
    bind,
    parse_layout_spec,
)
from tiledsl.targets import TARGETS, MatrixInstr, Target, fma_fallback

TARGET_LIST = list(TARGETS.values())
FEW = settings(max_examples=30, deadline=None)


def _instr_of(target: Target, name: str | None) -> MatrixInstr:
    if not target.matrix_instrs:
        return fma_fallback(target.wave_size)
    if name is None:
        return target.default_matrix_instr("f16")  # type: ignore[return-value]
    instr = target.matrix_instr(name)
    assert instr is not None
    return instr


# Lanes of one instruction holding one row / one column of its C tile.
def _lanes_per_row_col(instr: MatrixInstr) -> tuple[int, int]:
    return {
        "mfma_32": (32, 2), "mfma_16": (16, 4), "wmma": (16, 2), "mma_sync": (4, 8),
        "fma": (8, instr.lanes // 8),
    }[f"mfma_{instr.m}" if instr.family == "mfma" else instr.family]


def _check_common(layout: Layout, spec: LayoutSpec) -> None:
    imap = layout.index_map()
    assert imap.shape == (layout.num_waves, layout.wave_size, layout.regs, len(layout.shape))
    assert imap.dtype == np.int64 and not imap.flags.writeable
    assert layout.index_map() is imap  # cached
    valid = layout.valid()
    if layout.shape:
        assert ((imap >= 0) | ~valid[..., None]).all()
        assert ((imap < np.array(layout.shape)) | ~valid[..., None]).all()
        assert (imap[~valid] == -1).all()
    assert layout.replication().shape == layout.shape
    assert (layout.replication() >= 1).all(), "some element is held by no thread"
    # owner_of points at a slot that really holds the element
    wave, lane, reg = layout.owner_of()
    held = imap[wave.ravel(), lane.ravel(), reg.ravel()]
    coords = np.indices(layout.shape).reshape(len(layout.shape), math.prod(layout.shape)).T
    np.testing.assert_array_equal(held, coords)
    assert parse_layout_spec(str(spec)) == spec
    assert str(layout) == f"{spec}<{'x'.join(map(str, layout.shape))}>"


@st.composite
def _factor(draw: st.DrawFn, total: int, parts: int) -> tuple[int, ...]:
    out = []
    for _ in range(parts - 1):
        q = draw(st.sampled_from([d for d in range(1, total + 1) if total % d == 0]))
        out.append(q)
        total //= q
    return (*out, total)


# --- blocked ---------------------------------------------------------------------------------------

@FEW
@given(st.data())
def test_blocked_holds_each_element_once(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(TARGET_LIST))
    rank = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.lists(st.integers(1, {1: 300, 2: 70, 3: 12}[rank]), min_size=rank, max_size=rank)))
    num_waves = data.draw(st.sampled_from([1, 2, 4, 8]))
    spt = data.draw(st.none() | st.lists(st.integers(1, 8), min_size=rank, max_size=rank).map(tuple))
    order = data.draw(st.none() | st.permutations(list(range(rank))).map(tuple))
    waves = data.draw(st.none() | _factor(num_waves, rank))
    dtype = data.draw(st.sampled_from(["f16", "bf16", "f32", "i32"]))
    spec = BlockedSpec(spt, order, waves)
    layout = bind(spec, shape, num_waves, target, dtype)
    _check_common(layout, spec)
    assert (layout.replication() == 1).all()
    assert int(layout.valid().sum()) == math.prod(shape)
    # The fastest dim's contiguous elements are consecutive registers of one thread (vector access);
    # by default a 16-byte vector, halved until it divides the dim.
    fastest = (order or tuple(range(rank - 1, -1, -1)))[0]
    if spt is not None:
        vec = spt[fastest]
    else:
        vec = 16 // {"f16": 2, "bf16": 2, "f32": 4, "i32": 4}[dtype]
        while shape[fastest] % vec:
            vec //= 2
    imap = layout.index_map()
    regs = np.arange(layout.regs - 1)
    regs = regs[regs % vec < vec - 1]
    here, nxt = imap[:, :, regs], imap[:, :, regs + 1]
    both = (here[..., 0] >= 0) & (nxt[..., 0] >= 0)
    step = np.zeros(rank, dtype=np.int64)
    step[fastest] = 1
    assert ((nxt - here)[both] == step).all()


def test_blocked_default_on_a_128x64_f16_tile() -> None:
    """spt=[1,8] (16-byte vectors), 8 lanes along a row then rows, waves split the rows."""
    layout = bind(BlockedSpec(), (128, 64), 4, TARGETS["gfx942"], "f16")
    imap = layout.index_map()
    assert layout.regs == 32
    np.testing.assert_array_equal(imap[0, 0, :8], [[0, c] for c in range(8)])
    np.testing.assert_array_equal(imap[0, 1, :8], [[0, 8 + c] for c in range(8)])
    np.testing.assert_array_equal(imap[0, 8, 0], [1, 0])          # lane 8 starts the next row
    np.testing.assert_array_equal(imap[1, 0, 0], [8, 0])          # wave 1: the next 8 rows
    np.testing.assert_array_equal(imap[0, 0, 8], [32, 0])         # then the 4 waves' 32 rows repeat


def test_blocked_tile_smaller_than_the_threads_leaves_slots_empty() -> None:
    layout = bind(BlockedSpec(), (4, 8), 2, TARGETS["gfx90a"], "f32")
    assert (layout.replication() == 1).all()
    assert int(layout.valid().sum()) == 32
    assert (layout.index_map()[1] == -1).all()  # wave 1 holds nothing


# --- mma accumulators ------------------------------------------------------------------------------

@st.composite
def _mma_case(draw: st.DrawFn) -> tuple[Target, MmaSpec, tuple[int, int], MatrixInstr, int]:
    target = draw(st.sampled_from(TARGET_LIST))
    num_waves = draw(st.sampled_from([1, 2, 4, 8]))
    waves = draw(_factor(num_waves, 2))
    name = draw(st.none() | st.sampled_from([i.name for i in target.matrix_instrs] or [None]))
    spec = MmaSpec(waves, name, draw(st.booleans()))
    instr = _instr_of(target, name)
    um, un = (instr.n, instr.m) if spec.swap else (instr.m, instr.n)
    shape = (waves[0] * um * draw(st.integers(1, 3)), waves[1] * un * draw(st.integers(1, 3)))
    return target, spec, shape, instr, num_waves


@FEW
@given(_mma_case())
def test_mma_accumulator_is_the_instruction_tiled_over_waves(case: tuple) -> None:
    target, spec, shape, instr, num_waves = case
    layout = bind(spec, shape, num_waves, target)
    _check_common(layout, spec)
    assert layout.instr == instr
    assert (layout.replication() == 1).all()
    (wm, wn), (rows, cols) = spec.waves, shape
    um, un = (instr.n, instr.m) if spec.swap else (instr.m, instr.n)
    reps_n = cols // wn // un
    assert layout.regs == (rows // wm // um) * reps_n * instr.c_elems
    wave, lane, reg = layout.owner_of()
    i, j = np.indices(shape)
    # Each wave owns a contiguous block of rows and of columns.
    np.testing.assert_array_equal(wave, (i // (rows // wm)) * wn + j // (cols // wn))
    # Register order: repetition along M, then along N, then the instruction's C registers.
    ii, jj = i % (rows // wm), j % (cols // wn)
    np.testing.assert_array_equal(reg // instr.c_elems, (ii // um) * reps_n + jj // un)
    # Inside a repetition, the lane and register are the instruction's C map (transposed if swapped).
    held = instr.c_map()[lane, reg % instr.c_elems]
    local = np.stack([ii % um, jj % un], axis=-1)
    np.testing.assert_array_equal(held[..., ::-1] if spec.swap else held, local)


def test_waves_4x1_keep_each_row_inside_one_wave() -> None:
    for target in TARGET_LIST:
        layout = bind(MmaSpec((4, 1)), (128, 64), 4, target)
        wave = layout.owner_of()[0]
        assert (wave == wave[:, :1]).all(), target.name


def test_generic_target_falls_back_to_fma_layout() -> None:
    layout = bind(MmaSpec((4, 1)), (64, 32), 4, TARGETS["generic"])
    assert layout.instr is not None and layout.instr.name == "fma_f32_16x16x1"
    assert layout.regs == 1 * 2 * 8
    # each thread owns 4x2 sub-tiles
    imap = layout.index_map()[0, 9, :8]
    assert sorted(map(tuple, imap)) == [(r, c) for r in range(4, 8) for c in range(2, 4)]


@st.composite
def _small_mma_case(draw: st.DrawFn) -> tuple[Target, MmaSpec, tuple[int, int], MatrixInstr, int]:
    """An mma layout on a tile of any whole number of instruction tiles, fewer than the waves or not."""
    target = draw(st.sampled_from(TARGET_LIST))
    num_waves = draw(st.sampled_from([1, 2, 4, 8]))
    waves = draw(_factor(num_waves, 2))
    name = draw(st.none() | st.sampled_from([i.name for i in target.matrix_instrs] or [None]))
    spec = MmaSpec(waves, name, draw(st.booleans()))
    instr = _instr_of(target, name)
    um, un = (instr.n, instr.m) if spec.swap else (instr.m, instr.n)
    return target, spec, (um * draw(st.integers(1, 6)), un * draw(st.integers(1, 6))), instr, num_waves


@FEW
@given(_small_mma_case())
def test_mma_waves_past_the_tile_replicate_whole_waves(case: tuple) -> None:
    """Along a dim of U instruction tiles and W waves, gcd(U, W) groups of waves hold different
    parts and wave w holds what wave w % gcd holds: each element is held by the same number of
    waves, whole waves are copies, and the distinct waves hold each element once."""
    target, spec, shape, instr, num_waves = case
    layout = bind(spec, shape, num_waves, target)
    _check_common(layout, spec)
    (wm, wn), units = spec.waves, ((instr.n, instr.m) if spec.swap else (instr.m, instr.n))
    dm, dn = (math.gcd(size // u, w) for size, u, w in zip(shape, units, (wm, wn)))
    assert (layout.replication() == (wm // dm) * (wn // dn)).all()
    lin = layout.linear_map()
    first = layout.first_wave_alike()
    for w in range(num_waves):
        twin = (w // wn % dm) * wn + w % wn % dn
        assert first[w] == twin
        np.testing.assert_array_equal(lin[w], lin[twin])   # the same elements in the same registers
    distinct = lin[first == np.arange(num_waves)]
    held = np.sort(distinct[distinct >= 0])
    np.testing.assert_array_equal(held, np.arange(math.prod(shape)))
    # Rows reduce to the same vector whatever the extent along the removed dim.
    for dim in (0, 1):
        sliced = bind(SliceSpec(spec, dim), (shape[1 - dim],), num_waves, target)
        projected = set()
        coords = layout.index_map().reshape(layout.num_threads, layout.regs, 2)
        for t, row in enumerate(coords):
            projected |= {(t, int(c)) for c in row[:, 1 - dim]}
        assert _pairs(sliced) == projected


def test_sixteen_rows_over_four_waves_of_mfma_16x16() -> None:
    """Attention with BM=16 and 4 waves: every wave holds all 16 rows of its 16x16 tiles."""
    layout = bind(MmaSpec((4, 1), instr="mfma_f32_16x16x16_f16"), (16, 64), 4, TARGETS["gfx942"])
    assert (layout.replication() == 4).all()
    assert layout.regs == 4 * 4
    assert list(layout.first_wave_alike()) == [0, 0, 0, 0]


# --- dot operands ----------------------------------------------------------------------------------

@FEW
@given(_mma_case(), st.sampled_from([0, 1]), st.integers(1, 3))
def test_dot_operand_is_split_like_its_accumulator(case: tuple, operand: int, ksteps: int) -> None:
    target, parent, acc_shape, instr, num_waves = case
    spec = DotOperandSpec(parent, operand)
    kk = instr.k * ksteps
    shape = (acc_shape[0], kk) if operand == 0 else (kk, acc_shape[1])
    layout = bind(spec, shape, num_waves, target, "f16")
    _check_common(layout, spec)
    wm, wn = parent.waves
    hw_op = 1 - operand if parent.swap else operand  # swapped: the tile's A is the hardware's B
    dup = {"wmma": 2, "fma": 8 if hw_op == 0 else instr.lanes // 8}.get(instr.family, 1)
    # A is shared by the waves of one wave row (wn of them), B by those of one wave column.
    expected = (wn if operand == 0 else wm) * dup
    assert (layout.replication() == expected).all()
    elems = instr.a_elems if hw_op == 0 else instr.b_elems
    split = 0 if operand == 0 else 1
    share = shape[split] // (wm if operand == 0 else wn)
    imap = layout.index_map()
    for w in range(num_waves):
        coords = imap[w].reshape(-1, 2)
        pos = w // wn if operand == 0 else w % wn
        # the wave holds its share of M (or N) and all of K, nothing else
        assert set(coords[:, split]) == set(range(pos * share, (pos + 1) * share))
        assert set(coords[:, 1 - split]) == set(range(kk))
    unit = share // (layout.regs // ksteps // elems)
    # Register order: repetition along M (N), then k-step, then the operand elements.
    w, lane, reg = (a[..., None] for a in np.indices(imap.shape[:3]))
    rep, kstep, e = reg // (ksteps * elems), (reg // elems) % ksteps, reg % elems
    assert ((imap[..., split] % share) // unit == rep[..., 0]).all()
    assert (imap[..., 1 - split] // instr.k == kstep[..., 0]).all()
    hw = instr.operand_map(hw_op)[lane[..., 0], e[..., 0]]
    if parent.swap:
        hw = hw[..., ::-1]
    local = np.stack([imap[..., 0] % (unit if split == 0 else instr.k),
                      imap[..., 1] % (instr.k if split == 0 else unit)], axis=-1)
    np.testing.assert_array_equal(hw, local)


# --- slices -----------------------------------------------------------------------------------------

def _pairs(layout: Layout) -> set[tuple[int, int]]:
    """(thread, linear element) pairs: who holds what, ignoring registers."""
    lin = layout.linear_map().reshape(layout.num_threads, -1)
    threads = np.broadcast_to(np.arange(layout.num_threads)[:, None], lin.shape)
    keep = lin >= 0
    return set(zip(threads[keep].tolist(), lin[keep].tolist()))


@FEW
@given(_mma_case(), st.sampled_from([0, 1]), st.integers(1, 3))
def test_slice_of_mma_is_the_projection_at_any_extent(case: tuple, dim: int, times: int) -> None:
    target, parent, shape, instr, num_waves = case
    spec = SliceSpec(parent, dim)
    kept = shape[1 - dim]
    layout = bind(spec, (kept,), num_waves, target)
    _check_common(layout, spec)
    per_row, per_col = _lanes_per_row_col(instr)
    if parent.swap:
        per_row, per_col = per_col, per_row
    # slice(1): a vector over rows, each held by the lanes of one row times the waves along N.
    expected = per_row * parent.waves[1] if dim == 1 else per_col * parent.waves[0]
    assert (layout.replication() == expected).all()
    # The same vector comes out of a parent of any (padded) extent along the removed dim.
    full = list(shape)
    full[dim] *= times
    par = bind(parent, tuple(full), num_waves, target)
    projected = set()
    lin = par.index_map().reshape(par.num_threads, par.regs, 2)
    for t, row in enumerate(lin):
        projected |= {(t, int(c)) for c in row[:, 1 - dim]}
    assert _pairs(layout) == projected
    # no thread holds an element twice, and padding sits at the end
    valid = layout.valid()
    assert (np.sort(~valid, axis=-1) == ~valid).all()


@FEW
@given(_mma_case(), st.sampled_from([0, 1]), st.integers(1, 3))
def test_slice_of_dot_operand(case: tuple, operand: int, ksteps: int) -> None:
    target, parent, acc_shape, instr, num_waves = case
    kk = instr.k * ksteps
    shape = (acc_shape[0], kk) if operand == 0 else (kk, acc_shape[1])
    k_dim = 1 if operand == 0 else 0
    spec = SliceSpec(DotOperandSpec(parent, operand), k_dim)  # reduce over K: a vector over M (N)
    layout = bind(spec, (shape[1 - k_dim],), num_waves, target, "f16")
    _check_common(layout, spec)
    par = bind(spec.parent, shape, num_waves, target, "f16")
    lin = par.index_map().reshape(par.num_threads, par.regs, 2)
    projected = {(t, int(c)) for t, row in enumerate(lin) for c in row[:, 1 - k_dim]}
    assert _pairs(layout) == projected


@FEW
@given(st.data())
def test_slice_of_blocked_with_size(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(TARGET_LIST))
    shape = (data.draw(st.integers(1, 64)), data.draw(st.integers(1, 64)))
    num_waves = data.draw(st.sampled_from([1, 2, 4]))
    dim = data.draw(st.sampled_from([0, 1]))
    parent = BlockedSpec(data.draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4))))
    spec = SliceSpec(parent, dim, size=shape[dim])
    layout = bind(spec, (shape[1 - dim],), num_waves, target)
    _check_common(layout, spec)
    par = bind(parent, shape, num_waves, target)
    lin = par.index_map().reshape(par.num_threads, par.regs, 2)
    projected = {(t, int(c[1 - dim])) for t, row in enumerate(lin) for c in row if c[0] >= 0}
    assert _pairs(layout) == projected
    # a row reduction's vector element i is held by exactly the threads that held some (i, j)
    expected = np.zeros(shape[1 - dim], dtype=np.int64)
    for _, c in projected:
        expected[c] += 1
    np.testing.assert_array_equal(layout.replication(), expected)


def test_slice_of_slice_reaches_rank_1_from_rank_3() -> None:
    target = TARGETS["sm_90"]
    inner = SliceSpec(BlockedSpec((1, 1, 4)), 2, size=16)
    spec = SliceSpec(inner, 0, size=8)
    layout = bind(spec, (32,), 4, target)
    _check_common(layout, spec)
    par = bind(BlockedSpec((1, 1, 4)), (8, 32, 16), 4, target)
    holders = (par.replication().reshape(8, 32, 16) > 0).any(axis=(0, 2))
    assert holders.all()


# --- expand -----------------------------------------------------------------------------------------

@FEW
@given(st.data())
def test_expand_inserts_an_extent_1_dim_and_slice_undoes_it(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(TARGET_LIST))
    shape = (data.draw(st.integers(1, 64)), data.draw(st.integers(1, 64)))
    num_waves = data.draw(st.sampled_from([1, 2, 4]))
    dim = data.draw(st.sampled_from([0, 1]))
    # the layout of a row statistic: a slice of a blocked 2-D layout, then x[:, _] / x[_, :]
    inner = SliceSpec(BlockedSpec(data.draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))),
                      dim, size=shape[dim])
    spec = ExpandSpec(dim, inner)
    wide = shape[:dim] + (1,) + shape[dim + 1:]
    layout = bind(spec, wide, num_waves, target)
    _check_common(layout, spec)
    flat = bind(inner, (shape[1 - dim],), num_waves, target)
    m, f = layout.index_map(), flat.index_map()
    assert layout.regs == flat.regs
    np.testing.assert_array_equal(m[..., 1 - dim], f[..., 0])
    np.testing.assert_array_equal(m[..., dim], np.where(f[..., 0] >= 0, 0, -1))
    back = bind(SliceSpec(spec, dim, size=1), (shape[1 - dim],), num_waves, target)
    assert back.equivalent(flat)


def test_expand_binds_extent_1_dims_only() -> None:
    with pytest.raises(LayoutError, match=r"expand\(1, replicated\) lays out tiles of extent 1 along dim 1, not 4x4"):
        bind(ExpandSpec(1, ReplicatedSpec()), (4, 4), 1, TARGETS["sm_90"])


# --- replicated -------------------------------------------------------------------------------------

@FEW
@given(st.sampled_from(TARGET_LIST), st.lists(st.integers(1, 9), max_size=2).map(tuple),
       st.sampled_from([1, 2, 4]))
def test_replicated_is_held_by_every_thread(target: Target, shape: tuple[int, ...], num_waves: int) -> None:
    spec = ReplicatedSpec()
    layout = bind(spec, shape, num_waves, target)
    _check_common(layout, spec)
    assert layout.regs == math.prod(shape)
    assert (layout.replication() == num_waves * target.wave_size).all()
    assert (layout.owner_of()[0] == 0).all() and (layout.owner_of()[1] == 0).all()


def test_layout_equality_and_equivalence() -> None:
    t = TARGETS["gfx942"]
    a = bind(MmaSpec((4, 1)), (128, 64), 4, t)
    assert a == bind(MmaSpec((4, 1)), (128, 64), 4, t) and hash(a) == hash(bind(MmaSpec((4, 1)), (128, 64), 4, t))
    b = bind(MmaSpec((2, 2)), (128, 64), 4, t)
    assert a != b and not a.equivalent(b)
    c = bind(MmaSpec((4, 1), instr="mfma_f32_32x32x8_f16"), (128, 64), 4, t)
    assert a != c and a.equivalent(c)  # different spec, same map
    assert repr(a) == "Layout(mma(waves=[4,1])<128x64>, waves=4, target=gfx942, regs=32)"
