"""Atomics on global memory in native code: the instruction each target gets for each kind and
dtype (FileCheck on gfx942, gfx1100, gfx90a, sm_80, sm_90: native, packed, or a compare-and-swap
loop), the scope and metadata of the ``atomicrmw``, every native target compiling them; and the
lowered code run on the CPU (``host_simt``, real ``atomicrmw`` between OS threads) against the
thread interpreter and NumPy.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pytest
from host_simt import HostKernel, HostSimtTarget
from lower_testing import TARGETS, bf16_bits, bf16_values, filecheck, lower, program, reference, rel_error

from tiledsl.interp.numerics import round_to
from tiledsl.llvm import binding
from tiledsl.llvm.lower import lower_kernel
from tiledsl.llvm.target_base import CompiledModule
from tiledsl.thread import compile_thread_ir

# Every kind and dtype, one out tensor each. F16/B16 are updated along their whole (compile-time)
# last dim, where registers pair up for a packed add.
ALL_KINDS = """
kernel every_atomic(X: f32[M, N], H: f16[M, 64], B: bf16[M, 64], out SF: f32[N], out HF: f32[N], out LF: f32[N],
                    out SI: i32[N], out HI: i32[N], out LI: i32[N], out F16: f16[64], out B16: bf16[64],
                    out C: i32[1])
  param BM = 16, BN = 64
  grid (cdiv(M, BM), cdiv(N, BN)) as (bm, bn)
  block 4 waves
{
  x = X[bm*BM : +BM, bn*BN : +BN]
  atomic_add(SF[bn*BN : +BN], colsum(x))
  atomic_max(HF[bn*BN : +BN], colmax(x))
  atomic_min(LF[bn*BN : +BN], colmin(x))
  i = i32(x)
  atomic_add(SI[bn*BN : +BN], colsum(i))
  atomic_max(HI[bn*BN : +BN], colmax(i))
  atomic_min(LI[bn*BN : +BN], colmin(i))
  atomic_add(F16[:], f16(colsum(f32(H[bm*BM : +BM, :]))))
  atomic_add(B16[:], bf16(colsum(f32(B[bm*BM : +BM, :]))))
  atomic_add(C[0], 1)
}
"""

# What each target makes of them (docs/targets/amdgpu.md §14, nvptx.md §14), in source order.
INSTRUCTIONS = {
    "gfx942": ["global_atomic_add_f32", "global_atomic_cmpswap", "global_atomic_cmpswap", "global_atomic_add v",
               "global_atomic_smax", "global_atomic_smin", "global_atomic_pk_add_f16", "global_atomic_pk_add_bf16",
               "global_atomic_add v"],
    "gfx90a": ["global_atomic_add_f32", "global_atomic_cmpswap", "global_atomic_cmpswap", "global_atomic_add v",
               "global_atomic_smax", "global_atomic_smin", "global_atomic_pk_add_f16", "global_atomic_cmpswap",
               "global_atomic_add v"],
    "gfx1100": ["global_atomic_add_f32", "global_atomic_max_f32", "global_atomic_min_f32", "global_atomic_add_u32",
                "global_atomic_max_i32", "global_atomic_min_i32", "global_atomic_cmpswap_b32",
                "global_atomic_cmpswap_b32", "global_atomic_add_u32"],
    "sm_90": ["atom.global.add.f32", "atom.relaxed.gpu.global.cas.b32", "atom.relaxed.gpu.global.cas.b32",
              "atom.global.add.u32", "atom.global.max.s32", "atom.global.min.s32", "atom.global.add.noftz.f16",
              "atom.global.add.noftz.bf16", "atom.global.add.u32"],
    "sm_80": ["atom.global.add.f32", "atom.relaxed.gpu.global.cas.b32", "atom.relaxed.gpu.global.cas.b32",
              "atom.global.add.u32", "atom.global.max.s32", "atom.global.min.s32", "atom.global.add.noftz.f16",
              "atom.relaxed.gpu.global.cas.b32", "atom.global.add.u32"],
}


@functools.cache
def compiled(key: str) -> tuple[Any, CompiledModule]:
    lk = lower(ALL_KINDS, key)
    return lk, lk.compile()


@pytest.mark.parametrize("key", list(INSTRUCTIONS))
def test_each_kind_and_dtype_gets_its_instruction(key: str) -> None:
    _, c = compiled(key)
    filecheck(c.asm, "\n".join(f"CHECK: {instr}" for instr in INSTRUCTIONS[key]))


def test_packed_adds_only_where_the_target_has_them() -> None:
    """Thread IR pairs f16/bf16 registers on gfx942 (both) and gfx90a (f16 only); NVIDIA has
    native scalar f16 atomics, which LLVM selects where it would expand a pair into a loop."""
    def vecs(target: str) -> list[int]:
        kernel, _ = compile_thread_ir(program(ALL_KINDS), target)
        return [op.attrs["vec"] for op in kernel.walk() if op.name == "global_atomic"]
    assert vecs("gfx942") == [1, 1, 1, 1, 1, 1, 2, 2, 1]
    assert vecs("gfx90a") == [1, 1, 1, 1, 1, 1, 2, 1, 1]
    assert vecs("sm_90") == vecs("gfx1100") == [1] * 9


def test_amdgpu_atomics_are_relaxed_at_agent_scope_on_device_memory() -> None:
    lk, _ = compiled("gfx942")
    filecheck(str(lk.module), r"""
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, float {{.*}} syncscope("agent") monotonic, align 4, !amdgpu.no.fine.grained.memory ![[E:[0-9]+]], !amdgpu.no.remote.memory ![[E]], !amdgpu.ignore.denormal.mode ![[E]]
CHECK: atomicrmw fmax ptr addrspace(1) {{.*}} syncscope("agent") monotonic, align 4, !amdgpu.no.fine.grained.memory ![[E]], !amdgpu.no.remote.memory ![[E]]{{$}}
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, <2 x half> {{.*}} syncscope("agent") monotonic, align 4
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, <2 x bfloat> {{.*}} syncscope("agent") monotonic, align 4
CHECK: ![[E]] = !{{[{] *[}]}}
""")


def test_nvptx_atomics_are_relaxed_at_device_scope() -> None:
    lk, c = compiled("sm_90")
    filecheck(str(lk.module), r"""
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, float {{.*}} syncscope("device") monotonic, align 4{{$}}
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, half {{.*}} syncscope("device") monotonic, align 2{{$}}
CHECK: atomicrmw fadd ptr addrspace(1) {{.*}}, bfloat {{.*}} syncscope("device") monotonic, align 2{{$}}
""")
    assert ".sys" not in c.asm              # device scope, not the system's


def test_one_element_is_one_atomic_per_block_made_by_thread_zero() -> None:
    _, c = compiled("gfx942")
    # The counter's address is uniform (scalar registers), the add guarded by thread 0 alone.
    filecheck(c.asm, r"""
