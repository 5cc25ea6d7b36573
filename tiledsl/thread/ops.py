"""Thread IR: SIMT ops over per-thread registers.

A value is either a uniform scalar (``TileType`` of rank 0: the same in every thread,
an SGPR on AMD) or ``regs<dtype, n>``: n registers in every thread. Element-wise ops,
``const``, ``dim``, ``block_id``, ``for``, ``if``, ``yield``, ``async_commit`` and
``async_wait`` are shared with tile IR.
Each op here maps to a short, fixed LLVM sequence, so the LLVM lowering is a table
from op to builder call.

Layouts appear as attribute text (``layout = "mma(waves=[4,1])<128x64>"`` style specs
plus shapes) only where an op needs the index map: ``coord``/``valid`` (per-thread
element coordinates) and ``mma_tile`` (which register is which fragment element).
"""

from __future__ import annotations

from tiledsl.ir.core import Op, VerifyError, register
from tiledsl.ir.types import DTYPE_BYTES, LdsType, RegsType, TensorType, TileType


def _regs(op: Op, t: object, what: str) -> RegsType:
    if not isinstance(t, RegsType):
        raise VerifyError(op, f"{what} must be registers, got {t}")
    return t


def _uniform(op: Op, t: object, what: str) -> TileType:
    if not (isinstance(t, TileType) and t.shape == ()):
        raise VerifyError(op, f"{what} must be a uniform scalar, got {t}")
    return t


def _index(op: Op, t: object, n: int, what: str) -> None:
    """An i32 (or i64) index: uniform, or one per register."""
    if isinstance(t, RegsType):
        if t.dtype not in ("i32", "i64") or t.n != n:
            raise VerifyError(op, f"{what} must be regs<i32, {n}> or regs<i64, {n}>, got {t}")
    else:
        _uniform(op, t, what)


class ThreadOp(Op):
    """Base of thread IR ops: fixed operand/result counts checked by subclasses."""


@register
class ThreadIdOp(ThreadOp):
    """``regs<i32, 1>``: the thread's index in the block (wave * wave_size + lane)."""

    name = "thread_id"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if self.operands or _regs(self, self.result.type, "result") != RegsType("i32", 1):
            raise VerifyError(self, "thread_id() : regs<i32, 1>")


@register
class SplatOp(ThreadOp):
    """A uniform scalar copied into every register of every thread."""

    name = "splat"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        (s,) = self.operands
        u, r = _uniform(self, s.type, "operand"), _regs(self, self.result.type, "result")
        if u.dtype != r.dtype:
            raise VerifyError(self, "splat keeps the dtype")


class LayoutDataOp(ThreadOp):
    """Reads a layout's index map: ``layout`` (spec text), ``shape``, ``dtype``."""

    pure = cse = True

    def verify(self) -> None:
        super().verify()
        for key in ("layout", "shape"):
            if key not in self.attrs:
                raise VerifyError(self, f"missing attribute '{key}'")
        _regs(self, self.result.type, "result")


@register
class CoordOp(LayoutDataOp):
    """``regs<i32, R>``: the coordinate along ``dim`` of the element each register holds
    (0 in slots that hold nothing)."""

    name = "coord"


@register
class ValidOp(LayoutDataOp):
    """``regs<i1, R>``: whether each register slot holds an element. With ``owner``,
    only the first thread holding each element (one writer per element)."""

    name = "valid"


@register
class RegGatherOp(ThreadOp):
    """Register shuffle inside each thread: ``out[r] = in[indices[r]]`` (the same
    permutation in every thread; lowers to plain SSA moves)."""

    name = "reg_gather"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        src, dst = _regs(self, self.operands[0].type, "operand"), _regs(self, self.result.type, "result")
        idx = self.attrs.get("indices")
        if not isinstance(idx, list) or len(idx) != dst.n or any(not 0 <= i < src.n for i in idx):
            raise VerifyError(self, "indices must pick one source register per result register")
        if src.dtype != dst.dtype:
            raise VerifyError(self, "reg_gather keeps the dtype")


@register
class RegReduceOp(ThreadOp):
    """In-thread reduction: ``out[r] = kind(in[g] for g in groups[r])``, ``kind`` one of
    ``sum``, ``max``, ``min`` (float max/min are maxNum/minNum, as ``reduce_max``/``reduce_min``)."""

    name = "reg_reduce"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        src, dst = _regs(self, self.operands[0].type, "operand"), _regs(self, self.result.type, "result")
        groups = self.attrs.get("groups")
        if self.attrs.get("kind") not in ("max", "min", "sum"):
            raise VerifyError(self, "kind must be sum, max or min")
        if not isinstance(groups, list) or len(groups) != dst.n or any(
                not g or any(not 0 <= i < src.n for i in g) for g in groups):
            raise VerifyError(self, "groups must list source registers for each result register")


