"""LDS storage layouts: the chooser (order for vector reads, padding against bank conflicts),
the byte map of a storage, and that a distribution that disagrees with it is caught."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiledsl
from tiledsl.ir import ops
from tiledsl.ir.core import VerifyError, verify_tree
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.targets import get_target
from tiledsl.thread import compile_thread_ir, layout_ir, lds_layout
from tiledsl.thread import ops as tops
from tiledsl.thread.distribute import Distributor, PlacedLds

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ATTENTION = (EXAMPLES / "attention.tdsl").read_text()
SWAPPED = ATTENTION.replace("mma(waves=[WAVES, 1])", "mma(waves=[WAVES, 1], swap=true)")
UNSWAPPED = ATTENTION.replace("mma(waves=[WAVES, 1])", "mma(waves=[WAVES, 1], swap=false)")   # AMD's default is swapped


def _alloc(kernel: ops.KernelOp, name: str) -> ops.LdsAllocOp:
    return next(op for op in kernel.walk() if isinstance(op, ops.LdsAllocOp) and op.result.hint == name)


def _lds_ops(kernel: ops.KernelOp, line: int, cls: type) -> list:
    return [op for op in kernel.walk() if isinstance(op, cls) and op.loc is not None and op.loc.line == line]


def _line(src: str, text: str) -> int:
    return next(i + 1 for i, ln in enumerate(src.splitlines()) if text in ln)


def _attention_args(n: int = 100, d: int = 64) -> dict:
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 2, n, d)).astype(np.float16) for _ in range(3))
    return {"Q": q, "K": k, "V": v, "O": np.zeros_like(q), "L": np.zeros(q.shape[:3], np.float32), "scale": d ** -0.5}


# ---------------------------------------------------------------- the storage's byte map

@settings(max_examples=40, deadline=None, derandomize=True)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), dtype=st.sampled_from(["f16", "f32"]),
       data=st.data())
def test_storage_is_a_one_to_one_byte_map(shape: list[int], dtype: str, data: st.DataObject) -> None:
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    pad = data.draw(st.sampled_from([0, 4, 8, 16])) if len(shape) > 1 else 0
    s = LdsStorage(tuple(shape), dtype, order, pad)
    coords = np.array(list(itertools.product(*(range(n) for n in shape))))
    offs = s.offsets(coords)
    assert len(set(offs.tolist())) == len(offs)                    # no two elements share bytes
    assert offs.min() == 0 and offs.max() + s.elem_bytes == s.nbytes
    assert s.strides[order[0]] == s.elem_bytes
    for c, o in zip(coords, offs):
        assert s.element_at(int(o)) == tuple(int(x) for x in c)
    covered = {int(o) + b for o in offs for b in range(s.elem_bytes)}
    for byte in set(range(s.nbytes)) - covered:                       # the padding
        assert s.element_at(byte) is None


def test_column_major_padded_strides() -> None:
    s = LdsStorage((64, 128), "f16", (0, 1), 16)
    assert s.strides == (2, 144)
    assert s.nbytes == 127 * 144 + 128
    assert s.element_at(130) is None and s.element_at(144) == (0, 1)
    assert str(s) == "column-major, pad 16 B"
    with pytest.raises(ValueError):
        LdsStorage((64, 128), "f16", (0, 0))
    with pytest.raises(ValueError):
        LdsStorage((64, 128), "f32", (1, 0), 6)


def test_lds_alloc_verifier_rejects_a_bad_storage() -> None:
    prog = tiledsl.load(EXAMPLES / "gemm.tdsl")
    kernel, _ = layout_ir(prog, "gfx942")
    good = print_op(kernel)
    assert "order = [" in good and "pad = " in good
    assert print_op(parse_op(good)) == good
    bad = good.replace("order = [1, 0]", "order = [1, 1]", 1)
    assert bad != good
    with pytest.raises(VerifyError, match="not a permutation"):
        verify_tree(parse_op(bad))


# ---------------------------------------------------------------- the chooser

def test_swapped_v_read_picks_column_major_and_vectorises() -> None:
    """With swap=true each lane holds 4 consecutive keys of V at one d: stored column-major,
    the read is 8-byte vectors instead of 2-byte scalars; K and Q stay row-major."""
    prog = tiledsl.load(SWAPPED, params={"D": 128})
    kernel, _ = layout_ir(prog, "gfx942")
    assert LdsStorage.of(_alloc(kernel, "vs")).order == (0, 1)
    assert LdsStorage.of(_alloc(kernel, "ks")).order == (1, 0)
    assert LdsStorage.of(_alloc(kernel, "qs")).order == (1, 0)
    tk, _ = compile_thread_ir(prog, "gfx942")
    reads = _lds_ops(tk, _line(SWAPPED, "dot(T(p), vs)"), tops.LdsLoadOp)
    v_reads = [r for r in reads if r.result.type.dtype == "f16"]
    assert v_reads and all(r.attrs["vec"] == 4 for r in v_reads)
    # The copy into vs pays for it: its stores are scalar now.
    stores = _lds_ops(tk, _line(SWAPPED, "vs <- V"), tops.LdsStoreOp)
    assert [s.attrs["vec"] for s in stores] == [1, 1]      # full-tile loop and tail loop


@pytest.mark.parametrize("target, vec", [("sm_90", 2), ("gfx942", 4)])
def test_transposed_read_vectorises(target: str, vec: int) -> None:
    prog = tiledsl.load(ATTENTION, params={"D": 64})
    tk, _ = compile_thread_ir(prog, target)
    reads = _lds_ops(tk, _line(ATTENTION, "dot(q, ks^T)"), tops.LdsLoadOp)
    assert reads and all(r.attrs["vec"] == vec for r in reads)


def _column_reads(target: str, rows: int = 32, cols: int = 32) -> lds_layout.LdsAccess:
    """Lane i of one wave reads element [i, j] of an f32 tile, register j = column j: every
    lane's register j sits in one bank when the tile is row-major with 128-byte rows."""
    lanes = get_target(target).wave_size
    coords = np.full((1, lanes, cols, 2), -1)
    i = np.arange(lanes) % rows
    coords[0, :, :, 0] = i[:, None]
    coords[0, :, :, 1] = np.arange(cols)[None, :]
    return lds_layout.LdsAccess(op=None, coords=coords, write=False, weight=1, vectorise=False)


