"""The LLVM facts the backends are built on, each compiled here from a few lines of LLVM IR.

Every test is one fact of docs/targets/ (named in its docstring): what LLVM 22 accepts, rejects,
aborts on or emits for a target. The backend code relies on these without exercising the
alternative (it never emits the intrinsic that aborts, never leaves out the fence), so without
these tests a change of LLVM could silently turn a reason in a comment false. Kernels that may
abort LLVM are compiled in a forked child (``safe_compile``).
"""

from __future__ import annotations

import re

import pytest

from tiledsl.backend_amdgpu import code_object_version
from tiledsl.backend_amdgpu.metadata import elf_flags
from tiledsl.backend_nvptx import NvptxTarget, PtxasError, PtxasNotFound, find_ptxas, to_cubin
from tiledsl.llvm import CompileError, LlvmAbort

AMD_TID = "declare i32 @llvm.amdgcn.workitem.id.x()"
NV_TID = "declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()"


@pytest.fixture(scope="module")
def nv_targets() -> dict[str, NvptxTarget]:
    return {arch: NvptxTarget(arch) for arch in ("sm_80", "sm_90")}


def amd_kernel(body: str, decls: str = "", attrs: str = "", params: str = "ptr addrspace(1) %o") -> str:
    """A kernel whose body starts with ``%t`` = this thread's x id (so that values are divergent and
    LLVM cannot fold cross-lane operations away)."""
    return f"""{AMD_TID}
{decls}
define amdgpu_kernel void @k({params}) {attrs} {{
  %t = call i32 @llvm.amdgcn.workitem.id.x()
{body}
  ret void
}}
"""


def nv_kernel(body: str, decls: str = "", attrs: str = "", params: str = "ptr addrspace(1) %o") -> str:
    return f"""{NV_TID}
{decls}
define ptx_kernel void @k({params}) {attrs} {{
  %t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
{body}
  ret void
}}
"""


def instructions(asm: str) -> list[str]:
    """The AMDGPU kernel body's instructions (mnemonic and operands), without comments and directives."""
    body = asm.split("; %bb.0:", 1)[1].split("s_endpgm", 1)[0]
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith((";", "."))]


def between_load_and_store(asm: str) -> list[str]:
    """Mnemonics of the arithmetic between the first global load and the first global store."""
    body = instructions(asm)
    first = next(i for i, ln in enumerate(body) if ln.startswith("global_load"))
    last = next(i for i, ln in enumerate(body) if ln.startswith("global_store"))
    return [ln.split()[0] for ln in body[first + 1:last] if not ln.startswith(("s_waitcnt", "s_nop", "s_delay_alu"))]


# ---- docs/targets/llvm-pipeline.md ------------------------------------------------------------

def test_alloca_outside_the_private_address_space_is_rejected(amd_targets) -> None:
    """llvm-pipeline.md §2.3: an alloca on AMDGPU must be in addrspace(5); llvmlite's builder
    cannot write one there, so tiledsl keeps per-thread registers as SSA values."""
    text = amd_kernel("  %a = alloca [4 x float], align 4\n  store float 1.0, ptr %a")
    with pytest.raises(CompileError, match="addrspace\\(5\\)"):
        amd_targets["gfx942"].compile(text)


def test_fp_contraction_needs_the_contract_flag(amd_targets, nv_targets) -> None:
    """llvm-pipeline.md §3.4: no target machine option fuses a multiply and an add; the
    ``contract`` flag on both does (one v_fma_f32 / fma.rn.f32)."""
    def kernel(make, flags: str) -> str:
        return make(f"""  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  %x = load float, ptr addrspace(1) %g
  %m = fmul {flags} float %x, %a
  %y = fadd {flags} float %m, %b
  store float %y, ptr addrspace(1) %g""", params="ptr addrspace(1) %o, float %a, float %b")

    plain = amd_targets["gfx942"].compile(kernel(amd_kernel, "")).asm
    fused = amd_targets["gfx942"].compile(kernel(amd_kernel, "contract")).asm
    assert "v_mul_f32" in plain and "v_add_f32" in plain and "v_fma" not in plain
    assert "v_fma_f32" in fused and "v_mul_f32" not in fused
    plain = nv_targets["sm_90"].compile(kernel(nv_kernel, "")).ptx
    fused = nv_targets["sm_90"].compile(kernel(nv_kernel, "contract")).ptx
    assert "mul.rn.f32" in plain and "add.rn.f32" in plain and "fma.rn.f32" not in plain
    assert "fma.rn.f32" in fused


