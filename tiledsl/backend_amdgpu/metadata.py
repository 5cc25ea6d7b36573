"""AMDGPU kernel metadata, read from a code object (ELF note) or from the assembly text.

The HSA code object carries one ``NT_AMDGPU_METADATA`` note (owner ``"AMDGPU"``, type 32) whose
payload is MessagePack (docs/targets/llvm-pipeline.md §5.3; LLVM AMDGPUUsage, "Code Object V3+ Metadata").
It is decoded here with a small reader of the MessagePack subset LLVM writes, rather than the
``msgpack`` package: the format is fixed, the payload is a few kilobytes, and tiledsl then needs
no extra dependency. The same fields appear as YAML in the ``.amdgpu_metadata`` block of
``emit_assembly()`` output; ``metadata_from_asm`` reads those without a YAML library.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any

NT_AMDGPU_METADATA = 32
_SHT_NOTE = 7
_EM_AMDGPU = 224
#: ELF EI_ABIVERSION -> code object version (AMDGPUUsage "ELF Header").
_ABI_VERSION_TO_COV = {2: 4, 3: 5, 4: 6}


class CodeObjectError(ValueError):
    """The bytes are not an AMDGPU ELF, or lack the metadata note."""


# ---- ELF -----------------------------------------------------------------------------------
def _check_elf(elf: bytes) -> None:
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise CodeObjectError("not a little-endian ELF64 file")
    (machine,) = struct.unpack_from("<H", elf, 18)
    if machine != _EM_AMDGPU:
        raise CodeObjectError(f"ELF machine {machine} is not AMDGPU ({_EM_AMDGPU})")


def code_object_version(elf: bytes) -> int:
    """The HSA code object version (4, 5, 6) from the ELF header's EI_ABIVERSION."""
    _check_elf(elf)
    try:
        return _ABI_VERSION_TO_COV[elf[8]]
    except KeyError:
        raise CodeObjectError(f"unknown EI_ABIVERSION {elf[8]}") from None


def elf_flags(elf: bytes) -> int:
    """``e_flags``: the gfx arch (EF_AMDGPU_MACH) and xnack/sramecc settings."""
    _check_elf(elf)
    return struct.unpack_from("<I", elf, 48)[0]