@register
class ShuffleXorOp(ThreadOp):
    """Each lane takes the registers of lane ``lane ^ mask`` of its wave."""

    name = "shuffle_xor"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        src, dst = _regs(self, self.operands[0].type, "operand"), _regs(self, self.result.type, "result")
        if src != dst or not isinstance(self.attrs.get("mask"), int) or self.attrs["mask"] <= 0:
            raise VerifyError(self, "shuffle_xor keeps the type and needs a positive mask")


@register
class UniformOp(ThreadOp):
    """``uniform(x) : T`` of ``x: regs<T, 1>``: the value that every thread of the block holds in
    its one register, as a uniform scalar (usable as a loop bound, a slice start, an ``if``
    condition). Distribution makes it only where the threads agree by construction (a load of one
    element, a full reduction); the thread interpreter checks that they do. On AMDGPU it is
    ``readfirstlane`` (the value moves to an SGPR), on NVIDIA the register as it is."""

    name = "uniform"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) != 1 or len(self.results) != 1:
            raise VerifyError(self, "uniform takes one operand and has one result")
        src = _regs(self, self.operands[0].type, "operand")
        r = _uniform(self, self.result.type, "result")
        if src.n != 1 or src.dtype != r.dtype:
            raise VerifyError(self, f"uniform of {src} must be regs<{r.dtype}, 1>")


class MemoryOp(ThreadOp):
    """Loads/stores: per-register indices, a per-register mask, and ``vec``: groups of
    ``vec`` consecutive registers are contiguous in memory (one vector access)."""

    def check_vec(self, n: int) -> None:
        vec = self.attrs.get("vec", 1)
        if not isinstance(vec, int) or vec < 1 or n % vec:
            raise VerifyError(self, f"vec={vec} must divide the register count {n}")


@register
class GlobalLoadOp(MemoryOp):
    """``global_load(tensor, idx_0, ..., idx_{r-1}, mask) {pad, vec}``: register j reads
    tensor[idx_0[j], ...] where mask[j], else ``pad``. Indices may be uniform."""

    name = "global_load"
    pure = True

    def verify(self) -> None:
        super().verify()
        t = self.operands[0].type
        if not isinstance(t, TensorType):
            raise VerifyError(self, "first operand must be a tensor")
        r = _regs(self, self.result.type, "result")
        if len(self.operands) != len(t.dims) + 2 or r.dtype != t.dtype:
            raise VerifyError(self, "global_load(tensor, one index per dim, mask) of the tensor's dtype")
        for v in self.operands[1:-1]:
            _index(self, v.type, r.n, "an index")
        if _regs(self, self.operands[-1].type, "mask") != RegsType("i1", r.n):
            raise VerifyError(self, "mask must be regs<i1, n>")
        self.check_vec(r.n)


@register
class GlobalStoreOp(MemoryOp):
    """``global_store(tensor, idx..., mask, value) {vec}``."""

    name = "global_store"

    def verify(self) -> None:
        super().verify()
        t = self.operands[0].type
        if not isinstance(t, TensorType) or not t.out:
            raise VerifyError(self, "first operand must be an out tensor")
        v = _regs(self, self.operands[-1].type, "value")
        if len(self.operands) != len(t.dims) + 3 or v.dtype != t.dtype or self.results:
            raise VerifyError(self, "global_store(tensor, one index per dim, mask, value)")
        for x in self.operands[1:-2]:
            _index(self, x.type, v.n, "an index")
        if _regs(self, self.operands[-2].type, "mask") != RegsType("i1", v.n):
            raise VerifyError(self, "mask must be regs<i1, n>")
        self.check_vec(v.n)


@register
class GlobalAtomicOp(MemoryOp):
    """``global_atomic(tensor, idx..., mask, value) {kind, vec}``: where ``mask[j]``, this thread
    updates ``tensor[idx[j]]`` atomically with ``value[j]`` (``kind``: add, max, min, as the tile
    op ``AtomicOp``), relaxed, at device scope. The optional result holds the old values (0 where
    masked off). Groups of ``vec`` registers (2: a packed f16/bf16 add,
    ``Target.packed_atomic_add``) are one atomic instruction each, under one mask."""

    name = "global_atomic"

    def verify(self) -> None:
        super().verify()
        t = self.operands[0].type
        if not isinstance(t, TensorType) or not t.out:
            raise VerifyError(self, "first operand must be an out tensor")
        v = _regs(self, self.operands[-1].type, "value")
        if len(self.operands) != len(t.dims) + 3 or v.dtype != t.dtype:
            raise VerifyError(self, "global_atomic(tensor, one index per dim, mask, value)")
        for x in self.operands[1:-2]:
            _index(self, x.type, v.n, "an index")
        if _regs(self, self.operands[-2].type, "mask") != RegsType("i1", v.n):
            raise VerifyError(self, "mask must be regs<i1, n>")
        if self.attrs.get("kind") not in ("add", "max", "min"):
            raise VerifyError(self, "kind must be add, max or min")
        if len(self.results) > 1 or (self.results and self.result.type != v):
            raise VerifyError(self, f"the old values are {v}")
        self.check_vec(v.n)


