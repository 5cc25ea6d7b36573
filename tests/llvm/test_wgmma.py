"""wgmma on sm_90a, without a GPU: the LDS storages it reads (core matrices, the 128-byte swizzle)
are bijections that the thread interpreter can invert; the descriptor fit recognises exactly the
canonical layouts, written here from the PTX ISA's definitions and not from the fit; attention for
sm_90a lowers both dots to wgmma (and falls back to mma.sync where the warps do not form
warpgroups of 16-row slabs). The numbers are checked on the H100 by tests/runtime/test_cuda.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.llvm.static_ints import fit_thread_plus_const
from tiledsl.llvm.wgmma import fit_descriptor
from tiledsl.testing import filecheck

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _all_coords(shape: tuple[int, int]) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1).reshape(-1, 2)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 4), order=st.sampled_from([(1, 0), (0, 1)]),
       kind=st.sampled_from(["cores0", "cores16", "cores32", "swizzle"]))
def test_matrix_storages_are_invertible(rows: int, cols: int, order: tuple[int, int], kind: str) -> None:
    contiguous = (64 if kind == "swizzle" else 8) * cols
    shape = [0, 0]
    shape[order[0]], shape[order[1]] = contiguous, 8 * rows
    if kind == "swizzle":
        st_ = LdsStorage(tuple(shape), "f16", order, swizzle=True)
    else:
        st_ = LdsStorage(tuple(shape), "f16", order, int(kind[5:]), cores=True)
    coords = _all_coords(st_.shape)
    off = st_.offsets(coords)
    assert len(np.unique(off)) == len(off) and (off % 2 == 0).all() and off.min() >= 0
    assert off.max() + 2 <= st_.nbytes
    for (i, j), o in zip(coords, off):
        assert st_.element_at(int(o)) == (i, j) == st_.element_at(int(o) + 1)
    hit = np.zeros(st_.nbytes, bool)
    hit[off] = hit[off + 1] = True
    assert all(st_.element_at(int(b)) is None for b in np.nonzero(~hit)[0])       # padding bytes


def test_storage_rejects_shapes_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="core matrices"):
        LdsStorage((12, 16), "f16", (1, 0), cores=True)
    with pytest.raises(ValueError, match="128-byte swizzle"):
        LdsStorage((16, 32), "f16", (1, 0), swizzle=True)
    with pytest.raises(ValueError, match="128-byte swizzle"):
        LdsStorage((16, 64), "f32", (1, 0), swizzle=True)


# Canonical layouts (PTX ISA, "Shared Memory Matrix Layout"), element (mn, k) of an MN x 16 operand.
def _core_k_major(mn, k, start, lbo, sbo):
    return start + (mn % 8) * 16 + (k % 8) * 2 + (k // 8) * lbo + (mn // 8) * sbo


def _core_mn_major(mn, k, start, lbo, sbo):
    return start + (k % 8) * 16 + (mn % 8) * 2 + (k // 8) * lbo + (mn // 8) * sbo


@settings(max_examples=60, deadline=None)
@given(mn_cores=st.integers(1, 16), start=st.integers(0, 200).map(lambda x: 16 * x),
       lbo=st.integers(9, 300).map(lambda x: 16 * x), sbo=st.integers(9, 300).map(lambda x: 16 * x),
       mn_major=st.booleans())
def test_fit_recognises_core_matrix_layouts(mn_cores: int, start: int, lbo: int, sbo: int, mn_major: bool) -> None:
    mn, k = np.arange(8 * mn_cores)[:, None], np.arange(16)[None, :]
    addr = (_core_mn_major if mn_major else _core_k_major)(mn, k, start, lbo, sbo)
    if len(np.unique(addr)) != addr.size:
        return                                                 # overlapping core matrices: not a layout
    got = fit_descriptor(addr)
    assert got is not None
    assert got[0] == start and got[1] == lbo and got[3] == mn_major and got[4] == 0
    assert mn_cores == 1 or got[2] == sbo
    assert fit_descriptor(addr + 2) is None                    # start not 16-byte aligned
    moved = addr.copy()
    moved[0, 1], moved[0, 2] = addr[0, 2], addr[0, 1]          # two elements swapped
    assert fit_descriptor(moved) is None


@settings(max_examples=30, deadline=None)
@given(rows=st.sampled_from([8, 16, 64, 128]), blocks=st.integers(1, 3), kstep=st.integers(0, 11),
       base=st.integers(0, 4).map(lambda x: 1024 * x))
def test_fit_recognises_the_128_byte_swizzle(rows: int, blocks: int, kstep: int, base: int) -> None:
    # A [rows, 64·blocks] tile in the swizzled storage, read as K-major (mn = row, k along the
    # contiguous dim) and as MN-major (k = row, mn along the contiguous dim).
    st_ = LdsStorage((rows, 64 * blocks), "f16", (1, 0), swizzle=True)
    k0 = 16 * (kstep % (4 * blocks))
    mn, k = np.arange(rows)[:, None], np.arange(16)[None, :]
    k_major = base + st_.offsets(np.stack(np.broadcast_arrays(mn, k0 + k), -1))
    got = fit_descriptor(k_major)
    plain_start = (k0 // 64) * rows * 128 + (k0 % 64) * 2 + base
    assert got == (plain_start, 16, 1024, False, 1)
    if rows % 16 == 0:
        kk0 = 16 * (kstep % (rows // 16))
        cols = np.arange(64 * blocks)[:, None]
        mn_major = base + st_.offsets(np.stack(np.broadcast_arrays(kk0 + k, cols), -1))
        got = fit_descriptor(mn_major)
        assert got == (base + kk0 * 128, rows * 128 if blocks > 1 else 0, 1024, True, 1)
    assert fit_descriptor(k_major + 512) is None               # the pattern would not start at its row 0


def test_fit_rejects_row_major_padded_tiles() -> None:
    mn, k = np.arange(64)[:, None], np.arange(16)[None, :]
    assert fit_descriptor(mn * 272 + k * 2) is None            # rows 272 bytes apart (padded)
    assert fit_descriptor(k * 272 + mn * 2) is None


def test_thread_plus_const_split() -> None:
    t = np.asarray([0, 144, 288, 432, 16, 160])
    q = t[:, None] + np.asarray([0, 2048, 4096])[None, :]
    got = fit_thread_plus_const(q)
    assert got is not None and np.array_equal(got[0], t) and list(got[1]) == [0, 2048, 4096]
    q[3, 2] += 1
    assert fit_thread_plus_const(q) is None


def _attention_ptx(**params: int) -> str:
    prog = tiledsl.load(EXAMPLES / "attention.tdsl", params={"STAGES": 2, **params})
    return prog.compile(target="sm_90a").asm


@pytest.mark.parametrize("qregs, a_operand", [(1, "{%r{{[0-9]+}}, %r{{[0-9]+}}, %r{{[0-9]+}}, %r{{[0-9]+}}}"),
                                              (0, "%rd{{[0-9]+}}")], ids=["A-registers", "A-descriptor"])
def test_attention_sm90a_uses_wgmma(qregs: int, a_operand: str) -> None:
    """Q·Kᵀ: A from registers (QREGS=1) or from LDS by descriptor; B by descriptor, K-major (trans 0).
    P·V: P from registers, V MN-major (trans 1). One wait per dot, no mma.sync."""
    ptx = _attention_ptx(D=64, BM=128, WAVES=8, BN=64, QREGS=qregs)
    k_trans = "0, 0" if qregs == 0 else "0"
    filecheck(ptx, f"""
