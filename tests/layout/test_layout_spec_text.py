"""Layout spec text: canonical printing, parsing back, and the errors for bad text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiledsl.layout import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    LayoutError,
    LayoutSpec,
    LayoutSyntaxError,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
    parse_layout_spec,
)

INSTR_NAMES = ["mfma_f32_32x32x8_f16", "mfma_f32_16x16x16_bf16", "wmma_f32_16x16x16_f16", "mma_m16n8k16_f16"]


@pytest.mark.parametrize(("spec", "text"), [
    (BlockedSpec((1, 8), (1, 0), (4, 1)), "blocked(spt=[1,8], order=[1,0], waves=[4,1])"),
    (BlockedSpec(), "blocked"),
    (BlockedSpec(waves=(2,)), "blocked(waves=[2])"),
    (MmaSpec((4, 1)), "mma(waves=[4,1])"),
    (MmaSpec((2, 2), instr="mfma_f32_16x16x16_f16"), "mma(waves=[2,2], instr=mfma_f32_16x16x16_f16)"),
    (MmaSpec((4, 1), swap=True), "mma(waves=[4,1], swap=true)"),
    (DotOperandSpec(MmaSpec((4, 1)), 0), "dot_operand(0, mma(waves=[4,1]))"),
    (SliceSpec(MmaSpec((4, 1)), 1), "slice(1, mma(waves=[4,1]))"),
    (SliceSpec(BlockedSpec((1, 4)), 0, size=64), "slice(0, blocked(spt=[1,4]), size=64)"),
    (ReplicatedSpec(), "replicated"),
    (ExpandSpec(1, SliceSpec(BlockedSpec((1, 4)), 1, size=96)), "expand(1, slice(1, blocked(spt=[1,4]), size=96))"),
])
def test_canonical_text(spec: LayoutSpec, text: str) -> None:
    assert str(spec) == text
    assert parse_layout_spec(text) == spec


@pytest.mark.parametrize(("text", "spec"), [
    ("mma( waves = [4, 1] )", MmaSpec((4, 1))),
    ("mma(swap=false, waves=[1,4])", MmaSpec((1, 4), swap=False)),
    ("blocked()", BlockedSpec()),
    ("  replicated  ", ReplicatedSpec()),
    ("blocked(waves=[2,2], spt=[2,2])", BlockedSpec((2, 2), None, (2, 2))),
])
def test_lenient_spellings_parse_to_the_canonical_spec(text: str, spec: LayoutSpec) -> None:
    assert parse_layout_spec(text) == spec


def test_lists_are_stored_as_tuples() -> None:
    spec = MmaSpec([4, 1])  # type: ignore[arg-type]
    assert spec == MmaSpec((4, 1)) and hash(spec) == hash(MmaSpec((4, 1)))
    assert BlockedSpec([1, 8]).size_per_thread == (1, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "fragment"), [
    ("mma(waves=[4,1)", "expected ',' or ']' at column 15"),
    ("mma", "expected '(' at column 4"),
    ("mma()", "expected one of waves, instr, swap at column 5"),
    ("mma(instr=mfma_f32_32x32x8_f16)", "mma needs waves=[M,N]"),
    ("mma(waves=[4,1], waves=[4,1])", "given twice"),
    ("mma(waves=[4,1], swap=yes)", "swap must be true or false"),
    ("mma(waves=[4,1,1])", "2 entries"),
    ("mma(waves=[0,1])", "positive integers"),
    ("mma(waves=4)", "must be a list"),
    ("mma(waves=[4,1]) extra", "expected end of layout at column 18"),
    ("tiled(x=1)", "expected a layout (blocked, mma, dot_operand, slice, expand, replicated) at column 1"),
    ("expand(-1, replicated)", "non-negative"),
    ("expand(0, replicated, size=1)", "expected ')'"),
    ("blocked(order=[0,0])", "permutation"),
    ("blocked(spt=[1,8], order=[0])", "disagree on the rank"),
    ("blocked(lanes=[4,8])", "one of spt, order, waves"),
    ("dot_operand(2, mma(waves=[4,1]))", "0 (A) or 1 (B)"),
    ("dot_operand(0, blocked)", "needs an mma parent"),
    ("slice(-1, replicated)", "non-negative"),
    ("slice(0, replicated, sz=4)", "expected 'size'"),
    ("mma(waves=[4;1])", "unexpected character ';' at column 13"),
    ("", "expected a layout"),
])
def test_syntax_errors(text: str, fragment: str) -> None:
    with pytest.raises(LayoutSyntaxError) as info:
        parse_layout_spec(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LayoutError)


def test_specs_reject_bad_values_when_built_directly() -> None:
    with pytest.raises(LayoutError, match="permutation"):
        BlockedSpec(order=(1, 1))
    with pytest.raises(LayoutError, match="needs an mma parent"):
        DotOperandSpec(BlockedSpec(), 0)  # type: ignore[arg-type]
    with pytest.raises(LayoutError, match="swap must be"):
        MmaSpec((1, 1), swap="yes")  # type: ignore[arg-type]


# --- print -> parse -> print over generated specs ---------------------------------------------------

_ints = st.integers(min_value=1, max_value=16)


@st.composite
def _blocked(draw: st.DrawFn) -> BlockedSpec:
    rank = draw(st.integers(1, 3))
    spt = draw(st.none() | st.lists(_ints, min_size=rank, max_size=rank).map(tuple))
    order = draw(st.none() | st.permutations(list(range(rank))).map(tuple))
    waves = draw(st.none() | st.lists(_ints, min_size=rank, max_size=rank).map(tuple))
    return BlockedSpec(spt, order, waves)


_mma = st.builds(MmaSpec, st.tuples(_ints, _ints), st.none() | st.sampled_from(INSTR_NAMES), st.booleans())
_leaf = _blocked() | _mma | st.just(ReplicatedSpec()) | st.builds(DotOperandSpec, _mma, st.sampled_from([0, 1]))
_specs = st.recursive(
    _leaf,
    lambda inner: st.builds(SliceSpec, inner, st.integers(0, 3), st.none() | st.integers(1, 256))
    | st.builds(ExpandSpec, st.integers(0, 3), inner),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@given(_specs)
def test_print_parse_print_is_identical(spec: LayoutSpec) -> None:
    text = str(spec)
    parsed = parse_layout_spec(text)
    assert parsed == spec
    assert str(parsed) == text
    assert hash(parsed) == hash(spec)
