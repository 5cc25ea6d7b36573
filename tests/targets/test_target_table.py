"""The target table: the facts each Target states, and the lookup by name."""

from __future__ import annotations

import pytest

from tiledsl.targets import CROSS_LANE_OPS, TARGETS, Target, UnknownTargetError, get_target


@pytest.mark.parametrize(("name", "vendor", "wave", "lds"), [
    ("gfx90a", "amd", 64, 65536),
    ("gfx942", "amd", 64, 65536),
    ("gfx1100", "amd", 32, 65536),
    ("sm_80", "nvidia", 32, 163840),
    ("sm_90", "nvidia", 32, 232448),
    ("sm_90a", "nvidia", 32, 232448),
    ("generic", "generic", 32, 65536),
])
def test_target_basics(name: str, vendor: str, wave: int, lds: int) -> None:
    t = get_target(name)
    assert (t.name, t.vendor, t.wave_size, t.lds_bytes, t.max_threads_per_block) == (name, vendor, wave, lds, 1024)
    assert str(t) == name


def test_table_has_exactly_the_eight_targets() -> None:
    assert set(TARGETS) == {"gfx90a", "gfx942", "gfx1100", "gfx1030", "sm_80", "sm_90", "sm_90a", "generic"}


@pytest.mark.parametrize(("name", "instrs"), [
    ("gfx90a", ["mfma_f32_32x32x8_f16", "mfma_f32_16x16x16_f16", "mfma_f32_32x32x8_bf16", "mfma_f32_16x16x16_bf16",
                "mfma_i32_32x32x8_i8", "mfma_i32_16x16x16_i8"]),
    ("gfx942", ["mfma_f32_32x32x8_f16", "mfma_f32_16x16x16_f16", "mfma_f32_32x32x8_bf16", "mfma_f32_16x16x16_bf16",
                "mfma_i32_32x32x16_i8", "mfma_i32_16x16x32_i8"]),
    ("gfx1100", ["wmma_f32_16x16x16_f16", "wmma_f32_16x16x16_bf16", "wmma_i32_16x16x16_i8", "wmma_i32_16x16x16_u8"]),
    ("sm_80", ["mma_m16n8k16_f16", "mma_m16n8k16_bf16", "mma_m16n8k32_s8", "mma_m16n8k32_u8"]),
    ("sm_90", ["mma_m16n8k16_f16", "mma_m16n8k16_bf16", "mma_m16n8k32_s8", "mma_m16n8k32_u8",
               "mma_m16n8k32_e4m3", "mma_m16n8k32_e5m2"]),
    ("generic", []),
])
def test_matrix_instructions(name: str, instrs: list[str]) -> None:
    t = get_target(name)
    assert [i.name for i in t.matrix_instrs] == instrs
    assert all(i.lanes == t.wave_size for i in t.matrix_instrs)
    for instr in t.matrix_instrs:
        assert t.matrix_instr(instr.name) is instr
    assert t.matrix_instr("no_such_instr") is None


@pytest.mark.parametrize(("name", "f16", "bf16"), [
    ("gfx90a", "mfma_f32_32x32x8_f16", "mfma_f32_32x32x8_bf16"),  # 32x32x8 preferred
    ("gfx942", "mfma_f32_32x32x8_f16", "mfma_f32_32x32x8_bf16"),
    ("gfx1100", "wmma_f32_16x16x16_f16", "wmma_f32_16x16x16_bf16"),
    ("sm_80", "mma_m16n8k16_f16", "mma_m16n8k16_bf16"),
    ("sm_90", "mma_m16n8k16_f16", "mma_m16n8k16_bf16"),
])
def test_default_matrix_instr(name: str, f16: str, bf16: str) -> None:
    t = get_target(name)
    assert t.default_matrix_instr("f16").name == f16
    assert t.default_matrix_instr("bf16").name == bf16
    assert t.default_matrix_instr("f32") is None


@pytest.mark.parametrize(("name", "dtype", "variant"), [
    ("gfx942", "i8", "mfma_i32_32x32x16_i8"),
    ("gfx942", "f8e4m3", "mfma_f32_32x32x8_f16"),      # fp8 widens to f16 exactly (FNUZ MFMA unused)
    ("gfx942", "u8", None),
    ("gfx90a", "i8", "mfma_i32_32x32x8_i8"),
    ("gfx1100", "u8", "wmma_i32_16x16x16_u8"),
    ("sm_80", "f8e5m2", "mma_m16n8k16_f16"),
    ("sm_90", "f8e5m2", "mma_m16n8k32_e5m2"),
    ("sm_90", "i8", "mma_m16n8k32_s8"),
])
def test_matrix_variant_of_the_default_instruction(name: str, dtype: str, variant: str | None) -> None:
    t = get_target(name)
    got = t.matrix_variant(t.default_matrix_instr("f16"), dtype)
    assert (got.name if got else None) == variant
    if got is not None:
        assert got.c_map().tolist() == t.default_matrix_instr("f16").c_map().tolist()


def test_generic_has_no_matrix_instruction() -> None:
    assert get_target("generic").default_matrix_instr("f16") is None


@pytest.mark.parametrize(("name", "ops"), [
    ("gfx90a", {"shuffle", "dpp", "swizzle", "readlane"}),
    ("gfx942", {"shuffle", "dpp", "swizzle", "readlane"}),
    ("gfx1100", {"shuffle", "dpp", "swizzle", "permlanex16", "readlane"}),
    ("sm_80", {"shuffle", "shuffle_xor"}),
    ("sm_90", {"shuffle", "shuffle_xor"}),
    ("generic", {"shuffle", "shuffle_xor"}),
])
def test_cross_lane(name: str, ops: set[str]) -> None:
    assert get_target(name).cross_lane == ops
    assert ops <= CROSS_LANE_OPS


def test_async_copy_only_on_nvidia() -> None:
    assert {n for n, t in TARGETS.items() if t.has_async_copy} == {"sm_80", "sm_90", "sm_90a"}


def test_wgmma_only_on_sm90a() -> None:
    assert {n for n, t in TARGETS.items() if t.has_wgmma} == {"sm_90a"}
    assert get_target("sm_90a").matrix_instrs == get_target("sm_90").matrix_instrs


def test_unknown_target_lists_known_names() -> None:
    with pytest.raises(UnknownTargetError) as info:
        get_target("gfx9000")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("unknown target 'gfx9000'")
    for name in TARGETS:
        assert name in message


def test_target_rejects_unknown_cross_lane_name() -> None:
    with pytest.raises(ValueError, match="unknown cross-lane"):
        Target(name="x", vendor="generic", wave_size=32, lds_bytes=1, cross_lane=frozenset({"teleport"}))


def test_target_rejects_instruction_of_other_wave_size() -> None:
    with pytest.raises(ValueError, match="runs in 64 lanes"):
        Target(name="x", vendor="amd", wave_size=32, lds_bytes=1,
               matrix_instrs=get_target("gfx942").matrix_instrs[:1])


def test_targets_are_frozen_and_hashable() -> None:
    t = get_target("gfx942")
    with pytest.raises(AttributeError):
        t.wave_size = 32  # type: ignore[misc]
    assert hash(t) == hash(get_target("gfx942"))
