"""Atomics on global memory in both interpreters: many blocks updating the same elements at
shapes that are not multiples of the tiles, against NumPy; the old values as a serialisation of
the updates (blocks in linear-id order at block level, in run order at thread level); masks;
maxNum/minNum and wrapping i32 adds; and what output coverage means for a tensor updated
atomically (an accumulator the caller initialised)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.interp.numerics import round_to

TARGETS = ["gfx942", "gfx1100", "sm_90", "sm_90a", "generic"]
LEVELS = [("block", None)] + [("thread", t) for t in TARGETS]
LEVEL_IDS = [t or "block" for _, t in LEVELS]
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
I32 = np.iinfo(np.int32)

# Column reductions of a tall matrix: every block of a column of blocks updates the same BN elements.
COLUMNS = """
kernel columns(X: {dt}[M, N], out Y: {dt}[N])
  param BM = 16, BN = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 4 waves
{{
  x = X[bm*BM : +BM, bn*BN : +BN] pad {pad}
  atomic_{kind}(Y[bn*BN : +BN], col{reduce}(x))
}}
"""

# Every block takes a ticket per column: the old value of a counter it increments.
TICKETS = """
kernel tickets(out T: i32[N], out O: i32[G, P])
  param BN = 32
  grid (G, cdiv(N, BN)) as (g, bn)
  block 2 waves
{
  old = atomic_add(T[bn*BN : +BN], 1)
  O[g, bn*BN : +BN] <- old
}
"""

# Each block adds its own amount to a row and keeps what it found there.
SERIAL = """
kernel serial(V: f32[G], out T: f32[N], out O: f32[G, N])
  param BN = 16
  grid (G, cdiv(N, BN)) as (g, bn)
  block 1 waves
{
  v = V[g]
  O[g, bn*BN : +BN] <- atomic_add(T[bn*BN : +BN], v)
}
"""

# One element per block: a scalar atomic (one per block, by one thread), its old value for all.
COUNTER = """
kernel counter(out C: i32[1], out O: i32[G])
  grid (G) as (g)
  block 4 waves
{
  t = atomic_add(C[0], 1)
  O[g : +1] <- fill(t, i32[1])
}
"""


@functools.cache
def load(source: str, **params: int) -> tiledsl.Program:
    return tiledsl.load(source, params=params)


def run(prog: tiledsl.Program, level: str, target: str | None, shuffle: bool = False, **args: np.ndarray) -> None:
    report = prog.interpret(level=level, target=target, shuffle_blocks=shuffle, seed=3, **args)
    assert report.ok, str(report)


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    return float(np.linalg.norm(out64 - ref64) / max(np.linalg.norm(ref64), 1e-30))


# ---------------------------------------------------------------- accumulation against NumPy

CASES = [("add", "f32"), ("add", "i32"), ("add", "f16"), ("add", "bf16"), ("max", "f32"), ("max", "i32"),
         ("min", "f32"), ("min", "i32")]
TOLERANCE = {"f32": 1e-5, "f16": 4e-3, "bf16": 3e-2, "i32": 0}


def _columns(kind: str, dt: str) -> tiledsl.Program:
    reduce = {"add": "sum", "max": "max", "min": "min"}[kind]
    pad = {"add": "0", "max": "-inf", "min": "inf"}[kind]
    if dt == "i32" and kind != "add":
        pad = f"{'-' if kind == 'max' else ''}2147483647"
    return load(COLUMNS.format(dt=dt, kind=kind, reduce=reduce, pad=pad))


@pytest.mark.parametrize(("level", "target"), LEVELS, ids=LEVEL_IDS)
@pytest.mark.parametrize(("kind", "dt"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
@SETTINGS
@given(m=st.integers(1, 120), n=st.integers(1, 100), seed=st.integers(0, 2**16))
def test_columns_accumulate_onto_the_initial_values(level: str, target: str | None, kind: str, dt: str, m: int,
                                                     n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if dt == "i32":
        x, y0 = rng.integers(-50, 50, (m, n)).astype(np.int32), rng.integers(-50, 50, n).astype(np.int32)
    else:
        x = round_to(rng.standard_normal((m, n)), dt)
        y0 = round_to(rng.standard_normal(n) * 4, dt)
    y = y0.copy()
    run(_columns(kind, dt), level, target, X=x, Y=y)
    x64, y64 = x.astype(np.float64), y0.astype(np.float64)
    ref = {"add": lambda: y64 + x64.sum(0), "max": lambda: np.maximum(y64, x64.max(0)),
           "min": lambda: np.minimum(y64, x64.min(0))}[kind]()
    assert rel_error(y, ref) <= TOLERANCE[dt]


ROWS = """
kernel rows(X: {dt}[G, N], out Y: {dt}[N])
  param BN = 64
  grid (G, cdiv(N, BN)) as (g, bn)
  block 2 waves
{{
  atomic_add(Y[bn*BN : +BN], X[g, bn*BN : +BN])
}}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dt", ["f16", "bf16", "f32", "i32"])
def test_thread_level_adds_as_the_block_level_does(target: str, dt: str) -> None:
    """The same updates in the same order (no shuffle), each rounded to the dtype: the two levels
    agree bit for bit."""
    rng = np.random.default_rng(5)
    x = rng.integers(-9, 9, (17, 150)).astype(np.int32) if dt == "i32" else \
        round_to(rng.standard_normal((17, 150)), dt)
    y_block, y_thread = np.zeros(150, x.dtype), np.zeros(150, x.dtype)
    prog = load(ROWS.format(dt=dt))
    run(prog, "block", None, X=x, Y=y_block)
    run(prog, "thread", target, X=x, Y=y_thread)
    np.testing.assert_array_equal(y_thread, y_block)
    serial = np.zeros(150, np.float32)
    for row in x:                                         # one rounding per update, in block order
        serial = round_to(serial + row, dt)
    np.testing.assert_array_equal(y_block, serial)