@pytest.mark.parametrize("initializer", ["zeroinitializer", "[float 1.0, float 2.0, float 3.0, float 4.0]"])
def test_lds_cannot_be_initialised(amd_targets, initializer: str) -> None:
    """llvm-pipeline.md §2.4: an LDS global takes ``undef``; any other initializer ends the process
    in code generation, so tiledsl's arena is always ``undef``."""
    text = amd_kernel("""  %p = getelementptr float, ptr addrspace(3) @lds, i32 %t
  store float 5.0, ptr addrspace(3) %p
  %u = xor i32 %t, 1
  %q = getelementptr float, ptr addrspace(3) @lds, i32 %u
  %v = load float, ptr addrspace(3) %q
  store float %v, ptr addrspace(1) %o""", decls=f"@lds = internal addrspace(3) global [4 x float] {initializer}, align 16")
    with pytest.raises(LlvmAbort, match="unsupported initializer"):
        amd_targets["gfx942"].safe_compile(text)
    assert "ds_read_b32" in amd_targets["gfx942"].compile(text.replace(initializer, "undef")).asm


@pytest.mark.parametrize(("flag", "version"), [("", 6), ("500", 5)])
def test_code_object_version_default_and_module_flag(amd_targets, flag: str, version: int) -> None:
    """llvm-pipeline.md §5.2: LLVM 22 writes code object v6 unless the module flag asks for v5."""
    text = "define amdgpu_kernel void @k(ptr addrspace(1) %o) {\n  store float 1.0, ptr addrspace(1) %o\n  ret void\n}\n"
    if flag:
        text += f'!llvm.module.flags = !{{!0}}\n!0 = !{{i32 1, !"amdhsa_code_object_version", i32 {flag}}}\n'
    assert code_object_version(amd_targets["gfx942"].compile(text).object) == version


# ---- docs/targets/amdgpu.md ---------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "e_flags"), [("gfx90a", 0x53F), ("gfx942", 0x54C), ("gfx1100", 0x041)])
def test_elf_flags_say_any_xnack_and_sramecc(amd_targets, arch: str, e_flags: int) -> None:
    """amdgpu.md §1: with no +xnack/+sramecc feature the object says "any" for both where the
    processor has them (0x100 | 0x400 on top of the EF_AMDGPU_MACH value), so it loads in either
    mode; gfx1100 has neither feature."""
    text = amd_kernel("  store i32 %t, ptr addrspace(1) %o")
    assert elf_flags(amd_targets[arch].compile(text).object) == e_flags


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942"])
def test_kernarg_preload_keeps_a_loading_entry_block(amd_targets, arch: str) -> None:
    """amdgpu.md §4.4: with ``inreg`` arguments the kernel asks for them preloaded into SGPRs, and
    LLVM still starts the code with a block that loads them and branches to the real entry,
    aligned to 256 bytes, where firmware that preloads starts instead."""
    text = amd_kernel("  store i32 %t, ptr addrspace(1) %o", params="ptr addrspace(1) inreg %o")
    asm = amd_targets[arch].compile(text).asm
    assert re.search(r"\.amdhsa_user_sgpr_kernarg_preload_length\s+2\b", asm)
    prologue = asm.split("k:", 1)[1].split(".p2align\t8", 1)[0]
    assert re.search(r"s_load_dwordx2 s\[\d+:\d+\], s\[\d+:\d+\], 0x0", prologue)
    assert "s_branch" in prologue


def _barrier_kernel(fences: str) -> str:
    """Store to LDS, barrier, read a neighbour's word. ``fences``: "none", "plain" or "mmra"."""
    md = ", !mmra !0" if fences == "mmra" else ""
    release = f'  fence syncscope("workgroup") release{md}\n' if fences != "none" else ""
    acquire = f'  fence syncscope("workgroup") acquire{md}\n' if fences != "none" else ""
    text = amd_kernel(f"""  %p = getelementptr float, ptr addrspace(3) @lds, i32 %t
  store float 1.0, ptr addrspace(3) %p
{release}  call void @llvm.amdgcn.s.barrier()
{acquire}  %u = xor i32 %t, 1
  %q = getelementptr float, ptr addrspace(3) @lds, i32 %u
  %v = load float, ptr addrspace(3) %q
  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  store float %v, ptr addrspace(1) %g""",
                      decls="@lds = internal addrspace(3) global [256 x float] undef, align 16\n"
                            "declare void @llvm.amdgcn.s.barrier()",
                      attrs='"amdgpu-flat-work-group-size"="1,256"')
    return text + ('!0 = !{!"amdgpu-synchronize-as", !"local"}\n' if fences == "mmra" else "")