CHECK: v_cmp_eq_u32_e32 vcc, 0, v0
CHECK: global_atomic_add v{{[0-9]+}}, v{{[0-9]+}}, s[{{[0-9]+:[0-9]+}}]{{$}}
""")


@pytest.mark.parametrize("key", list(TARGETS))
def test_every_target_compiles_every_atomic(key: str) -> None:
    _, c = compiled(key)
    binding.parse_assembly(c.llvm_ir).verify()
    found = re.findall(r"^\s*(global_atomic_\w+|atom\.[\w.]+)", c.asm, re.MULTILINE)
    assert len(found) >= len(INSTRUCTIONS["gfx942"]), found


# ---------------------------------------------------------------- on the CPU

def run_host(source: str, like: str, arrays: dict[str, np.ndarray], **params: int) -> dict[str, np.ndarray]:
    """Run the lowered kernel on the host and in the thread interpreter from the same arrays (bf16
    as bf16-rounded float32); return the host's results, after checking they equal the
    interpreter's: blocks run in the same order (linear ids) on both."""
    prog = program(source, tuple(sorted(params.items())))
    kernel, ctx = compile_thread_ir(prog, like)
    lk = lower_kernel(kernel, ctx, HostSimtTarget(like))
    dtypes = {p.name: p.dtype for p in prog.tensor_params}
    host = {k: bf16_bits(v) if dtypes[k] == "bf16" else v.copy() for k, v in arrays.items()}
    interp = {k: v.copy() for k, v in arrays.items()}
    HostKernel(lk)(host, {})
    report = prog.interpret(level="thread", target=like, **interp)
    assert report.ok, str(report)
    out = {k: bf16_values(v) if dtypes[k] == "bf16" else v for k, v in host.items()}
    for p in prog.tensor_params:
        if p.out:
            np.testing.assert_array_equal(out[p.name], interp[p.name], err_msg=p.name)
    return out


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_every_kind_on_the_host(like: str) -> None:
    rng = np.random.default_rng(4)
    m, n = 37, 100
    x = (rng.standard_normal((m, n)) * 8).astype(np.float32)
    h = round_to(rng.standard_normal((m, 64)), "f16").astype(np.float16)
    b = round_to(rng.standard_normal((m, 64)), "bf16")
    outs = {"SF": np.zeros(n, np.float32), "HF": np.full(n, -np.inf, np.float32), "LF": np.full(n, np.inf, np.float32),
            "SI": np.zeros(n, np.int32), "HI": np.full(n, -2**31, np.int32), "LI": np.full(n, 2**31 - 1, np.int32),
            "F16": np.zeros(64, np.float16), "B16": np.zeros(64, np.float32), "C": np.zeros(1, np.int32)}
    got = run_host(ALL_KINDS, like, {"X": x, "H": h, "B": b, **outs})
    i = np.trunc(x).astype(np.int64)
    assert rel_error(got["SF"], x.astype(np.float64).sum(0)) < 1e-6
    np.testing.assert_array_equal(got["HF"], x.max(0))
    np.testing.assert_array_equal(got["LF"], x.min(0))
    np.testing.assert_array_equal(got["SI"], i.sum(0))
    np.testing.assert_array_equal(got["HI"], i.max(0))
    np.testing.assert_array_equal(got["LI"], i.min(0))
    column_blocks = -(-n // 64)               # each adds the whole of F16 and B16
    assert rel_error(got["F16"], column_blocks * h.astype(np.float64).sum(0)) < 4e-3
    assert rel_error(got["B16"], column_blocks * b.astype(np.float64).sum(0)) < 3e-2
    assert got["C"][0] == -(-m // 16) * column_blocks


TICKETS = """
kernel tickets(out T: i32[N], out O: i32[G, P], out C: i32[1], out Q: i32[G])
  param BN = 32
  grid (G, cdiv(N, BN)) as (g, bn)
  block 2 waves
{
  O[g, bn*BN : +BN] <- atomic_add(T[bn*BN : +BN], 1)
  t = atomic_add(C[0], 1)
  if bn == 0 {
    Q[g : +1] <- fill(t, i32[1])
  }
}
"""


@pytest.mark.parametrize("like", ["generic", "gfx942", "sm_90"])
def test_old_values_on_the_host(like: str) -> None:
    """The old values come back to every thread that holds the element (through LDS), masked-off
    elements read 0, and a one-element atomic's old value reaches the whole block."""
    g, n = 5, 70
    got = run_host(TICKETS, like, {"T": np.zeros(n, np.int32), "O": np.full((g, 96), -1, np.int32),
                                   "C": np.zeros(1, np.int32), "Q": np.full(g, -1, np.int32)})
    assert (got["T"] == g).all()
    assert (got["O"][:, :n] == np.arange(g)[:, None]).all() and (got["O"][:, n:] == 0).all()
    assert got["C"][0] == 3 * g and len(set(got["Q"])) == g


def test_reduce_atomic_example_on_the_host() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((150, 90)).astype(np.float32)
    got = run_host("reduce_atomic", "gfx942", {"X": x, "S": np.zeros(90, np.float32),
                                                "Mx": np.full(90, -np.inf, np.float32), "Pos": np.zeros(1, np.int32)},
                   BM=32, BN=32)
    ref = reference().reduce_atomic(x)
    assert rel_error(got["S"], ref["S"]) < 1e-5
    np.testing.assert_array_equal(got["Mx"], ref["Mx"])
    assert got["Pos"][0] == ref["Pos"][0]