def test_max_and_min_ignore_nan_like_maxnum() -> None:
    src = """
kernel nan_max(X: f32[G, N], out Hi: f32[N], out Lo: f32[N])
  param BN = 16
  grid (G, cdiv(N, BN)) as (g, bn)
  block 1 waves
{
  x = X[g, bn*BN : +BN]
  atomic_max(Hi[bn*BN : +BN], x)
  atomic_min(Lo[bn*BN : +BN], x)
}
"""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[:, 7] = np.nan                                  # a column of NaNs onto a NaN: stays NaN
    init = rng.standard_normal(40).astype(np.float32)
    init[[3, 7, 11]] = np.nan                         # a NaN start is replaced by the first number
    want_hi, want_lo = np.fmax(init, np.fmax.reduce(x, 0)), np.fmin(init, np.fmin.reduce(x, 0))
    for level, target in LEVELS:
        hi, lo = init.copy(), init.copy()
        run(load(src), level, target, X=x, Hi=hi, Lo=lo)
        np.testing.assert_array_equal(hi, want_hi)
        np.testing.assert_array_equal(lo, want_lo)
    assert np.isnan(want_hi[7]) and not np.isnan(want_hi[3])


def test_i32_adds_wrap() -> None:
    x = np.array([[1] * 5, [2] * 5], dtype=np.int32)
    for level, target in LEVELS:
        y = np.full(5, I32.max, dtype=np.int32)
        run(_columns("add", "i32"), level, target, X=x, Y=y)
        assert (y == I32.min + 2).all()


# ---------------------------------------------------------------- old values

@pytest.mark.parametrize(("level", "target"), LEVELS, ids=LEVEL_IDS)
def test_tickets_follow_the_block_order(level: str, target: str | None) -> None:
    """Without shuffling, both levels run blocks in linear-id order (the grid's first axis
    fastest): block g of a column gets ticket g. Columns past N are masked: T keeps its size, and
    their old values are 0."""
    g, n = 9, 70
    t, o = np.zeros(n, np.int32), np.full((g, 96), -1, np.int32)
    run(load(TICKETS), level, target, T=t, O=o)
    assert (t == g).all()
    assert (o[:, :n] == np.arange(g)[:, None]).all()
    assert (o[:, n:] == 0).all()


@pytest.mark.parametrize("target", TARGETS)
def test_shuffled_blocks_draw_tickets_in_their_run_order(target: str) -> None:
    g, n = 12, 40
    t, o = np.zeros(n, np.int32), np.zeros((g, 64), np.int32)
    run(load(TICKETS), "thread", target, shuffle=True, T=t, O=o)
    assert (t == g).all()
    tickets = o[:, :n]
    assert all(sorted(tickets[:, c]) == list(range(g)) for c in range(n))
    assert (tickets[:, :32] == tickets[:, :1]).all()           # one block: one order for its columns
    assert (tickets[:, 0] != np.arange(g)).any()               # not the linear order