@pytest.mark.parametrize(("arch", "fences", "expected"), [
    # s_barrier alone: the LDS store may still be in flight when the neighbour reads.
    ("gfx942", "none", ["ds_write_b32", "s_barrier", "ds_read_b32"]),
    ("gfx1100", "none", ["ds_store_b32", "s_barrier", "ds_load_b32"]),
    ("gfx942", "plain", ["ds_write_b32", "s_waitcnt lgkmcnt(0)", "s_barrier", "ds_read_b32"]),
    # gfx11: plain workgroup fences also invalidate the vector L0 cache; LDS-only fences do not.
    ("gfx1100", "plain", ["ds_store_b32", "s_waitcnt lgkmcnt(0)", "s_barrier", "buffer_gl0_inv", "ds_load_b32"]),
    ("gfx942", "mmra", ["ds_write_b32", "s_waitcnt lgkmcnt(0)", "s_barrier", "ds_read_b32"]),
    ("gfx1100", "mmra", ["ds_store_b32", "s_waitcnt lgkmcnt(0)", "s_barrier", "ds_load_b32"]),
])
def test_barrier_needs_fences_and_lds_only_fences_skip_the_cache_invalidate(
        amd_targets, arch: str, fences: str, expected: list[str]) -> None:
    """amdgpu.md §3.1-3.2."""
    asm = amd_targets[arch].compile(_barrier_kernel(fences)).asm
    seen = [ln if ln.startswith(("s_waitcnt", "buffer_gl")) else ln.split()[0]
            for ln in instructions(asm) if ln.startswith(("ds_", "s_waitcnt", "s_barrier", "buffer_gl"))]
    first_read = next(i for i, s in enumerate(seen) if s.startswith(("ds_read", "ds_load")))
    assert seen[:first_read + 1] == expected


def _unary_kernel(intrinsic: str, attrs: str = "") -> str:
    return amd_kernel(f"""  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  %x = load float, ptr addrspace(1) %g
  %y = call float @{intrinsic}(float %x)
  store float %y, ptr addrspace(1) %g""", decls=f"declare float @{intrinsic}(float)", attrs=attrs)


@pytest.mark.parametrize("arch", ["gfx942", "gfx1100"])
def test_exp2_costs(amd_targets, arch: str) -> None:
    """amdgpu.md §6: llvm.exp2.f32 under IEEE f32 denormals is a range fix-up around v_exp_f32
    (v_ldexp_f32 included); with flushed denormals, or as llvm.amdgcn.exp2, it is one v_exp_f32."""
    t = amd_targets[arch]
    ieee = between_load_and_store(t.compile(_unary_kernel("llvm.exp2.f32")).asm)
    assert "v_exp_f32_e32" in ieee and "v_ldexp_f32" in ieee and len(ieee) >= 5
    flushed = _unary_kernel("llvm.exp2.f32", '"denormal-fp-math-f32"="preserve-sign,preserve-sign"')
    assert between_load_and_store(t.compile(flushed).asm) == ["v_exp_f32_e32"]
    assert between_load_and_store(t.compile(_unary_kernel("llvm.amdgcn.exp2.f32")).asm) == ["v_exp_f32_e32"]


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942", "gfx1100"])
def test_f32_to_bf16_is_a_software_sequence_on_amd(amd_targets, arch: str) -> None:
    """amdgpu.md §7: no hardware f32->bf16 conversion before gfx950; LLVM's own fptrunc is integer
    rounding (bfe, add3, a NaN select), which tiledsl writes itself on i16 bit patterns."""
    text = amd_kernel("""  %g = getelementptr <2 x float>, ptr addrspace(1) %o, i32 %t
  %x = load <2 x float>, ptr addrspace(1) %g
  %y = fptrunc <2 x float> %x to <2 x bfloat>
  %h = getelementptr <2 x bfloat>, ptr addrspace(1) %o, i32 %t
  store <2 x bfloat> %y, ptr addrspace(1) %h""")
    ops = between_load_and_store(amd_targets[arch].compile(text).asm)
    assert not [op for op in ops if "cvt" in op and "bf16" in op]
    assert "v_bfe_u32" in ops and "v_add3_u32" in ops and "v_cmp_u_f32_e32" in ops


def test_f32_to_bf16_is_one_cvt_on_nvidia(nv_targets) -> None:
    """amdgpu.md §7 (its NVIDIA counterpart): one cvt.rn.bf16x2.f32 per pair on sm_80/sm_90."""
    text = nv_kernel("""  %g = getelementptr <2 x float>, ptr addrspace(1) %o, i32 %t
  %x = load <2 x float>, ptr addrspace(1) %g
  %y = fptrunc <2 x float> %x to <2 x bfloat>
  %h = getelementptr <2 x bfloat>, ptr addrspace(1) %o, i32 %t
  store <2 x bfloat> %y, ptr addrspace(1) %h""")
    assert nv_targets["sm_80"].compile(text).ptx.count("cvt.rn.bf16x2.f32") == 1


@pytest.mark.parametrize(("intrinsic", "vector"), [
    ("llvm.amdgcn.mfma.f32.16x16x16bf16.1k", "<4 x bfloat>"),
    ("llvm.amdgcn.wmma.f32.16x16x16.bf16.v8f32.v16bf16", "<16 x bfloat>"),
])
def test_bf16_matrix_operands_must_be_i16_vectors(amd_targets, intrinsic: str, vector: str) -> None:
    """amdgpu.md §8: the bf16 MFMA/WMMA intrinsics take i16 vectors; bfloat vectors fail the verifier."""
    acc = "<4 x float>" if "mfma" in intrinsic else "<8 x float>"
    tail = ", i32 0, i32 0, i32 0" if "mfma" in intrinsic else ""
    tail_types = ", i32, i32, i32" if "mfma" in intrinsic else ""
    text = amd_kernel(f"""  %a = load {vector}, ptr addrspace(1) %o
  %c = load {acc}, ptr addrspace(1) %o
  %d = call {acc} @{intrinsic}({vector} %a, {vector} %a, {acc} %c{tail})
  store {acc} %d, ptr addrspace(1) %o""", decls=f"declare {acc} @{intrinsic}({vector}, {vector}, {acc}{tail_types})")
    arch = "gfx942" if "mfma" in intrinsic else "gfx1100"
    with pytest.raises(CompileError, match="incorrect argument type"):
        amd_targets[arch].compile(text)


