"""``program.interpret``'s arguments: any writeable ``out`` array receives the result (Fortran
order, strided views), every misuse raises ``ArgumentError`` naming the parameter instead of
running on NaNs or wrapped integers, and a negative grid extent is a located error."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tiledsl
from tiledsl import ArgumentError

SCALE = """
kernel scale(X: f32[M, N], out Y: f32[M, N], s: f32, n: i32)
  param BM = 16, BN = 32
  grid (cdiv(M, BM), cdiv(N, BN)) as (i, j)
  block 2 waves
{
  Y[i*BM : +BM, j*BN : +BN] <- X[i*BM : +BM, j*BN : +BN] * s + f32(n)
}
"""
INTS = """
kernel ints(I: i32[N], out J: i32[N])
  grid (cdiv(N, 64)) as (b)
  block 1 waves
{
  J[b*64 : +64] <- I[b*64 : +64] + 1
}
"""
LEVELS = [("block", None), ("thread", "gfx942"), ("thread", "sm_90")]


@pytest.fixture(scope="module")
def prog() -> tiledsl.Program:
    return tiledsl.load(SCALE)


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((37, 70)).astype(np.float32)


# ---------------------------------------------------------------- out arrays of any layout

@pytest.mark.parametrize("level, target", LEVELS)
@pytest.mark.parametrize("make_out", [
    lambda: np.zeros((37, 70), np.float32, order="F"),
    lambda: np.zeros((74, 140), np.float32)[::2, 1::2],        # a strided view
    lambda: np.zeros((70, 37), np.float32).T,                   # a transposed view
    lambda: np.zeros((37, 70), np.float64, order="F"),          # another float dtype
], ids=["fortran", "strided", "transposed", "f64-fortran"])
def test_any_writeable_out_array_receives_the_result(prog: tiledsl.Program, level: str, target: str | None,
                                                     make_out: Any) -> None:
    x = _x()
    out = make_out()
    base = out.base
    report = prog.interpret(level=level, target=target, X=x, Y=out, s=0.5, n=3)
    assert report.ok, str(report)
    np.testing.assert_allclose(out, x * np.float32(0.5) + 3, rtol=1e-6)
    if base is not None:      # the view wrote through to its base, and nowhere else
        assert np.count_nonzero(base) == np.count_nonzero(out)


@pytest.mark.parametrize("level, target", LEVELS)
def test_inputs_in_fortran_order_and_strided_views_read_right(prog: tiledsl.Program, level: str,
                                                              target: str | None) -> None:
    x = _x()
    for view in (np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2]):
        out = np.zeros_like(x)
        assert prog.interpret(level=level, target=target, X=view, Y=out, s=2.0, n=0).ok
        np.testing.assert_array_equal(out, x * 2)


@pytest.mark.parametrize("level, target", LEVELS)
def test_an_out_array_that_is_also_an_input_is_read_before_written(prog: tiledsl.Program, level: str,
                                                                   target: str | None) -> None:
    x = _x()
    want = x * 3 - 1
    assert prog.interpret(level=level, target=target, X=x, Y=x, s=3.0, n=-1).ok
    np.testing.assert_array_equal(x, want)


def test_bfloat16_arrays_from_ml_dtypes() -> None:
    prog = tiledsl.load(SCALE.replace("f32[M, N]", "bf16[M, N]").replace("* s + f32(n)", "* bf16(s) + bf16(n)"))
    x = _x().astype(ml_dtypes.bfloat16)
    out = np.zeros((70, 37), ml_dtypes.bfloat16).T
    assert prog.interpret(X=x, Y=out, s=1.0, n=1).ok
    np.testing.assert_array_equal(out, (x.astype(np.float32) + 1).astype(ml_dtypes.bfloat16))


# ---------------------------------------------------------------- scalars

@pytest.mark.parametrize("value, fragment", [
    (None, "give a number, not None"),
    ("0.1", "give a number, not '0.1'"),
    (1j, "not the complex 1j"),
    (np.complex64(2), "not the complex"),
    (True, "not the bool True"),
    (np.bool_(False), "not the bool False"),
    (np.ones(3, np.float32), "not an array of shape (3,)"),
    (np.ones((1, 1)), "not an array of shape (1, 1)"),
    ([0.5], "give a number, not list"),
    (object(), "give a number, not object"),
])
def test_a_float_scalar_must_be_a_real_number(prog: tiledsl.Program, value: Any, fragment: str) -> None:
    y = np.full((37, 70), -1, np.float32)
    with pytest.raises(ArgumentError, match="'s' is a scalar f32 parameter") as info:
        prog.interpret(X=_x(), Y=y, s=value, n=1)
    assert fragment in str(info.value)
    assert (y == -1).all()                 # nothing ran
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("value, fragment", [
    (2**31, "2147483648 is outside [-2147483648, 2147483647]"),
    (-2**31 - 1, "is outside"),
    (np.int64(2**40), "is outside"),
    (1.5, "1.5 has a fraction"),
    (np.float32(-0.25), "has a fraction"),
    (float("nan"), "nan has no integer value"),
    (float("inf"), "inf has no integer value"),
    (True, "not the bool True"),
    ("3", "give a number"),
])
def test_an_i32_scalar_must_be_an_integer_in_range(prog: tiledsl.Program, value: Any, fragment: str) -> None:
    with pytest.raises(ArgumentError, match="'n' is a scalar i32 parameter") as info:
        prog.interpret(X=_x(), Y=np.zeros((37, 70), np.float32), s=1.0, n=value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("s, n, want_s, want_n", [
    (np.float32(0.25), np.int64(3), 0.25, 3),
    (np.array(0.25), np.array(-3), 0.25, -3),       # 0-d arrays are scalars
    (1, 3.0, 1.0, 3),                               # an int for a float; a float without a fraction
    (0.1, np.uint8(7), np.float32(0.1), 7),         # rounded to f32
    (1e300, -2**31, np.inf, -2**31),                # overflows f32 to inf, as a store rounds
])
def test_accepted_scalars(prog: tiledsl.Program, s: Any, n: Any, want_s: float, want_n: int) -> None:
    x = _x()
    y = np.zeros_like(x)
    assert prog.interpret(X=x, Y=y, s=s, n=n).ok
    with np.errstate(over="ignore", invalid="ignore"):
        want = x * np.float32(want_s) + np.float32(want_n)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("s", [float("nan"), float("inf"), -np.inf, np.float16(np.nan)])
def test_nan_and_inf_are_legal_floats(prog: tiledsl.Program, s: float) -> None:
    x = _x()
    y = np.zeros_like(x)
    assert prog.interpret(X=x, Y=y, s=s, n=0).ok
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(y, x * np.float32(s))


# ---------------------------------------------------------------- tensors

@pytest.mark.parametrize("make, fragment", [
    (lambda x: x.astype(np.int32), "'X' is f32: it needs a floating-point array, got int32"),
    (lambda x: x > 0, "got bool"),
    (lambda x: x.astype(np.complex64), "got complex64"),
    (lambda x: x.astype(object), "got object"),
    (lambda x: x.tolist(), "'X' must be an array (NumPy, a PyTorch tensor, DLPack or anything with __array__), got list"),
    (lambda x: x[:, :, None], "'X' must have 2 dims"),
])
def test_tensor_of_the_wrong_kind(prog: tiledsl.Program, make: Any, fragment: str) -> None:
    with pytest.raises(ArgumentError) as info:
        prog.interpret(X=make(_x()), Y=np.zeros((37, 70), np.float32), s=1.0, n=1)
    assert fragment in str(info.value)


def test_i32_tensors_take_integers_that_fit() -> None:
    prog = tiledsl.load(INTS)
    out = np.zeros(100, np.int64)
    assert prog.interpret(I=np.arange(100, dtype=np.uint32), J=out).ok
    np.testing.assert_array_equal(out, np.arange(1, 101))
    for bad, value in ((np.full(100, 2**31, np.int64), 2**31), (np.full(100, 2**32 - 1, np.uint32), 2**32 - 1),
                       (np.full(100, -2**40, np.int64), -2**40)):
        with pytest.raises(ArgumentError, match=f"'I' is i32 but holds {value}, outside"):
            prog.interpret(I=bad, J=out)
    with pytest.raises(ArgumentError, match="'I' is i32: it needs an integer array, got float32"):
        prog.interpret(I=np.zeros(100, np.float32), J=out)


def test_read_only_out_missing_and_unknown_arguments(prog: tiledsl.Program) -> None:
    x = _x()
    ro = np.zeros_like(x)
    ro.flags.writeable = False
    with pytest.raises(ArgumentError, match="out array 'Y' is read-only"):
        prog.interpret(X=x, Y=ro, s=1.0, n=1)
    with pytest.raises(ArgumentError, match="missing argument 'n'"):
        prog.interpret(X=x, Y=np.zeros_like(x), s=1.0)
    with pytest.raises(ArgumentError, match="missing argument 'Y'"):
        prog.interpret(X=x, s=1.0, n=1)
    with pytest.raises(ArgumentError, match="'scale' has no parameter 'Z'"):
        prog.interpret(X=x, Y=np.zeros_like(x), s=1.0, n=1, Z=x)
    with pytest.raises(ArgumentError, match="dim N is 70 in 'X' but 71 in 'Y'"):
        prog.interpret(X=x, Y=np.zeros((37, 71), np.float32), s=1.0, n=1)
    with pytest.raises(ArgumentError, match="level must be 'block' or 'thread'"):
        prog.interpret(level="warp", X=x, Y=np.zeros_like(x), s=1.0, n=1)
    with pytest.raises(ArgumentError, match="unknown target 'gfx9999'"):
        prog.interpret(level="thread", target="gfx9999", X=x, Y=np.zeros_like(x), s=1.0, n=1)


# ---------------------------------------------------------------- the grid

NEGATIVE_GRID = """
kernel neg(X: f32[N], out Y: f32[N])
  param BM = 64
  grid (cdiv(N, BM) - 5) as (b)
  block 1 waves
{
  Y[b*BM : +BM] <- X[b*BM : +BM]
}
"""


@pytest.mark.parametrize("level, target", [("block", None), ("thread", "gfx942"), ("thread", "generic")])
def test_a_negative_grid_extent_is_located_at_the_grid(level: str, target: str | None) -> None:
    prog = tiledsl.load(NEGATIVE_GRID)
    x = np.zeros(50, np.float32)
    with pytest.raises(tiledsl.TdslError) as info:
        prog.interpret(level=level, target=target, X=x, Y=np.zeros_like(x))
    err = info.value
    assert (err.loc.line, err.loc.col) == (4, 21)
    assert "grid axis 0 (b) has extent -4 with N=50; a grid extent must not be negative" in err.message
    assert "grid (cdiv(N, BM) - 5)" in err.format()
    # where the extent is not negative, the same program runs (and leaves rows uncovered: a hole)
    report = prog.interpret(level=level, target=target, X=np.ones(400, np.float32), Y=np.zeros(400, np.float32))
    assert report.blocks == 2


def test_a_constant_negative_grid_extent_fails_check() -> None:
    with pytest.raises(tiledsl.TdslError) as info:
        tiledsl.load(NEGATIVE_GRID.replace("cdiv(N, BM) - 5", "BM - 100"))
    assert (info.value.loc.line, info.value.loc.col) == (4, 12)
    assert "a grid extent must not be negative, got -36" in info.value.message
    assert tiledsl.load(NEGATIVE_GRID.replace("cdiv(N, BM) - 5", "BM - 100"), params={"BM": 100})