@pytest.mark.parametrize("target", ["sm_90", "gfx942"])
def test_padding_removes_the_estimated_conflicts(target: str) -> None:
    t = get_target(target)
    access = _column_reads(target)
    plain = LdsStorage((32, 32), "f32", (1, 0))
    cycles, ideal = lds_layout.bank_cycles(access, plain, t)
    assert cycles == 32 * ideal                           # 32 lanes of a phase on one bank
    padded = LdsStorage((32, 32), "f32", (1, 0), 4)
    assert lds_layout.bank_cycles(access, padded, t) == (ideal, ideal)
    # Same-word reads are broadcasts, not conflicts.
    same = lds_layout.LdsAccess(None, np.zeros_like(access.coords), False, 1, False)
    phases = t.wave_size * 4 // t.lds_phase_bytes
    assert lds_layout.bank_cycles(same, plain, t) == (32 * phases, 32 * phases)


def test_padding_chosen_for_mma_sync_operands() -> None:
    """Row-major [*, 128] f16 operands of mma.sync conflict 8 ways; the chosen padding keeps
    the 16-byte copy stores and leaves the reads conflict-free."""
    prog = tiledsl.load(ATTENTION, params={"D": 128})
    kernel, ctx = layout_ir(prog, "sm_90")
    for name in ("qs", "ks_stage0"):       # ks is pipelined on sm_90: one tile per stage
        alloc = _alloc(kernel, name)
        chosen = LdsStorage.of(alloc)
        assert chosen.order == (1, 0) and chosen.pad == 16
        for access in lds_layout.accesses(alloc, ctx):
            before = lds_layout.bank_cycles(access, LdsStorage.default(alloc.result.type), ctx.target)
            after = lds_layout.bank_cycles(access, chosen, ctx.target)
            assert after[0] == after[1]
            if not access.write:
                assert before[0] == 8 * before[1]
            assert access.vec(chosen) == access.vec(LdsStorage.default(alloc.result.type))