@register
class LdsLoadOp(MemoryOp):
    """``lds_load(offset, mask) {vec}``: register j reads the LDS element at byte
    ``offset[j]`` (of the result dtype) where mask[j]."""

    name = "lds_load"
    pure = True

    def verify(self) -> None:
        super().verify()
        r = _regs(self, self.result.type, "result")
        off, mask = (v.type for v in self.operands)
        _index(self, off, r.n, "the offset")
        if mask != RegsType("i1", r.n):
            raise VerifyError(self, "mask must be regs<i1, n>")
        self.check_vec(r.n)


@register
class LdsStoreOp(MemoryOp):
    """``lds_store(offset, mask, value) {vec}``."""

    name = "lds_store"

    def verify(self) -> None:
        super().verify()
        off, mask, val = (v.type for v in self.operands)
        v = _regs(self, val, "value")
        _index(self, off, v.n, "the offset")
        if mask != RegsType("i1", v.n):
            raise VerifyError(self, "mask must be regs<i1, n>")
        self.check_vec(v.n)


@register
class AsyncCopyOp(MemoryOp):
    """``async_copy(tensor, idx..., load_mask, offset, store_mask) {vec}``: where
    ``store_mask[j]``, this thread copies tensor[idx[j]] (0 where not ``load_mask[j]``) to the
    LDS byte ``offset[j]`` without going through registers, as ``cp.async``. The data lands
    at an ``async_wait`` covering the group (``async_commit``) of the copy; until then the
    bytes may hold anything and must not be touched. Groups of ``vec`` registers (4, 8 or
    16 bytes) are one copy each, with one mask per group."""

    name = "async_copy"

    def verify(self) -> None:
        super().verify()
        t = self.operands[0].type
        if not isinstance(t, TensorType):
            raise VerifyError(self, "first operand must be a tensor")
        if len(self.operands) != len(t.dims) + 4 or self.results:
            raise VerifyError(self, "async_copy(tensor, one index per dim, load mask, offset, store mask)")
        store = _regs(self, self.operands[-1].type, "store mask")
        n = store.n
        if store.dtype != "i1" or self.operands[-3].type != RegsType("i1", n):
            raise VerifyError(self, f"masks must be regs<i1, {n}>")
        for v in self.operands[1:-3]:
            _index(self, v.type, n, "an index")
        _index(self, self.operands[-2].type, n, "the offset")
        self.check_vec(n)
        if self.attrs.get("vec", 1) * DTYPE_BYTES[t.dtype] not in (4, 8, 16):
            raise VerifyError(self, "an async copy moves 4, 8 or 16 bytes per group")


@register
class BarrierOp(ThreadOp):
    """Block-wide barrier with workgroup-scope LDS fences on both sides."""

    name = "barrier"

    def verify(self) -> None:
        super().verify()
        if self.operands or self.results:
            raise VerifyError(self, "barrier takes nothing")


@register
class MmaTileOp(ThreadOp):
    """``c + a · b`` for whole distributed tiles: ``a`` in ``a_layout`` (M×K), ``b`` in
    ``b_layout`` (K×N), ``c`` and the result in ``c_layout`` (M×N); made of the target's
    matrix instruction ``instr`` repeated over the tile (FMA on targets without one)."""

    name = "mma_tile"
    pure = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) != 3:
            raise VerifyError(self, "mma_tile(a, b, c)")
        a, b, c = (_regs(self, v.type, "operand") for v in self.operands)
        r = _regs(self, self.result.type, "result")
        if r != c or r.dtype != "f32" or a.dtype != b.dtype:
            raise VerifyError(self, "operands must share a dtype; c and the result are f32 of one size")
        for key in ("instr", "a_layout", "b_layout", "c_layout", "m", "n", "k"):
            if key not in self.attrs:
                raise VerifyError(self, f"missing attribute '{key}'")


__all__ = ["LdsType"]


@register
class HeldByWaveOp(LayoutDataOp):
    """``regs<i1, R>``: whether wave ``wave`` holds the element of each register's
    coordinate (used to combine per-wave partial reductions)."""

    name = "held_by_wave"