@pytest.mark.parametrize(("level", "target"), LEVELS, ids=LEVEL_IDS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_old_values_are_a_serialisation(level: str, target: str | None, shuffle: bool) -> None:
    """Ordered by what they found, the blocks' updates chain: each found the previous one's result."""
    if shuffle and level == "block":
        pytest.skip("the block level runs blocks in one order")
    g, n = 7, 37
    v = (np.arange(g) * 3 + 1).astype(np.float32)
    start = np.linspace(-5, 5, n).astype(np.float32)
    t, o = start.copy(), np.zeros((g, n), np.float32)
    run(load(SERIAL), level, target, shuffle=shuffle, V=v, T=t, O=o)
    for c in range(n):
        order = np.argsort(o[:, c], kind="stable")
        found = o[order, c]
        assert found[0] == start[c]
        np.testing.assert_array_equal(found[1:], found[:-1] + v[order[:-1]])
        assert t[c] == found[-1] + v[order[-1]]


@pytest.mark.parametrize(("level", "target"), LEVELS, ids=LEVEL_IDS)
def test_one_element_is_one_atomic_per_block(level: str, target: str | None) -> None:
    c, o = np.array([100], np.int32), np.zeros(23, np.int32)
    run(load(COUNTER), level, target, C=c, O=o)
    assert c[0] == 123
    assert sorted(o) == list(range(100, 123))


def test_old_values_in_a_loop() -> None:
    """Old values that reach replicated registers through LDS, once per iteration: no race between
    one iteration's reads and the next one's write, and the tickets add up."""
    src = """
kernel loop(out T: i32[16], out O: i32[G, 16])
  grid (G) as (g)
  block 4 waves
{
  acc = fill(0, i32[16])
  for i in 0 .. 5 {
    acc = acc + atomic_add(T[0 : +16], fill(1, i32[16]))
  }
  O[g, :] <- acc
}
"""
    g = 6
    for level, target in LEVELS:
        t, o = np.zeros(16, np.int32), np.zeros((g, 16), np.int32)
        run(load(src), level, target, shuffle=level == "thread", T=t, O=o)
        assert (t == 5 * g).all()
        assert (o.sum(0) == sum(range(5 * g))).all()


# ---------------------------------------------------------------- coverage

def _errors(src: str, level: str, target: str | None, **args: np.ndarray) -> list:
    return tiledsl.load(src).interpret(level=level, target=target, **args).errors


HEADER = """
kernel k(X: f32[N], out Y: f32[N], out Z: f32[N])
  param BN = 16
  grid (cdiv(N, BN)) as (b)
  block 1 waves
{{
  x = X[b*BN : +BN]
{body}
}}
"""


@pytest.mark.parametrize(("level", "target"), [("block", None), ("thread", "gfx942"), ("thread", "sm_90")])
def test_coverage_of_accumulators(level: str, target: str | None) -> None:
    x = np.ones(50, np.float32)

    def errors(body: str) -> list[tuple[str, str]]:
        y, z = np.zeros(50, np.float32), np.zeros(50, np.float32)
        return [(e.kind, e.message) for e in _errors(HEADER.format(body=body), level, target, X=x, Y=y, Z=z)]

    # Updated many times, or not at all: an accumulator the caller initialised.
    assert errors("  atomic_add(Y[0 : +BN], x)\n  atomic_add(Z[b*BN : +BN], x)") == []
    # A store and an atomic on one element race.
    mixed = errors("  atomic_add(Y[b*BN : +BN], x)\n  Y[b*BN : +BN] <- x\n  Z[b*BN : +BN] <- x")
    assert [k for k, _ in mixed] == ["output-mixed-write"]
    assert "50 of 50 elements of 'Y' both stored and updated atomically" in mixed[0][1]
    # An out tensor without atomics must still be written, every element once.
    hole = errors("  atomic_add(Y[b*BN : +BN], x)")
    assert [k for k, _ in hole] == ["output-hole"] and "'Z'" in hole[0][1]
    # An accumulator that no block reached at all.
    never = errors("  if b > 1000 {\n    atomic_add(Y[b*BN : +BN], x)\n  }\n  Z[b*BN : +BN] <- x")
    assert [k for k, _ in never] == ["output-hole"]
    assert "'Y' is updated atomically in the kernel, but no block reached any of its 50 elements" in never[0][1]


def test_stores_into_an_accumulator_are_counted() -> None:
    src = """
kernel k(X: f32[N], out Y: f32[N])
  param BN = 16
  grid (cdiv(N, BN)) as (b)
  block 1 waves
{
  atomic_add(Y[b*BN : +BN], X[b*BN : +BN])
  Y[0 : +1] <- X[0 : +1]
}
"""
    for level, target in [("block", None), ("thread", "gfx1100")]:
        kinds = sorted({e.kind for e in _errors(src, level, target, X=np.ones(40, np.float32),
                                                 Y=np.zeros(40, np.float32))})
        assert kinds == ["output-double-write", "output-mixed-write"]