_PERMLANEX16 = ("declare i32 @llvm.amdgcn.permlanex16.i32(i32, i32, i32, i32, i1, i1)",
                "%r = call i32 @llvm.amdgcn.permlanex16.i32(i32 poison, i32 %t, i32 -1, i32 -1, i1 true, i1 false)",
                "v_permlanex16_b32")
_PERMLANE64 = ("declare i32 @llvm.amdgcn.permlane64.i32(i32)",
               "%r = call i32 @llvm.amdgcn.permlane64.i32(i32 %t)",
               "v_permlane64_b32")


@pytest.mark.parametrize(("arch", "op", "exists"), [
    ("gfx90a", _PERMLANEX16, False), ("gfx942", _PERMLANEX16, False), ("gfx1100", _PERMLANEX16, True),
    ("gfx90a", _PERMLANE64, False), ("gfx942", _PERMLANE64, False), ("gfx1100", _PERMLANE64, True),
], ids=["gfx90a-permlanex16", "gfx942-permlanex16", "gfx1100-permlanex16",
        "gfx90a-permlane64", "gfx942-permlane64", "gfx1100-permlane64"])
def test_permlanes_exist_only_on_gfx11(amd_targets, arch: str, op: tuple[str, str, str], exists: bool) -> None:
    """amdgpu.md §9.1: permlanex16 and permlane64 abort LLVM on gfx9 (the abort ends the process,
    hence the forked child); gfx11 has both."""
    decl, call, mnemonic = op
    text = amd_kernel(f"""  {call}
  %g = getelementptr i32, ptr addrspace(1) %o, i32 %t
  store i32 %r, ptr addrspace(1) %g""", decls=decl)
    if exists:
        assert mnemonic in amd_targets[arch].safe_compile(text).asm
    else:
        with pytest.raises(LlvmAbort):
            amd_targets[arch].safe_compile(text)


def test_dpp_max_folds_only_without_ieee_canonicalisation(amd_targets) -> None:
    """amdgpu.md §9.3: a DPP move folds into a following fadd (v_add_f32_dpp) always, into maxnum
    (v_max_f32_dpp) only with nnan or "amdgpu-ieee"="false"; otherwise the IEEE-mode quieting
    adds v_max_f32 canonicalisations. tiledsl's row max sets neither (NaNs must propagate as in
    the interpreters)."""
    def kernel(flags: str, attrs: str) -> str:
        return amd_kernel(f"""  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  %x = load float, ptr addrspace(1) %g
  %xi = bitcast float %x to i32
  %si = call i32 @llvm.amdgcn.update.dpp.i32(i32 poison, i32 %xi, i32 177, i32 15, i32 15, i1 true)
  %s = bitcast i32 %si to float
  %y = call {flags} float @llvm.maxnum.f32(float %x, float %s)
  %yi = bitcast float %y to i32
  %s2i = call i32 @llvm.amdgcn.update.dpp.i32(i32 poison, i32 %yi, i32 78, i32 15, i32 15, i1 true)
  %s2 = bitcast i32 %s2i to float
  %z = fadd float %y, %s2
  store float %z, ptr addrspace(1) %g""",
                          decls="declare i32 @llvm.amdgcn.update.dpp.i32(i32, i32, i32, i32, i32, i1)\n"
                                "declare float @llvm.maxnum.f32(float, float)", attrs=attrs)

    t = amd_targets["gfx942"]
    ieee = between_load_and_store(t.compile(kernel("", "")).asm)
    assert "v_add_f32_dpp" in ieee and "v_max_f32_dpp" not in ieee and "v_mov_b32_dpp" in ieee
    for flags, attrs in (("nnan", ""), ("", '"amdgpu-ieee"="false"')):
        folded = between_load_and_store(t.compile(kernel(flags, attrs)).asm)
        assert "v_max_f32_dpp" in folded and "v_add_f32_dpp" in folded and "v_mov_b32_dpp" not in folded