@register
class LdsDotOp(ThreadOp):
    """FMA fallback of a dot: ``c[r] += Σ_k A[i,k]·B[k,j]`` for the (i, j) each register
    of ``c`` holds in ``c_layout``, with A and B read from LDS at byte offsets
    ``a_offset + (i*a_strides[0] + k*a_strides[1])*size`` (likewise B)."""

    name = "lds_dot"
    pure = True

    def verify(self) -> None:
        super().verify()
        (c,) = self.operands
        r = _regs(self, self.result.type, "result")
        if c.type != r or r.dtype != "f32":
            raise VerifyError(self, "lds_dot accumulates f32 registers in place")
        for key in ("a_offset", "a_strides", "b_offset", "b_strides", "k", "dtype", "c_layout", "shape"):
            if key not in self.attrs:
                raise VerifyError(self, f"missing attribute '{key}'")


ARG_KINDS = ("argmax", "argmin")


def _arg_pair(op: Op, values: object, indices: object, what: str) -> RegsType:
    v, i = _regs(op, values, f"{what} values"), _regs(op, indices, f"{what} indices")
    if i != RegsType("i32", v.n):
        raise VerifyError(op, f"{what} indices must be regs<i32, {v.n}>, got {i}")
    return v


@register
class RegArgReduceOp(ThreadOp):
    """In-thread arg-reduction: ``values[r], indices[r]`` is the pair that ``kind`` (``argmax`` or
    ``argmin``) picks among ``(in_values[g], in_indices[g])`` for g in ``groups[r]`` (the rule of
    ``arg_combine``)."""

    name = "reg_argreduce"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) != 2 or len(self.results) != 2:
            raise VerifyError(self, "reg_argreduce(values, indices) : (values, indices)")
        src = _arg_pair(self, self.operands[0].type, self.operands[1].type, "operand")
        dst = _arg_pair(self, self.results[0].type, self.results[1].type, "result")
        groups = self.attrs.get("groups")
        if self.attrs.get("kind") not in ARG_KINDS or src.dtype != dst.dtype:
            raise VerifyError(self, "kind must be argmax or argmin; the values keep their dtype")
        if not isinstance(groups, list) or len(groups) != dst.n or any(
                not g or any(not 0 <= i < src.n for i in g) for g in groups):
            raise VerifyError(self, "groups must list source registers for each result register")


@register
class ArgCombineOp(ThreadOp):
    """``values, indices = arg_combine(v1, i1, v2, i2) {kind}``: per register (or on uniform scalars)
    the pair that ``kind`` picks of (v1, i1) and (v2, i2): for ``argmax`` the larger value, for
    ``argmin`` the smaller; a NaN value loses to any other; equal values (and two NaNs) go to the
    smaller index. An order on pairs, so the combination is associative and commutative."""

    name = "arg_combine"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        if len(self.operands) != 4 or len(self.results) != 2:
            raise VerifyError(self, "arg_combine(v1, i1, v2, i2) : (values, indices)")
        types = [v.type for v in (*self.operands, *self.results)]
        if self.attrs.get("kind") not in ARG_KINDS:
            raise VerifyError(self, "kind must be argmax or argmin")
        if isinstance(types[0], RegsType):
            for k in (0, 2, 4):
                _arg_pair(self, types[k], types[k + 1], "a pair's")
            if len({types[k] for k in (0, 2, 4)}) != 1:
                raise VerifyError(self, "the pairs must have one type")
        else:
            for k in (0, 2, 4):
                if _uniform(self, types[k], "a value") != types[0] or _uniform(self, types[k + 1], "an index") \
                        != TileType("i32", ()):
                    raise VerifyError(self, "uniform pairs must be (T, i32) scalars of one T")


@register
class RegScanOp(ThreadOp):
    """In-thread inclusive scan: for each run (registers in line order), ``out[run[j]]`` combines
    ``in[run[0]], ..., in[run[j]]`` by ``kind`` (``sum``); registers in no run are copied."""

    name = "reg_scan"
    pure = cse = True

    def verify(self) -> None:
        super().verify()
        src, dst = _regs(self, self.operands[0].type, "operand"), _regs(self, self.result.type, "result")
        runs = self.attrs.get("runs")
        if src != dst or self.attrs.get("kind") != "sum":
            raise VerifyError(self, "reg_scan keeps the type; kind must be sum")
        flat = [r for run in runs for r in run] if isinstance(runs, list) else None
        if flat is None or len(set(flat)) != len(flat) or any(not 0 <= r < src.n for r in flat):
            raise VerifyError(self, "runs must list distinct registers")