def _notes(elf: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(owner, type, descriptor) of every note in the SHT_NOTE sections."""
    (shoff,) = struct.unpack_from("<Q", elf, 40)
    shentsize, shnum = struct.unpack_from("<HH", elf, 58)
    for i in range(shnum):
        header = shoff + i * shentsize
        (sh_type,) = struct.unpack_from("<I", elf, header + 4)
        if sh_type != _SHT_NOTE:
            continue
        offset, size = struct.unpack_from("<QQ", elf, header + 24)
        pos, end = offset, offset + size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0").decode(errors="replace")
            desc = pos + 12 + _align4(namesz)
            yield name, ntype, elf[desc : desc + descsz]
            pos = desc + _align4(descsz)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def read_metadata(elf: bytes) -> dict[str, Any]:
    """Decode the AMDGPU metadata note of a code object (linked ``.hsaco`` or relocatable ``.o``).

    Returns the MessagePack map as Python values: ``md["amdhsa.kernels"][i][".vgpr_count"]``.
    """
    _check_elf(elf)
    for owner, ntype, desc in _notes(elf):
        if owner == "AMDGPU" and ntype == NT_AMDGPU_METADATA:
            value = _MsgpackReader(desc).value()
            if not isinstance(value, dict):
                raise CodeObjectError("AMDGPU metadata note is not a map")
            return value
    raise CodeObjectError("no NT_AMDGPU_METADATA note (owner AMDGPU, type 32)")


# ---- MessagePack (the subset in AMDGPU metadata: no extension types) ---------------------------
_CONSTANTS = {0xC0: None, 0xC2: False, 0xC3: True}
_NUMBERS = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
#: tag -> (kind, struct format of the length that follows)
_SIZED = {0xC4: ("bin", ">B"), 0xC5: ("bin", ">H"), 0xC6: ("bin", ">I"),
          0xD9: ("str", ">B"), 0xDA: ("str", ">H"), 0xDB: ("str", ">I"),
          0xDC: ("array", ">H"), 0xDD: ("array", ">I"), 0xDE: ("map", ">H"), 0xDF: ("map", ">I")}


class _MsgpackReader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _unpack(self, fmt: str) -> Any:
        try:
            (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise CodeObjectError("truncated MessagePack data") from None
        self.pos += struct.calcsize(fmt)
        return v

    def value(self) -> Any:
        tag = self._unpack(">B")
        if tag <= 0x7F:
            return tag
        if tag >= 0xE0:
            return tag - 0x100
        if tag <= 0x8F:
            return self._compound("map", tag & 0x0F)
        if tag <= 0x9F:
            return self._compound("array", tag & 0x0F)
        if tag <= 0xBF:
            return self._compound("str", tag & 0x1F)
        if tag in _CONSTANTS:
            return _CONSTANTS[tag]
        if tag in _NUMBERS:
            return self._unpack(_NUMBERS[tag])
        if tag in _SIZED:
            kind, fmt = _SIZED[tag]
            return self._compound(kind, self._unpack(fmt))
        raise CodeObjectError(f"MessagePack tag {tag:#x} at byte {self.pos - 1} is not used by AMDGPU metadata")

    def _compound(self, kind: str, n: int) -> Any:
        if kind == "map":
            return {self.value(): self.value() for _ in range(n)}
        if kind == "array":
            return [self.value() for _ in range(n)]
        raw = self.buf[self.pos : self.pos + n]
        if len(raw) != n:
            raise CodeObjectError("truncated MessagePack data")
        self.pos += n
        return raw.decode() if kind == "str" else bytes(raw)


# ---- the assembly text -------------------------------------------------------------------------
_YAML_BLOCK = re.compile(r"^\s*\.amdgpu_metadata\s*$(.*?)^\s*\.end_amdgpu_metadata", re.MULTILINE | re.DOTALL)
_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[.\w]+):\s*(?P<value>.*?)\s*$")


def metadata_from_asm(asm: str) -> dict[str, Any]:
    """The metadata fields of an AMDGPU ``.s`` file's ``.amdgpu_metadata`` YAML block.

    Returns the note's shape: ``{"amdhsa.kernels": [{".vgpr_count": 3, ...}], "amdhsa.target":
    ..., "amdhsa.version": [1, 2]}`` with every *scalar* kernel field; nested ones (``.args``)
    are left out.
    """
    m = _YAML_BLOCK.search(asm)
    if m is None:
        raise CodeObjectError("no .amdgpu_metadata block in the assembly")
    out: dict[str, Any] = {}
    kernels: list[dict[str, Any]] = []
    section = None
    for line in m.group(1).splitlines():
        k = _YAML_KEY.match(line)
        if k is None:
            item = line.strip()
            if section == "amdhsa.version" and item.startswith("- "):
                out[section].append(_yaml_scalar(item[2:]))
            continue
        indent, key, value = len(k["indent"]), k["key"], k["value"]
        if indent == 0:
            section = key
            out[key] = [] if value == "" else _yaml_scalar(value)
        elif section == "amdhsa.kernels" and indent == 2 and k["dash"]:
            kernels.append({})
            _put_scalar(kernels[-1], key, value)
        elif section == "amdhsa.kernels" and indent == 4 and kernels:
            _put_scalar(kernels[-1], key, value)
    out["amdhsa.kernels"] = kernels
    return out


def _put_scalar(kernel: dict[str, Any], key: str, value: str) -> None:
    if value:  # an empty value opens a nested list or map, which we skip
        kernel[key] = _yaml_scalar(value)


def _yaml_scalar(text: str) -> Any:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text.strip("'\"")


_COMMENT = re.compile(r"^; (?P<key>[A-Za-z]+): (?P<value>\d+)\b")
_FUNCTION = re.compile(r"^\s*\.type\s+(?P<name>[^,\s]+),\s*@function")


def kernel_info_from_asm(asm: str) -> dict[str, dict[str, int]]:
    """The ``; NumVgprs: 3``-style comments of verbose AMDGPU asm, per function name.

    These are LLVM's own summary (``TotalNumSgprs``, ``NumVgprs``, ``NumAgprs``,
    ``TotalNumVgprs``, ``ScratchSize``, ``LDSByteSize``, ``Occupancy`` ...), printed after each
    function when the TargetMachine has asm verbosity on.
    """
    info: dict[str, dict[str, int]] = {}
    current = None
    for line in asm.splitlines():
        f = _FUNCTION.match(line)
        if f:
            current = f["name"].strip('"')
            info.setdefault(current, {})
            continue
        c = _COMMENT.match(line)
        if c and current is not None:
            info[current].setdefault(c["key"], int(c["value"]))
    return {name: fields for name, fields in info.items() if fields}