@pytest.mark.parametrize("arch", ["gfx942", "gfx1100"])
@pytest.mark.parametrize(("vector", "align", "reads"), [
    ("<8 x half>", 16, ["ds_read_b128|ds_load_b128"]),
    ("<8 x half>", 8, ["ds_read2_b64|ds_load_2addr_b64"]),
    ("<8 x half>", 4, ["ds_read2_b32|ds_load_2addr_b32"] * 2),
    ("<4 x half>", 8, ["ds_read_b64|ds_load_b64"]),
])
def test_lds_vector_width_follows_the_stated_alignment(amd_targets, arch: str, vector: str, align: int,
                                                       reads: list[str]) -> None:
    """amdgpu.md §10.2: from a base LLVM cannot see (an external LDS array, a run-time stride), a
    128-bit LDS read is one instruction only when the IR says ``align 16``."""
    text = amd_kernel(f"""  %i = mul i32 %t, %s
  %p = getelementptr half, ptr addrspace(3) @dyn, i32 %i
  %v = load {vector}, ptr addrspace(3) %p, align {align}
  %g = getelementptr {vector}, ptr addrspace(1) %o, i32 %t
  store {vector} %v, ptr addrspace(1) %g""",
                      decls="@dyn = external addrspace(3) global [0 x half], align 16",
                      params="ptr addrspace(1) %o, i32 %s")
    ds = [ln.split()[0] for ln in instructions(amd_targets[arch].compile(text).asm) if ln.startswith("ds_")]
    assert len(ds) == len(reads)
    for op, want in zip(ds, reads):
        assert re.fullmatch(want, op), op


@pytest.mark.parametrize(("arch", "mnemonic"), [("gfx90a", r"global_load_dword v\d+, s\[\d+:\d+\] lds"),
                                                ("gfx942", r"global_load_lds_dword v\d+, s\[\d+:\d+\]"),
                                                ("gfx1100", None)])
def test_global_load_lds_exists_on_gfx9_only(amd_targets, arch: str, mnemonic: str | None) -> None:
    """amdgpu.md §10.4: the global->LDS DMA load is a gfx9 instruction (4 bytes a lane, to an LDS
    base in M0); gfx1100 cannot select it."""
    text = amd_kernel("  call void @llvm.amdgcn.global.load.lds(ptr addrspace(1) %o, ptr addrspace(3) %l, "
                      "i32 4, i32 0, i32 0)",
                      decls="declare void @llvm.amdgcn.global.load.lds(ptr addrspace(1), ptr addrspace(3), i32, i32, i32)",
                      params="ptr addrspace(1) %o, ptr addrspace(3) %l")
    if mnemonic is None:
        with pytest.raises(LlvmAbort, match="(?i)cannot select"):
            amd_targets[arch].safe_compile(text)
    else:
        assert re.search(mnemonic, amd_targets[arch].safe_compile(text).asm)


@pytest.mark.parametrize(("arch", "intrinsic", "types"), [
    ("gfx942", "llvm.amdgcn.wmma.f32.16x16x16.f16.v8f32.v16f16", ("<16 x half>", "<8 x float>", "")),
    ("gfx1100", "llvm.amdgcn.mfma.f32.16x16x16f16", ("<4 x half>", "<4 x float>", ", i32 0, i32 0, i32 0")),
])
def test_matrix_instructions_of_the_other_family_abort(amd_targets, arch: str, intrinsic: str,
                                                       types: tuple[str, str, str]) -> None:
    """amdgpu.md §11.3: MFMA exists on CDNA only and WMMA on RDNA3 only; the wrong one aborts LLVM."""
    vec, acc, tail = types
    tail_types = ", i32, i32, i32" if tail else ""
    text = amd_kernel(f"""  %a = load {vec}, ptr addrspace(1) %o
  %c = load {acc}, ptr addrspace(1) %o
  %d = call {acc} @{intrinsic}({vec} %a, {vec} %a, {acc} %c{tail})
  store {acc} %d, ptr addrspace(1) %o""", decls=f"declare {acc} @{intrinsic}({vec}, {vec}, {acc}{tail_types})")
    with pytest.raises(LlvmAbort, match="(?i)cannot select"):
        amd_targets[arch].safe_compile(text)


_ATOMIC_VALUE = {"float": "1.0", "half": "1.0", "bfloat": "1.0", "i32": "1", "<2 x half>": "<half 1.0, half 1.0>",
                 "<2 x bfloat>": "<bfloat 1.0, bfloat 1.0>"}
_COARSE = ", !amdgpu.no.fine.grained.memory !0, !amdgpu.no.remote.memory !0"


def atomic_body(op: str, ty: str, scope: str, metadata: str = "") -> str:
    """One atomicrmw per thread on element %t of %o (its result unused)."""
    align = 2 if ty in ("half", "bfloat") else 4
    elem = "i32" if ty.startswith("<") else ty
    return (f"  %p = getelementptr {elem}, ptr addrspace(1) %o, i32 %t\n"
            f"  %old = atomicrmw {op} ptr addrspace(1) %p, {ty} {_ATOMIC_VALUE[ty]}{scope} monotonic, "
            f"align {align}{metadata}")