CHECK: .target sm_90a
CHECK-NOT: mma.sync
CHECK: wgmma.fence.sync.aligned
CHECK: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {{{{.*}}}}, {a_operand}, %rd{{{{[0-9]+}}}}, p, 1, 1, {k_trans};
CHECK: wgmma.commit_group.sync.aligned
CHECK: wgmma.wait_group.sync.aligned 0
CHECK: ex2.approx
CHECK: wgmma.fence.sync.aligned
CHECK: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {{{{.*}}}}, {{%r{{{{[0-9]+}}}}, %r{{{{[0-9]+}}}}, %r{{{{[0-9]+}}}}, %r{{{{[0-9]+}}}}}}, %rd{{{{[0-9]+}}}}, p, 1, 1, 1;
CHECK: wgmma.wait_group.sync.aligned 0
CHECK-NOT: mma.sync
""")
    assert ptx.count("wgmma.mma_async") == ptx.count("wgmma.mma_async.sync.aligned.m64n64k16")
    if qregs == 0:
        assert "ldmatrix" not in ptx


def test_attention_sm90a_falls_back_to_mma_sync() -> None:
    """32 rows a warp (BM=128, 4 warps): a warpgroup's warps do not own consecutive 16-row slabs."""
    ptx = _attention_ptx(D=64, BM=128, WAVES=4, BN=64, QREGS=1)
    assert "wgmma" not in ptx and "mma.sync.aligned.m16n8k16" in ptx


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not on PATH")
def test_ptxas_takes_the_wgmma_kernel_without_serialising(tmp_path: Path) -> None:
    ptx = tmp_path / "attention.ptx"
    ptx.write_text(_attention_ptx(D=128, BM=128, WAVES=8, BN=64, QREGS=0))
    out = subprocess.run(["ptxas", "-arch=sm_90a", "-v", str(ptx), "-o", str(tmp_path / "a.cubin")],
                         capture_output=True, text=True, check=True)
    assert "C7515" not in out.stderr and "C7519" not in out.stderr and "C7510" not in out.stderr, out.stderr
    assert "0 bytes spill stores" in out.stderr
