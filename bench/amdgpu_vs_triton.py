"""tiledsl's attention kernel vs Triton's FA2 forward, compiled for the same AMD targets.

    pip install triton        # Triton compiles for HIP targets on a machine without a GPU
    python bench/amdgpu_vs_triton.py [gfx942 gfx90a gfx1100]

Same configuration on both sides: f16, D=128, BLOCK_M=128, BLOCK_N=64, 4 waves. Prints,
per target, the resources from each code object's metadata (VGPRs arch+acc, AGPRs, SGPRs,
spills, scratch, LDS, occupancy) and, for the inner loop (the loop with the most matrix
instructions), the count of matrix instructions and of all instructions.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = re.compile(r"^\s*(v_mfma\w*|v_wmma\w*)\b")
INSTR = re.compile(r"^\s+([a-z_][a-z0-9_]*)\b")
LABEL = re.compile(r"^(\.?[A-Za-z_][\w.]*):")
BRANCH = re.compile(r"^\s*s_(?:cbranch_\w+|branch)\s+(\.?[\w.]+)")


def loop_stats(asm: str) -> dict[str, int]:
    """Matrix and total instruction counts of the innermost loop with the most matrix ops."""
    lines = asm.splitlines()
    labels = {}
    for i, line in enumerate(lines):
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = i
    best = {"matrix": 0, "instructions": 0}
    for i, line in enumerate(lines):
        m = BRANCH.match(line)
        if not m or m.group(1) not in labels or labels[m.group(1)] > i:
            continue
        body = lines[labels[m.group(1)] + 1:i + 1]
        instrs = [ln for ln in body if INSTR.match(ln) and not ln.strip().startswith((";", "."))]
        matrix = sum(1 for ln in instrs if MATRIX.match(ln))
        if matrix > best["matrix"] or (matrix == best["matrix"] and matrix and len(instrs) < best["instructions"]):
            best = {"matrix": matrix, "instructions": len(instrs)}
    return best


def matrix_names(asm: str) -> str:
    c = Counter(m.group(1) for ln in asm.splitlines() if (m := MATRIX.match(ln)))
    return ", ".join(f"{k}×{v}" for k, v in c.items()) or "none"


def resources_from_asm(asm: str, arch: str) -> dict[str, object]:
    from tiledsl.backend_amdgpu.metadata import metadata_from_asm
    from tiledsl.backend_amdgpu.resources import Resources
    from tiledsl.backend_amdgpu.target import AMD_ARCHES
    md = metadata_from_asm(asm)["amdhsa.kernels"][0]
    r = Resources.from_metadata(md, AMD_ARCHES[arch], 0)
    return {"vgpr": r.vgprs, "agpr": r.agprs, "sgpr": r.sgprs, "spills": r.vgpr_spills + r.sgpr_spills,
            "scratch": r.scratch_bytes, "lds": r.lds_bytes, "waves/SIMD": r.waves_per_simd}


def tiledsl_asm(arch: str) -> tuple[str, int]:
    import tiledsl
    prog = tiledsl.load(ROOT / "examples" / "attention.tdsl", params={"D": 128, "BM": 128, "BN": 64})
    art = prog.compile(target=arch)
    return art.asm, art.lds_bytes


def triton_asm(arch: str) -> tuple[str, int]:
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    @triton.jit
    def attn_fwd(Q, K, V, O, sm_scale, N_CTX: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr):
        start_m = tl.program_id(0)
        off_hz = tl.program_id(1)
        base = off_hz * N_CTX * HEAD_DIM
        offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        q = tl.load(Q + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :])
        m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0
        acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
        qk_scale = sm_scale * 1.44269504
        for start_n in range(0, N_CTX, BLOCK_N):
            k = tl.load(K + base + (start_n + offs_n)[None, :] * HEAD_DIM + offs_d[:, None])
            qk = tl.dot(q, k)
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            qk = qk * qk_scale - m_ij[:, None]
            p = tl.math.exp2(qk)
            l_ij = tl.sum(p, 1)
            alpha = tl.math.exp2(m_i - m_ij)
            l_i = l_i * alpha + l_ij
            acc = acc * alpha[:, None]
            v = tl.load(V + base + (start_n + offs_n)[:, None] * HEAD_DIM + offs_d[None, :])
            acc = tl.dot(p.to(tl.float16), v, acc)
            m_i = m_ij
        acc = acc / l_i[:, None]
        tl.store(O + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], acc.to(tl.float16))

    wave = 32 if arch.startswith("gfx11") else 64
    src = ASTSource(fn=attn_fwd, signature={"Q": "*fp16", "K": "*fp16", "V": "*fp16", "O": "*fp16",
                                            "sm_scale": "fp32", "N_CTX": "constexpr", "HEAD_DIM": "constexpr",
                                            "BLOCK_M": "constexpr", "BLOCK_N": "constexpr"},
                    constexprs={"N_CTX": 4096, "HEAD_DIM": 128, "BLOCK_M": 128, "BLOCK_N": 64})
    k = triton.compile(src, target=GPUTarget("hip", arch, wave), options={"num_warps": 4})
    return k.asm["amdgcn"], int(k.metadata.shared)


def row(name: str, asm: str, arch: str, lds_dynamic: int) -> list[str]:
    res = resources_from_asm(asm, arch)
    if lds_dynamic:
        res["lds"] = f"{lds_dynamic} (dyn)"
    loop = loop_stats(asm)
    return [name, str(res["vgpr"]), str(res["agpr"]), str(res["sgpr"]), str(res["spills"]), str(res["scratch"]),
            str(res["lds"]), str(res["waves/SIMD"]), str(loop["matrix"]), str(loop["instructions"]),
            matrix_names(asm)]


def main() -> None:
    arches = sys.argv[1:] or ["gfx942", "gfx90a", "gfx1100"]
    head = ["kernel", "VGPR", "AGPR", "SGPR", "spills", "scratch B", "LDS B", "waves/SIMD", "loop MFMA/WMMA",
            "loop instrs", "matrix instructions (whole kernel)"]
    print("attention forward, f16, D=128, BLOCK_M=128, BLOCK_N=64, 4 waves")
    print("| target | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for arch in arches:
        asm, _ = tiledsl_asm(arch)
        print(f"| {arch} | " + " | ".join(row("tiledsl", asm, arch, 0)) + " |")
        try:
            tasm, shared = triton_asm(arch)
            print(f"| {arch} | " + " | ".join(row(f"Triton {__import__('triton').__version__}", tasm, arch,
                                                   shared)) + " |")
        except ImportError:
            print(f"| {arch} | Triton not installed (pip install triton) |")


if __name__ == "__main__":
    main()
