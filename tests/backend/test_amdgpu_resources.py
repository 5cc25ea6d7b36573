"""Metadata (ELF note, asm YAML, asm comments), Resources and occupancy, MessagePack decoding."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from backend_kernels import build_pressure_kernel, build_tiny_kernel
from hypothesis import given
from hypothesis import strategies as st

from tiledsl.backend_amdgpu import (
    AMD_ARCHES,
    CodeObjectError,
    Resources,
    kernel_info_from_asm,
    metadata_from_asm,
    read_metadata,
)
from tiledsl.backend_amdgpu.metadata import _MsgpackReader
from tiledsl.llvm import ir


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942", "gfx1100"])
def test_note_yaml_and_asm_comments_agree(arch, amd_targets):
    t = amd_targets[arch]
    c = t.compile(build_pressure_kernel(t, live_values=40, block_threads=256, lds_bytes=4096))
    note = read_metadata(c.object)["amdhsa.kernels"][0]
    yaml = metadata_from_asm(c.asm)["amdhsa.kernels"][0]
    for key, value in yaml.items():
        assert note[key] == value, key
    assert {".vgpr_count", ".sgpr_count", ".group_segment_fixed_size", ".vgpr_spill_count"} <= yaml.keys()
    comments = kernel_info_from_asm(c.asm)["pressure"]
    r = c.resources()
    # TotalNumVgprs (VGPRs + AGPRs) is printed only where AGPRs exist (gfx90a/gfx942).
    assert r.vgprs == comments.get("TotalNumVgprs", comments["NumVgprs"])
    assert r.sgprs == comments["TotalNumSgprs"]
    assert r.scratch_bytes == comments["ScratchSize"]
    assert r.lds_bytes == comments["LDSByteSize"] == 4096
    assert r.agprs == comments.get("NumAgprs", 0)
    assert r.waves_per_simd == comments["Occupancy"]
    assert r.wave_size == t.wave_size and r.max_flat_workgroup_size == 256


def test_linked_code_object_has_the_same_metadata(amd_targets, linker):
    c = amd_targets["gfx942"].compile(build_tiny_kernel(amd_targets["gfx942"]))
    assert read_metadata(c.link(linker))["amdhsa.kernels"] == read_metadata(c.object)["amdhsa.kernels"]


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942"])
def test_default_flat_workgroup_size_spills_and_the_real_block_size_does_not(arch, amd_targets):
    """160 live floats: a 1024-thread block (LLVM's default bound) caps gfx9 at 128 VGPRs and
    spills; 256 threads lets the kernel use 166 VGPRs with no spill (docs/targets/amdgpu.md §4.1)."""
    t = amd_targets[arch]
    default = t.compile(build_pressure_kernel(t, live_values=160, block_threads=1024)).resources()
    right = t.compile(build_pressure_kernel(t, live_values=160, block_threads=256)).resources()
    assert default.max_flat_workgroup_size == 1024 and right.max_flat_workgroup_size == 256
    assert default.vgprs <= 128 and default.vgpr_spills > 0 and default.scratch_bytes > 0 and default.spills
    assert right.vgprs > 128 and right.vgpr_spills == 0 and right.scratch_bytes == 0 and not right.spills


@pytest.mark.parametrize(
    ("arch", "live", "block", "lds"),
    [
        ("gfx942", 40, 256, 0),
        ("gfx942", 100, 256, 0),
        ("gfx942", 8, 256, 40000),
        ("gfx90a", 8, 64, 20000),
        ("gfx90a", 160, 256, 3000),
        ("gfx1100", 70, 256, 0),
        ("gfx1100", 8, 1024, 40000),
        ("gfx1100", 160, 64, 65536),
        ("gfx1030", 100, 256, 20000),
    ],
)
def test_occupancy_matches_llvm(arch, live, block, lds, amd_targets):
    t = amd_targets[arch]
    c = t.compile(build_pressure_kernel(t, live, block, lds))
    assert c.resources().waves_per_simd == kernel_info_from_asm(c.asm)["pressure"]["Occupancy"]


def _md(vgprs: int, lds: int = 0, block: int = 256, sgprs: int = 16, wave: int = 64) -> dict[str, Any]:
    return {".name": "k", ".vgpr_count": vgprs, ".sgpr_count": sgprs, ".group_segment_fixed_size": lds,
            ".max_flat_workgroup_size": block, ".wavefront_size": wave}


@pytest.mark.parametrize(
    ("arch", "md", "dynamic", "waves", "limiter"),
    [
        ("gfx942", _md(vgprs=7), 0, 8, "wave slots"),  # below one granule: no VGPR limit
        ("gfx942", _md(vgprs=128), 0, 4, "vgprs"),  # 512 // 128
        ("gfx942", _md(vgprs=129), 0, 3, "vgprs"),  # 512 // 136
        ("gfx942", _md(vgprs=512), 0, 1, "vgprs"),
        ("gfx942", _md(vgprs=32, lds=32768), 0, 2, "lds"),  # 2 blocks of 4 waves on 4 SIMDs
        ("gfx942", _md(vgprs=32, lds=16384), 16384, 2, "lds"),  # dynamic LDS counts too
        ("gfx90a", _md(vgprs=32, sgprs=102), 0, 7, "sgprs"),
        ("gfx1100", _md(vgprs=256, wave=32), 0, 5, "vgprs"),  # 1536 // 264
        ("gfx1100", _md(vgprs=96, wave=32), 0, 16, "wave slots"),  # 1536 // 96 = 16
        ("gfx1030", _md(vgprs=96, wave=32), 0, 10, "vgprs"),  # 1024 // 96
    ],
)
def test_occupancy_rules(arch, md, dynamic, waves, limiter):
    r = Resources.from_metadata(md, AMD_ARCHES[arch], dynamic_lds_bytes=dynamic)
    assert (r.waves_per_simd, r.occupancy_limiter) == (waves, limiter)


def test_resources_table_shows_the_numbers(amd_targets):
    t = amd_targets["gfx942"]
    r = t.compile(build_pressure_kernel(t, live_values=160, block_threads=1024)).resources(dynamic_lds_bytes=512)
    table = r.table()
    assert f"VGPRs      {r.vgprs}" in table
    assert f"VGPR {r.vgpr_spills}, SGPR 0" in table
    assert "+ 512 B dynamic" in table and "gfx942, wave64, block 1024" in table
    assert f"{r.waves_per_simd} waves per SIMD (limited by {r.occupancy_limiter})" in table


def test_metadata_of_several_kernels(amd_targets):
    t = amd_targets["gfx90a"]
    m = t.new_module("two")
    for name, block in (("first", 64), ("second", 512)):
        fn = t.declare_kernel(m, name, [t.global_ptr_type], block)
        b = ir.IRBuilder(fn.append_basic_block())
        b.store(t.thread_id(b), fn.args[0])
        b.ret_void()
    c = t.compile(m)
    assert c.kernel_names() == ["first", "second"]
    yaml = {k[".name"]: k for k in metadata_from_asm(c.asm)["amdhsa.kernels"]}
    assert yaml["second"][".max_flat_workgroup_size"] == 512
    assert set(kernel_info_from_asm(c.asm)) == {"first", "second"}
    assert c.resources("second").max_flat_workgroup_size == 512
    with pytest.raises(ValueError, match="2 kernels"):
        c.resources()
    with pytest.raises(KeyError, match="third"):
        c.resources("third")


def test_non_amdgpu_bytes_are_rejected():
    with pytest.raises(CodeObjectError, match="not a little-endian ELF64"):
        read_metadata(b"MZ not an elf")


# ---- MessagePack: round trip through a test-side encoder ----------------------------------------
def _encode(v: Any) -> bytes:
    """A straightforward MessagePack encoder, written independently of the decoder."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        for tag, fmt in ((0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"), (0xCF, ">Q")) if v > 0 else \
                ((0xD0, ">b"), (0xD1, ">h"), (0xD2, ">i"), (0xD3, ">q")):
            try:
                return bytes([tag]) + struct.pack(fmt, v)
            except struct.error:
                continue
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        raw = v.encode()
        head = bytes([0xA0 | len(raw)]) if len(raw) < 32 else (
            b"\xd9" + struct.pack(">B", len(raw)) if len(raw) < 256 else b"\xda" + struct.pack(">H", len(raw)))
        return head + raw
    if isinstance(v, bytes):
        return b"\xc4" + struct.pack(">B", len(v)) + v
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(_encode(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(_encode(k) + _encode(x) for k, x in v.items())
    raise TypeError(v)


_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
            | st.floats(allow_nan=False) | st.text(max_size=300) | st.binary(max_size=40))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=20)
                       | st.dictionaries(st.text(max_size=12), inner, max_size=20), max_leaves=40)


@given(_values)
def test_msgpack_decoder_round_trips(value):
    assert _MsgpackReader(_encode(value)).value() == value


def test_msgpack_decoder_rejects_truncated_and_extension_data():
    with pytest.raises(CodeObjectError, match="truncated"):
        _MsgpackReader(_encode("hello")[:-2]).value()
    with pytest.raises(CodeObjectError, match="0xd4"):
        _MsgpackReader(b"\xd4\x01\x00").value()