@pytest.mark.parametrize(("arch", "op", "ty", "plain", "coarse"), [
    ("gfx90a", "max", "i32", "global_atomic_cmpswap", "global_atomic_smax"),
    ("gfx90a", "fadd", "<2 x half>", "global_atomic_cmpswap", "global_atomic_pk_add_f16"),
    ("gfx1100", "fadd", "float", "global_atomic_cmpswap_b32", "global_atomic_add_f32"),
    ("gfx1100", "fmax", "float", "global_atomic_cmpswap_b32", "global_atomic_max_f32"),
    ("gfx1100", "min", "i32", "global_atomic_cmpswap_b32", "global_atomic_min_i32"),
    ("gfx942", "fadd", "float", "global_atomic_add_f32", "global_atomic_add_f32"),
    ("gfx942", "fadd", "<2 x bfloat>", "global_atomic_pk_add_bf16", "global_atomic_pk_add_bf16"),
    ("gfx942", "fmax", "float", "global_atomic_cmpswap", "global_atomic_cmpswap"),
    ("gfx942", "fadd", "half", "global_atomic_cmpswap", "global_atomic_cmpswap"),
    ("gfx90a", "fadd", "<2 x bfloat>", "global_atomic_cmpswap", "global_atomic_cmpswap"),
])
def test_atomics_on_coarse_grained_memory(amd_targets, arch: str, op: str, ty: str, plain: str, coarse: str) -> None:
    """amdgpu.md §14.1: at agent scope, what an atomicrmw becomes without and with the metadata that
    says the memory is device memory (coarse-grained, not a peer's); a compare-and-swap loop where
    the target has no instruction (f32 max on gfx942, a lone f16)."""
    for metadata, want in (("", plain), (_COARSE, coarse)):
        text = amd_kernel(atomic_body(op, ty, ' syncscope("agent")', metadata)) + "!0 = !{}\n"
        found = [ln.split()[0] for ln in instructions(amd_targets[arch].compile(text).asm)
                 if ln.startswith("global_atomic")]
        assert found and all(f == want for f in found), (metadata, found)


@pytest.mark.parametrize(("denormal", "want"), [("", "global_atomic_cmpswap"),
                                                (", !amdgpu.ignore.denormal.mode !0", "global_atomic_add_f32")])
def test_gfx90a_f32_atomic_add_flushes_denormals(amd_targets, denormal: str, want: str) -> None:
    """amdgpu.md §14.2: gfx90a's global_atomic_add_f32 does not keep f32 denormals, so LLVM uses
    it only where told that the denormal mode does not matter."""
    text = amd_kernel(atomic_body("fadd", "float", ' syncscope("agent")', _COARSE + denormal)) + "!0 = !{}\n"
    found = [ln.split()[0] for ln in instructions(amd_targets["gfx90a"].compile(text).asm)
             if ln.startswith("global_atomic")]
    assert found == [want]


# ---- docs/targets/nvptx.md ----------------------------------------------------------------------

def test_shared_pointers_are_32_bit(nv_targets) -> None:
    """nvptx.md §2: with -nvptx-short-ptr (set by tiledsl.llvm.llvm_init before any target machine
    exists) the data layout has 32-bit shared pointers and shared accesses take %r addresses."""
    t = nv_targets["sm_90"]
    assert "p3:32:32" in t.data_layout
    text = nv_kernel("""  %p = getelementptr float, ptr addrspace(3) @s, i32 %t
  %v = load float, ptr addrspace(3) %p
  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  store float %v, ptr addrspace(1) %g""", decls="@s = external addrspace(3) global [0 x float], align 16")
    assert re.search(r"ld\.shared\.b32\s+%r\d+, \[%r\d+\]", t.compile(text).ptx)


@pytest.mark.parametrize(("attribute", "directive"), [
    ('"nvvm.maxntid"="128"', ".maxntid 128"),
    ('"nvvm.reqntid"="256,1,1"', ".reqntid 256, 1, 1"),
    ('"nvvm.minctasm"="2"', ".minnctapersm 2"),
    ('"nvvm.maxnreg"="128"', ".maxnreg 128"),
])
def test_launch_bounds_are_function_attributes(nv_targets, attribute: str, directive: str) -> None:
    """nvptx.md §3."""
    text = nv_kernel("  store i32 %t, ptr addrspace(1) %o", attrs=attribute)
    assert directive in nv_targets["sm_80"].compile(text).ptx


@pytest.mark.parametrize(("key", "kept"), [("maxntidx", True), ("maxntid", False)])
def test_legacy_annotation_without_axis_is_dropped(nv_targets, key: str, kept: bool) -> None:
    """nvptx.md §3: the old !nvvm.annotations form is still upgraded, but a "maxntid" key without
    x/y/z vanishes without a word."""
    text = nv_kernel("  store i32 %t, ptr addrspace(1) %o") + \
        f'!nvvm.annotations = !{{!0}}\n!0 = !{{ptr @k, !"{key}", i32 128}}\n'
    ptx = nv_targets["sm_80"].compile(text).ptx
    assert ".entry k(" in ptx
    assert (".maxntid 128" in ptx) == kept


