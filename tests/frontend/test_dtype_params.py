"""Dtype parameters (``dtype T in (f16, bf16) = f16``): one kernel for several dtypes, bound by
``params``/``-D`` or, when interpreting, by the arrays' dtypes (as unbound consts are bound by
their shapes). The located errors are in ``invalid/`` (test_diagnostics.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import DTYPES
from tiledsl.program import array_dtype

ATTENTION = Path(__file__).resolve().parents[2] / "examples" / "attention.tdsl"

# Y = X * 2 + 1 in T, through an LDS tile and a fill of T: every place a dtype is written.
SCALE = """
kernel scale(X: T[M], out Y: T[M], c: T)
  dtype T = f16
  grid (cdiv(M, 16)) as (b)
  block 1 waves
{
  lds t: T[16]
  t <- X[b*16 : +16]
  sync
  one = fill(1, T[16])
  Y[b*16 : +16] <- T(t * c + one)
}
"""
CHOICES = SCALE.replace("dtype T = f16", "dtype T in (f16, bf16) = f16")


def test_the_tile_ir_of_t_bf16_is_the_f16_one_with_bf16_for_f16() -> None:
    """The type parameter changes the dtypes and nothing else; T=f16 given is the default."""
    default = print_op(tiledsl.load(ATTENTION, params={"D": 64}).lowered())
    assert "bf16" not in default
    bf16 = print_op(tiledsl.load(ATTENTION, params={"D": 64, "T": "bf16"}).lowered())
    assert bf16 == default.replace("f16", "bf16")
    assert print_op(tiledsl.load(ATTENTION, params={"D": 64, "T": "f16"}).lowered()) == default


def test_tensor_and_scalar_params_are_seen_with_their_dtype() -> None:
    prog = tiledsl.load(SCALE, params={"T": "f32"})
    assert prog.dtypes == {"T": "f32"}
    assert [(p.name, p.dtype) for p in [*prog.tensor_params, *prog.scalar_params]] == [
        ("X", "f32"), ("Y", "f32"), ("c", "f32")]
    assert [p.dtype for p in prog.ast.params] == ["T", "T", "T"]       # the AST keeps what was written
    assert tiledsl.load(SCALE).dtypes == {"T": "f16"}


def test_every_dtype_is_a_value_of_an_unrestricted_parameter() -> None:
    for dtype in ("f16", "bf16", "f32"):
        assert tiledsl.load(SCALE, params={"T": dtype}).tile_ir().body.args[0].type.dtype == dtype


X_INEXACT = np.array([1 + 2.0**-12] * 20, np.float32)     # not an f16 (nor a bf16)


def _run(src: str, x: np.ndarray, params: dict | None = None) -> tuple[tiledsl.Program, np.ndarray]:
    prog = tiledsl.load(src, params=params)
    y = np.zeros_like(x)
    assert prog.interpret(X=x, Y=y, c=2.0).ok
    bound, _ = prog.bind_shapes({"X": x, "Y": y})
    return bound, y


def test_the_arrays_dtype_binds_t_when_interpreting() -> None:
    bound, y = _run(SCALE, X_INEXACT)
    assert bound.dtypes == {"T": "f32"}
    np.testing.assert_array_equal(y, X_INEXACT * 2 + 1)                # exact: computed in f32
    bound, y16 = _run(SCALE, X_INEXACT.astype(np.float16))
    assert bound.dtypes == {"T": "f16"}
    np.testing.assert_array_equal(y16, np.float16(3.0))                 # 1 + 2^-12 rounds to 1 in f16


def test_params_win_over_the_arrays() -> None:
    bound, y = _run(SCALE, X_INEXACT, params={"T": "f16"})
    assert bound.dtypes == {"T": "f16"}
    np.testing.assert_array_equal(y, np.float32(3.0))                   # X rounded to f16 on the way in


def test_an_array_of_a_dtype_t_may_not_take_is_converted() -> None:
    """f32 is not among (f16, bf16): f32 arrays keep T at its default and are rounded to it, as
    for a kernel written for f16 (so calls that gave f32 arrays to an f16 kernel still work)."""
    bound, y = _run(CHOICES, X_INEXACT)
    assert bound.dtypes == {"T": "f16"}
    np.testing.assert_array_equal(y, np.float32(3.0))


def test_arrays_of_two_dtypes_are_an_error() -> None:
    prog = tiledsl.load(SCALE)
    with pytest.raises(tiledsl.ArgumentError, match=r"dtype T is taken from the arrays, but 'X' is f16 "
                                                     r"and 'Y' is f32: give arrays of one dtype, or fix it "
                                                     r"with params="):
        prog.interpret(X=np.zeros(4, np.float16), Y=np.zeros(4, np.float32), c=1.0)
    # With T given, they are converted to it.
    y = np.zeros(4, np.float32)
    assert tiledsl.load(SCALE, params={"T": "f16"}).interpret(X=np.ones(4, np.float16), Y=y, c=1.0).ok
    np.testing.assert_array_equal(y, 2.0)


def test_bf16_arrays_bind_bf16() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = X_INEXACT.astype(ml_dtypes.bfloat16)
    bound, y = _run(CHOICES, x)
    assert bound.dtypes == {"T": "bf16"} and y.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(y.astype(np.float32), 3.0)


NUMPY_DTYPES = {"float16": "f16", "float32": "f32", "float64": None}


@settings(max_examples=40, deadline=None)
@given(x=st.sampled_from(sorted(NUMPY_DTYPES)), y=st.sampled_from(sorted(NUMPY_DTYPES)),
       restricted=st.booleans(), given_t=st.sampled_from([None, "f16", "f32"]))
def test_the_binding_rule(x: str, y: str, restricted: bool, given_t: str | None) -> None:
    """Given T wins; else the arrays whose dtype T may take decide, and must agree; else the default."""
    src = SCALE.replace("dtype T = f16", "dtype T in (f16, bf16) = f16") if restricted else SCALE
    if restricted and given_t == "f32":
        given_t = "bf16"
    prog = tiledsl.load(src, params={"T": given_t} if given_t else None)
    allowed = ("f16", "bf16") if restricted else DTYPES
    votes = {NUMPY_DTYPES[d] for d in (x, y)} & set(allowed)
    args = {"X": np.zeros(3, x), "Y": np.zeros(3, y)}
    if given_t is None and len(votes) > 1:
        with pytest.raises(tiledsl.ArgumentError, match="dtype T is taken from the arrays"):
            prog.bind_shapes(args)
        return
    bound, _ = prog.bind_shapes(args)
    want = given_t or (votes.pop() if votes else "f16")
    assert bound.dtypes == {"T": want}


def test_array_dtype_names_only_the_dtypes_the_frontend_knows() -> None:
    got = [array_dtype(d) for d in (np.float16, np.float32, np.int32, np.float64)]
    assert got == ["f16", "f32", "i32", None]
    assert array_dtype(np.int8) == ("i8" if "i8" in DTYPES else None)


def test_a_dtype_the_frontend_does_not_know_is_a_located_sema_error_not_a_syntax_error() -> None:
    """Dtypes are names to the grammar: a new dtype is one entry of ``tiledsl.ir.types.DTYPES``."""
    src = SCALE.replace("X: T[M]", "X: f8e4m3[M]")
    if "f8e4m3" in DTYPES:
        pytest.skip("f8e4m3 is a dtype now")
    with pytest.raises(tiledsl.TdslError, match="unknown dtype 'f8e4m3'") as info:
        tiledsl.load(src)
    assert info.value.loc is not None and (info.value.loc.line, info.value.loc.col) == (2, 17)


@pytest.mark.parametrize(("body", "message"), [
    ("T = t", "cannot assign to a dtype parameter 'T'"),
    ("lds T: f16[16]", "LDS tile 'T' is already defined"),
    ("y = T[16]", "a tile type (T[...]) is not a value"),
    ("y = fill(0, U[16])", "fill() needs a tile type"),
])
def test_misuses_of_a_dtype_parameter(body: str, message: str) -> None:
    src = SCALE.replace("  Y[b*16 : +16] <- T(t * c + one)", "  " + body)
    with pytest.raises(tiledsl.TdslError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        tiledsl.load(src)