def test_cross_wave_reduction_scratch_is_addressed_by_its_storage() -> None:
    src = """
kernel colsum(X: f32[M, N], out Y: f32[N])
  param BM = 64, BN = 32
  grid (cdiv(N, BN)) as (j)
  block 4 waves
{
  x = X[0 : +BM, j*BN : +BN] @ blocked(spt=[1, 1], waves=[4, 1])
  Y[j*BN : +BN] <- colsum(x)
}
"""
    prog = tiledsl.load(src)
    kernel, _ = layout_ir(prog, "gfx942")
    scratch = [op for op in kernel.walk() if isinstance(op, ops.LdsAllocOp) and op.attrs.get("scratch")]
    # [element, wave]: stored wave-major, the lanes of a wave write consecutive words.
    assert [LdsStorage.of(a).order for a in scratch] == [(0, 1)]
    x = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    yt, yb = np.zeros(96, np.float32), np.zeros(96, np.float32)
    report = prog.interpret(level="thread", target="gfx942", X=x, Y=yt)
    assert report.ok, str(report)
    prog.interpret(X=x, Y=yb)
    np.testing.assert_allclose(yt, yb, rtol=1e-5, atol=1e-5)


def test_padding_may_not_cost_the_second_block() -> None:
    """Swapped FA2 at D=128 on gfx942 fits two blocks per CU unpadded (32 KiB): the padding
    goes, the column-major V stays. Unswapped, the P scratch makes one block either way."""
    kernel, _ = layout_ir(tiledsl.load(SWAPPED, params={"D": 128}), "gfx942")
    assert kernel.attrs["lds_bytes"] == 32768
    assert LdsStorage.of(_alloc(kernel, "vs")) == LdsStorage((64, 128), "f16", (0, 1))
    kernel, _ = layout_ir(tiledsl.load(UNSWAPPED, params={"D": 128}), "gfx942")
    assert 49152 < kernel.attrs["lds_bytes"] <= 65536
    assert LdsStorage.of(_alloc(kernel, "ks")).pad == 16


def test_padding_is_dropped_when_the_padded_tiles_do_not_fit() -> None:
    prog = tiledsl.load(UNSWAPPED, params={"D": 128, "BM": 256})
    kernel, _ = layout_ir(prog, "gfx942")
    assert kernel.attrs["lds_bytes"] <= 65536
    assert all(LdsStorage.of(a).pad == 0 for a in kernel.walk() if isinstance(a, ops.LdsAllocOp))


# ---------------------------------------------------------------- a wrong storage is caught

def test_reads_with_a_wrong_stride_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that address the tile with another padding than its writes hit bytes nothing wrote."""
    def wrong_stride(read_lds):
        def read(self, buf, layout, op, transpose):
            placed = self.get(buf)
            st = placed.storage
            wrong = LdsStorage(st.shape, st.dtype, st.order, st.pad + 16)
            self.env[id(buf)] = PlacedLds(placed.base, wrong)
            try:
                return read_lds(self, buf, layout, op, transpose)
            finally:
                self.env[id(buf)] = placed
        return read

    prog = tiledsl.load(ATTENTION, params={"BM": 64, "BN": 32})
    assert prog.interpret(level="thread", target="sm_90", **_attention_args()).ok
    monkeypatch.setattr(Distributor, "read_lds", wrong_stride(Distributor.read_lds))
    prog = tiledsl.load(ATTENTION, params={"BM": 64, "BN": 32})
    report = prog.interpret(level="thread", target="sm_90", **_attention_args())
    kinds = {e.kind for e in report.errors}
    assert kinds & {"uninitialized-lds", "out-of-bounds"}, str(report)
    assert any("padding" in e.message for e in report.errors), str(report)


def test_a_vector_wider_than_the_storage_allows_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lowering loads a group of vec registers at the first one's address: the thread
    interpreter checks that the group really is consecutive, aligned bytes."""
    monkeypatch.setattr(Distributor, "lds_vec_width", lambda self, layout, buf, transposed: 8)
    prog = tiledsl.load(SWAPPED, params={"BM": 64, "BN": 32})
    report = prog.interpret(level="thread", target="gfx942", **_attention_args())
    bad = [e for e in report.errors if e.kind == "bad-vector"]
    assert bad, str(report)
    assert "consecutive" in bad[0].message