def test_llvm_log2_aborts_on_nvptx(nv_targets) -> None:
    """nvptx.md §6: llvm.log2.f32 has no NVPTX lowering (like llvm.exp.f32); tiledsl calls
    lg2.approx.f32 instead."""
    text = nv_kernel("""  %x = load float, ptr addrspace(1) %o
  %y = call float @llvm.log2.f32(float %x)
  store float %y, ptr addrspace(1) %o""", decls="declare float @llvm.log2.f32(float)")
    with pytest.raises(CompileError, match="flog2"):
        nv_targets["sm_80"].safe_compile(text)


@pytest.mark.parametrize(("align", "loads"), [(16, 1), (4, 4)])
def test_16_byte_global_loads_need_align_16(nv_targets, align: int, loads: int) -> None:
    """nvptx.md §7.1: an <8 x half> global load is one ld.global.nc.v4 only when aligned to 16
    bytes; at align 4 it becomes four 32-bit loads (``noalias readonly`` gives the .nc form)."""
    text = nv_kernel(f"""  %p = getelementptr <8 x half>, ptr addrspace(1) %i, i32 %t
  %v = load <8 x half>, ptr addrspace(1) %p, align {align}
  %g = getelementptr <8 x half>, ptr addrspace(1) %o, i32 %t
  store <8 x half> %v, ptr addrspace(1) %g, align 16""",
                     params="ptr addrspace(1) noalias readonly %i, ptr addrspace(1) noalias %o")
    ptx = nv_targets["sm_90"].compile(text).ptx
    assert len(re.findall(r"ld\.global\.nc\.", ptx)) == loads
    assert ("ld.global.nc.v4." in ptx) == (loads == 1)


@pytest.fixture(scope="module")
def ptxas() -> str:
    try:
        return find_ptxas()
    except PtxasNotFound as e:
        pytest.skip(str(e))


_PTX_HEAD = ".version 7.8\n.target sm_90\n.address_size 64\n"


def test_ptxas_rejects_maxntid_with_reqntid(ptxas: str) -> None:
    """nvptx.md §3, §12: a kernel states one launch bound, never both."""
    both = _PTX_HEAD + ".visible .entry k()\n.maxntid 128, 1, 1\n.reqntid 128, 1, 1\n{\n\tret;\n}\n"
    with pytest.raises(PtxasError, match=r"\.maxntid and \.reqntid"):
        to_cubin(both, "sm_90", ptxas)
    assert to_cubin(both.replace(".maxntid 128, 1, 1\n", ""), "sm_90", ptxas)[:4] == b"\x7fELF"


@pytest.mark.parametrize(("size", "ok"), [(16, True), (8, False)])
def test_ptxas_rejects_cg_copies_of_8_bytes(ptxas: str, size: int, ok: bool) -> None:
    """nvptx.md §8: cp.async.cg copies 16 bytes only (smaller copies take .ca)."""
    ptx = _PTX_HEAD + f""".visible .entry k(.param .u64 p)
{{
\t.reg .b64 %rd<3>;
\t.shared .align 16 .b8 s[64];
\tld.param.u64 %rd1, [p];
\tcvta.to.global.u64 %rd2, %rd1;
\tcp.async.cg.shared.global [s], [%rd2], {size};
\tcp.async.commit_group;
\tcp.async.wait_group 0;
\tret;
}}
"""
    if ok:
        assert to_cubin(ptx, "sm_90", ptxas)[:4] == b"\x7fELF"
    else:
        with pytest.raises(PtxasError, match="expected to be 16"):
            to_cubin(ptx, "sm_90", ptxas)


@pytest.mark.parametrize(("arch", "op", "ty", "want"), [
    ("sm_90", "fadd", "float", "atom.global.add.f32"),
    ("sm_90", "fadd", "half", "atom.global.add.noftz.f16"),
    ("sm_90", "fadd", "bfloat", "atom.global.add.noftz.bf16"),
    ("sm_80", "fadd", "bfloat", "atom.relaxed.gpu.global.cas.b32"),
    ("sm_90", "fadd", "<2 x half>", "atom.relaxed.gpu.global.cas.b32"),
    ("sm_90", "fmax", "float", "atom.relaxed.gpu.global.cas.b32"),
    ("sm_90", "max", "i32", "atom.global.max.s32"),
])
def test_nvptx_atomics(nv_targets, arch: str, op: str, ty: str, want: str) -> None:
    """nvptx.md §14: the instruction of each atomicrmw at device scope: native f32/f16 adds (bf16
    from sm_90), i32 max; compare-and-swap loops for f32 max and for a pair of halves."""
    ptx = nv_targets[arch].compile(nv_kernel(atomic_body(op, ty, ' syncscope("device")'))).asm
    found = re.findall(r"^\s*(atom\.[\w.]+)", ptx, re.MULTILINE)
    assert found == [want]


@pytest.mark.parametrize(("scope", "qualifier"), [("", ".sys"), (' syncscope("device")', ".gpu")])
def test_nvptx_atomic_scope(nv_targets, scope: str, qualifier: str) -> None:
    """nvptx.md §14: LLVM's default scope is the system; syncscope("device") is PTX .gpu."""
    ptx = nv_targets["sm_90"].compile(nv_kernel(atomic_body("fmax", "float", scope))).asm
    assert re.findall(r"atom\.relaxed(\.\w+)\.global\.cas", ptx) == [qualifier]


# ---- docs/targets/math.md -----------------------------------------------------------------------

def _float_kernel(make, intrinsic: str, arity: int = 1) -> str:
    """``o[t] = intrinsic(o[t], ...)`` with its declaration (the same operand repeated)."""
    args = ", ".join(["float %x"] * arity)
    return make(f"""  %g = getelementptr float, ptr addrspace(1) %o, i32 %t
  %x = load float, ptr addrspace(1) %g
  %y = call float @{intrinsic}({args})
  store float %y, ptr addrspace(1) %g""", decls=f"declare float @{intrinsic}({', '.join(['float'] * arity)})")


@pytest.mark.parametrize(("intrinsic", "arity"), [("llvm.log.f32", 1), ("llvm.exp.f32", 1), ("llvm.sin.f32", 1),
                                                  ("llvm.cos.f32", 1), ("llvm.pow.f32", 2), ("llvm.tanh.f32", 1)])
def test_libm_intrinsics_abort_on_nvptx(nv_targets, intrinsic: str, arity: int) -> None:
    """math.md §2: NVPTX has no libm to call and selects none of these without approximation
    flags ("no libcall available" or "Cannot select"); tiledsl emits the math_f32 sequences."""
    for t in nv_targets.values():
        with pytest.raises(CompileError):
            t.safe_compile(_float_kernel(nv_kernel, intrinsic, arity))


@pytest.mark.parametrize("arch", ["gfx942", "gfx1100"])
def test_tanh_has_no_amdgpu_lowering(amd_targets, arch: str) -> None:
    """math.md §2: llvm.tanh.f32 would be a libm call, which AMDGPU code objects cannot make."""
    with pytest.raises(LlvmAbort, match="libcall"):
        amd_targets[arch].safe_compile(_float_kernel(amd_kernel, "llvm.tanh.f32"))


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942", "gfx1100"])
def test_amdgpu_sin_and_pow_are_not_range_reduced(amd_targets, arch: str) -> None:
    """math.md §2: llvm.sin.f32 is v_sin_f32 of x/2π (no reduction: wrong for large |x|), llvm.pow.f32
    is exp(y·log x) in three instructions (no extended precision, no special cases of negative x)."""
    t = amd_targets[arch]
    assert between_load_and_store(t.compile(_float_kernel(amd_kernel, "llvm.sin.f32")).asm) == \
        ["v_mul_f32_e32", "v_sin_f32_e32"]
    pow_ops = between_load_and_store(t.compile(_float_kernel(amd_kernel, "llvm.pow.f32", 2)).asm)
    assert len(pow_ops) == 3 and pow_ops[0] == "v_log_f32_e32" and pow_ops[2] == "v_exp_f32_e32"


@pytest.mark.parametrize("arch", ["gfx90a", "gfx942", "gfx1100"])
def test_amdgpu_log_is_v_log_with_fixups(amd_targets, arch: str) -> None:
    """math.md §2: llvm.log.f32 is v_log_f32 with a denormal scaling and an extended-precision
    multiply by ln 2 (LLVM's accurate lowering), not a libm call: tiledsl's ``log`` on AMDGPU."""
    ops = between_load_and_store(amd_targets[arch].compile(_float_kernel(amd_kernel, "llvm.log.f32")).asm)
    assert "v_log_f32_e32" in ops and any(op.startswith("v_fma") for op in ops) and len(ops) >= 8


@pytest.mark.parametrize(("intrinsic", "amd", "nv"), [("llvm.floor.f32", "v_floor_f32_e32", "cvt.rmi.f32.f32"),
                                                      ("llvm.ceil.f32", "v_ceil_f32_e32", "cvt.rpi.f32.f32"),
                                                      ("llvm.roundeven.f32", "v_rndne_f32_e32", "cvt.rni.f32.f32")])
def test_rounding_is_one_instruction_everywhere(amd_targets, nv_targets, intrinsic: str, amd: str, nv: str) -> None:
    """math.md §2: floor, ceil and round (half to even) need no sequence on any target."""
    for arch in ("gfx90a", "gfx942", "gfx1100", "gfx1030"):
        assert between_load_and_store(amd_targets[arch].compile(_float_kernel(amd_kernel, intrinsic)).asm) == [amd]
    for t in nv_targets.values():
        ptx = t.compile(_float_kernel(nv_kernel, intrinsic)).ptx
        assert re.findall(r"\b(cvt\.\w+\.f32\.f32)", ptx) == [nv]


def test_tanh_approx_on_nvptx(nv_targets) -> None:
    """math.md §2: llvm.nvvm.tanh.approx.f32 is one tanh.approx.f32 (sm_75+)."""
    for t in nv_targets.values():
        ptx = t.compile(_float_kernel(nv_kernel, "llvm.nvvm.tanh.approx.f32")).ptx
        assert ptx.count("tanh.approx.f32") == 1
