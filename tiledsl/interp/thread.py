"""The thread-level interpreter: runs thread IR with every thread of a block at once.

A per-thread value is an array ``[threads, registers]``; a uniform scalar is ``[1]``.
Blocks run one after another (optionally in a shuffled order). LDS is a byte array
with shadow state per byte — last writer and its barrier epoch, last reader(s) and
theirs — so two accesses to one byte from different threads, at least one a write,
with no barrier between them are reported as a race whatever order the interpreter
ran them in. Global accesses are checked against the tensor bounds where unmasked,
reads of LDS that nothing wrote are reported, and output coverage is counted.

Asynchronous copies (``async_copy``) are modelled as the hardware allows them to behave:
their data lands only at the ``async_wait`` that covers their group, and until then any
access to the destination bytes is reported as a race with the copy — so a pipelining
schedule that reads a buffer before its wait, or refills it while it is read, is caught.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiledsl.interp.block import GlobalTensor, checked_grid
from tiledsl.interp.dispatch import OpInterpreter, handler_table
from tiledsl.interp.numerics import (
    ELEMENTWISE,
    STORAGE,
    arg_better,
    as_stored,
    from_bits,
    reduce,
    round_to,
    scan,
    to_bits,
)
from tiledsl.interp.report import InterpError, Report
from tiledsl.ir import ops
from tiledsl.ir.core import Op
from tiledsl.ir.lds_storage import LdsStorage
from tiledsl.ir.types import DTYPE_BYTES, FP8_DTYPES, INT_DTYPES, RegsType, TensorType
from tiledsl.layout import Layout
from tiledsl.thread.context import ThreadContext

HANDLERS, handles = handler_table()
_NP = {"f16": np.float16, "f32": np.float32, "i32": np.int32, "i8": np.int8, "u8": np.uint8, "i16": np.int16,
       "u32": np.uint32, "i64": np.int64, "f8e4m3": np.uint8, "f8e5m2": np.uint8}
#: Unsigned integers of each element size (raw LDS words).
_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class LdsState:
    """LDS bytes of one block and the shadow state used to find races."""

    size: int
    nan_fill: bool
    data: np.ndarray = field(init=False)
    written: np.ndarray = field(init=False)
    w_thread: np.ndarray = field(init=False)
    w_epoch: np.ndarray = field(init=False)
    r_thread: np.ndarray = field(init=False)
    r_epoch: np.ndarray = field(init=False)
    r_multi: np.ndarray = field(init=False)
    #: Per byte: the thread whose async copy into it is in flight (-1: none).
    in_flight: np.ndarray = field(init=False)
    #: Async copies not yet waited for, in issue order (see ``AsyncCopy``).
    copies: list[AsyncCopy] = field(init=False, default_factory=list)
    #: Groups committed so far (``async_commit``).
    groups: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        n = max(self.size, 4)
        self.data = np.zeros(n, dtype=np.uint8)
        if self.nan_fill:
            self.data.view(np.uint8)[:] = 0xFF          # all-ones bytes: NaN for f16 and f32
        self.written = np.zeros(n, dtype=bool)
        self.w_thread = np.full(n, -1, dtype=np.int32)
        self.w_epoch = np.full(n, -1, dtype=np.int32)
        self.r_thread = np.full(n, -1, dtype=np.int32)
        self.r_epoch = np.full(n, -1, dtype=np.int32)
        self.r_multi = np.zeros(n, dtype=bool)
        self.in_flight = np.full(n, -1, dtype=np.int32)


@dataclass
class AsyncCopy:
    """One ``async_copy`` in flight: what it will write where, once a wait covers its group
    (None until the next ``async_commit``)."""

    op: Op
    offsets: np.ndarray     # [threads, registers] LDS byte offsets
    mask: np.ndarray        # [threads, registers] which registers are copied
    bits: np.ndarray        # [threads, registers] the values, as stored in LDS
    es: int
    group: int | None = None


class ThreadInterpreter(OpInterpreter):
    handlers = HANDLERS
    level = "thread"

    def __init__(self, kernel: ops.KernelOp, ctx: ThreadContext, tensors: dict[str, GlobalTensor],
                 scalars: dict[str, Any], dims: dict[str, int], report: Report, nan_fill: bool = False) -> None:
        super().__init__()
        self.kernel = kernel
        self.ctx = ctx
        self.T = ctx.threads
        self.W = ctx.target.wave_size
        self.tensors = tensors
        self.scalars = scalars
        self.dims = dims
        self.report = report
        self.nan_fill = nan_fill
        self.coords: tuple[int, ...] = ()
        self.epoch = 0
        self.lds = LdsState(0, nan_fill)
        self.buffers = sorted((v[0], k, LdsStorage.from_record(v[1:]))
                              for k, v in kernel.attrs.get("lds_buffers", {}).items())
        self._layout_data: dict[tuple, np.ndarray] = {}

    # ------------------------------------------------------------ driving
    def run(self, order: np.ndarray | None = None) -> None:
        grid = checked_grid(self.kernel, self.run_block(self.kernel.grid, []), self.dims)
        total = math.prod(grid)      # np.prod would wrap past 2^63
        self.report.blocks = total
        ids = range(total) if order is None else order(total)
        for b in ids:
            self.coords = tuple(int(c) for c in np.unravel_index(int(b), grid, order="F"))
            self.epoch = 0
            self.lds = LdsState(int(self.kernel.attrs.get("lds_bytes", 0)), self.nan_fill)
            args = []
            for a in self.kernel.body.args:
                args.append(self.tensors[a.hint] if isinstance(a.type, TensorType)
                            else np.asarray([self.scalars[a.hint]]))
            self.run_block(self.kernel.body, args)

    # ------------------------------------------------------------ helpers
    def error(self, kind: str, op: Op, message: str, thread: int | None = None) -> None:
        wave, lane = (divmod(int(thread), self.W) if thread is not None else (None, None))
        self.report.add(InterpError(kind, op.loc, message, self.coords, wave, lane))

    def layout(self, op: Op, key: str = "layout") -> Layout:
        return self.ctx.bind(op.attrs[key], tuple(op.attrs["shape"]), op.attrs.get("dtype", "f32"))

    def full(self, x: Any, n: int) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1 and x.shape[0] == 1:
            return np.broadcast_to(x.reshape(1, 1), (self.T, n))
        return np.broadcast_to(x, (self.T, n))

    def who(self, thread: int) -> str:
        w, lane = divmod(int(thread), self.W)
        return f"wave {w} lane {lane}"

    def lds_name(self, byte: int) -> str:
        """The LDS tile element(s) at ``byte``: tiles that reuse memory share bytes."""
        names = []
        for off, name, storage in self.buffers:
            if off <= byte < off + storage.nbytes:
                at = storage.element_at(byte - off)
                names.append(f"LDS tile '{name}' element {list(at)}" if at is not None
                             else f"LDS tile '{name}' padding (byte {byte - off})")
        return " or ".join(names) if names else f"LDS byte {byte}"

    # ------------------------------------------------------------ LDS
    def lds_access(self, op: Op, offsets: np.ndarray, mask: np.ndarray, es: int, write: bool) -> tuple:
        """Check and record an LDS access; returns (thread ids, byte offsets) of the
        active elements."""
        t_ids = np.broadcast_to(np.arange(self.T)[:, None], offsets.shape)[mask]
        offs = offsets[mask].astype(np.int64)
        if offs.size == 0:
            return t_ids, offs
        if (offs % es).any():
            # Distribution places every element at a multiple of its size (LdsStorage): our bug.
            raise RuntimeError(f"internal: {op.loc}: an LDS access of {es}-byte elements at byte "
                               f"{int(offs[np.argmax(offs % es != 0)])}, not a multiple of {es}")
        if (offs < 0).any() or (offs + es > self.lds.data.size).any():
            bad = int(np.argmax((offs < 0) | (offs + es > self.lds.data.size)))
            self.error("out-of-bounds", op, f"LDS access at byte {int(offs[bad])} outside the "
                                           f"{self.lds.data.size} bytes of LDS", int(t_ids[bad]))
            keep = (offs >= 0) & (offs + es <= self.lds.data.size)
            t_ids, offs = t_ids[keep], offs[keep]
        byte_idx = (offs[:, None] + np.arange(es)[None, :]).reshape(-1)
        threads = np.repeat(t_ids, es)
        s = self.lds
        ep = self.epoch
        self._in_flight_race(op, byte_idx, threads, write)
        # Several threads on one byte within this one op.
        order = np.lexsort((threads, byte_idx))
        b_sorted, t_sorted = byte_idx[order], threads[order]
        first_of_byte = np.r_[True, b_sorted[1:] != b_sorted[:-1]]
        t_first = np.maximum.accumulate(np.where(first_of_byte, np.arange(len(b_sorted)), 0))
        multi = t_sorted != t_sorted[t_first]
        if write:
            clash = (s.w_epoch[byte_idx] == ep) & (s.w_thread[byte_idx] != threads)
            war = (s.r_epoch[byte_idx] == ep) & ((s.r_thread[byte_idx] != threads) | s.r_multi[byte_idx])
            self._race(op, "write-after-write", clash, byte_idx, threads, s.w_thread)
            self._race(op, "write-after-read", war & ~clash, byte_idx, threads, s.r_thread)
            if multi.any():
                i = int(np.argmax(multi))
                self.error("lds-race", op, f"{self.lds_name(int(b_sorted[i]))} written by two threads in one "
                           f"access with no barrier between: {self.who(t_sorted[t_first[i]])} and "
                           f"{self.who(t_sorted[i])}", int(t_sorted[i]))
            s.w_epoch[byte_idx] = ep
            s.w_thread[byte_idx] = threads
            s.written[byte_idx] = True
        else:
            raw = (s.w_epoch[byte_idx] == ep) & (s.w_thread[byte_idx] != threads)
            self._race(op, "read-after-write", raw, byte_idx, threads, s.w_thread)
            unwritten = ~s.written[byte_idx]
            if unwritten.any():
                i = int(np.argmax(unwritten))
                self.error("uninitialized-lds", op, f"read of {self.lds_name(int(byte_idx[i]))}, which nothing "
                                                    f"has written", int(threads[i]))
            new = s.r_epoch[byte_idx] != ep
            other = ~new & (s.r_thread[byte_idx] != threads)
            s.r_multi[byte_idx[other]] = True
            s.r_multi[byte_idx[new]] = False
            s.r_epoch[byte_idx] = ep
            s.r_thread[byte_idx[new]] = threads[new]
            s.r_multi[b_sorted[multi]] = True
        return t_ids, offs

    def _in_flight_race(self, op: Op, byte_idx: np.ndarray, threads: np.ndarray, write: bool) -> None:
        """An access to bytes that an async copy has not landed in yet (no ``async_wait``
        covering it): a race with the copy, whichever thread issued it."""
        busy = self.lds.in_flight[byte_idx] >= 0
        if not busy.any():
            return
        i = int(np.argmax(busy))
        b = int(byte_idx[i])
        issuer = int(self.lds.in_flight[b])
        what = "write to" if write else "read of"
        self.error("lds-race", op, f"{what} {self.lds_name(b)} before the wait for the async copy into it "
                                   f"(issued by {self.who(issuer)}): the copy may still be writing it",
                   int(threads[i]))

    def async_issue(self, op: Op, offsets: np.ndarray, mask: np.ndarray, bits: np.ndarray, es: int) -> None:
        """Start an async copy: checked now as a write (against reads and writes since the
        last barrier), its bytes in flight until a wait lands it."""
        t_ids = np.broadcast_to(np.arange(self.T)[:, None], offsets.shape)[mask]
        offs = offsets[mask].astype(np.int64)
        byte_idx = (offs[:, None] + np.arange(es)[None, :]).reshape(-1)
        threads = np.repeat(t_ids, es)
        s = self.lds
        inside = (byte_idx >= 0) & (byte_idx < s.data.size)
        saved = s.w_epoch.copy(), s.w_thread.copy(), s.written.copy()
        self.lds_access(op, offsets, mask, es, write=True)
        s.w_epoch, s.w_thread, s.written = saved      # it lands at the wait, not now
        s.in_flight[byte_idx[inside]] = threads[inside]
        s.copies.append(AsyncCopy(op, offsets, mask, bits, es))

    def async_wait(self, op: Op, pending: int) -> None:
        """Land every copy of the groups older than the ``pending`` newest: from here on it is
        an ordinary write by its thread (a barrier must come before other threads read it)."""
        s = self.lds
        done = [c for c in s.copies if c.group is not None and c.group < s.groups - pending]
        s.copies = [c for c in s.copies if c not in done]
        for c in done:
            offs = c.offsets[c.mask].astype(np.int64)
            s.in_flight[(offs[:, None] + np.arange(c.es)[None, :]).reshape(-1)] = -1
            self.lds_access(c.op, c.offsets, c.mask, c.es, write=True)
            ok = c.mask & (c.offsets >= 0) & (c.offsets + c.es <= s.data.size)
            view = self.lds_words(c.es)
            view[c.offsets[ok] // c.es] = c.bits[ok]

    def _race(self, op: Op, what: str, bad: np.ndarray, byte_idx: np.ndarray, threads: np.ndarray,
              other: np.ndarray) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            self.error("lds-race", op, f"{what} race on {self.lds_name(int(byte_idx[i]))}: "
                                       f"{self.who(threads[i])} and {self.who(other[byte_idx[i]])} with no "
                                       f"barrier between", int(threads[i]))

    def check_vector(self, op: Op, offsets: np.ndarray, mask: np.ndarray, es: int) -> None:
        """A ``vec`` access is lowered as one access per group of ``vec`` registers, at the
        first register's address and under its mask: the group's registers must be consecutive
        bytes, aligned to the group's size, and masked alike."""
        vec = int(op.attrs.get("vec", 1))
        if vec == 1:
            return
        off = offsets.reshape(self.T, -1, vec).astype(np.int64)
        m = mask.reshape(self.T, -1, vec)
        on = m[..., 0]
        bad = (off != off[..., :1] + es * np.arange(vec)).any(-1) | (off[..., 0] % (vec * es) != 0)
        bad = (bad & on) | (m != on[..., None]).any(-1)
        if bad.any():
            t, g = (int(i) for i in np.argwhere(bad)[0])
            self.error("bad-vector", op, f"a {vec}-wide LDS access whose registers {g * vec}..{g * vec + vec - 1} "
                                         f"are not {vec} consecutive aligned elements: byte offsets "
                                         f"{[int(x) for x in off[t, g]]}", t)

    def lds_words(self, es: int) -> np.ndarray:
        """LDS as an array of ``es``-byte words (a view: writes land in LDS); the bytes past the
        last whole word are left out, and no aligned access reaches them."""
        data = self.lds.data
        return data[:data.size - data.size % es].view(_WORD[es])

    def lds_view(self, dtype: str) -> np.ndarray:
        if dtype == "bf16":
            return self.lds_words(2)
        es = DTYPE_BYTES[dtype]
        return self.lds_words(es).view(_NP[dtype])


# ---------------------------------------------------------------- handlers

@handles(*ELEMENTWISE)
def _elementwise(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [ELEMENTWISE[op.name](op, *args)]


@handles("const")
def _const(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [round_to(np.asarray([op.attrs["value"]]), op.result.type.dtype)]


@handles("dim")
def _dim(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray([it.dims[op.attrs["name"]]], dtype=np.int32)]


@handles("scalar_arg")
def _scalar_arg(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray([it.scalars[op.attrs["name"]]], dtype=np.int32)]


@handles("block_id")
def _block_id(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray([it.coords[op.attrs["axis"]]], dtype=np.int32)]


@handles("thread_id")
def _thread_id(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.arange(it.T, dtype=np.int32)[:, None]]


@handles("splat")
def _splat(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [it.full(args[0], op.result.type.n)]


def _layout_array(it: ThreadInterpreter, op: Op, make: Callable[[Layout], np.ndarray]) -> np.ndarray:
    key = (op.name, tuple(sorted((k, str(v)) for k, v in op.attrs.items())))
    if key not in it._layout_data:
        it._layout_data[key] = make(it.layout(op))
    return it._layout_data[key]


@handles("coord")
def _coord(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    def make(lay: Layout) -> np.ndarray:
        c = lay.index_map()[..., op.attrs["dim"]].reshape(it.T, lay.regs)
        return np.maximum(c, 0).astype(np.int32)
    return [_layout_array(it, op, make)]


@handles("valid")
def _valid(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    def make(lay: Layout) -> np.ndarray:
        valid = lay.valid().reshape(it.T, lay.regs)
        owner = op.attrs.get("owner")
        if owner is None:
            return valid
        lin = lay.linear_map().reshape(lay.num_waves, it.W * lay.regs)
        keep = np.zeros_like(lin, dtype=bool)
        if owner == "block":
            flat = lin.reshape(-1)
            _, first = np.unique(np.where(flat >= 0, flat, -1), return_index=True)
            k = keep.reshape(-1)
            k[first] = True
            k &= flat >= 0
        else:
            for w in range(lay.num_waves):
                _, first = np.unique(lin[w], return_index=True)
                keep[w, first] = True
            keep &= lin >= 0
        return keep.reshape(it.T, lay.regs)
    return [_layout_array(it, op, make)]


@handles("held_by_wave")
def _held(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    def make(lay: Layout) -> np.ndarray:
        lin = lay.linear_map()
        mine = {int(x) for x in lin[op.attrs["wave"]].reshape(-1) if x >= 0}
        flat = lin.reshape(it.T, lay.regs)
        return np.isin(flat, list(mine)) & (flat >= 0)
    return [_layout_array(it, op, make)]


@handles("reg_gather")
def _reg_gather(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray(args[0])[:, op.attrs["indices"]]]


@handles("reg_reduce")
def _reg_reduce(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    x = np.asarray(args[0])
    groups = op.attrs["groups"]
    kind, dtype = op.attrs["kind"], op.result.type.dtype
    if len({len(g) for g in groups}) == 1:
        return [reduce(kind, x[:, np.array(groups)], 2, dtype)]
    return [np.stack([reduce(kind, x[:, g], 1, dtype) for g in groups], axis=1)]


@handles("shuffle_xor")
def _shuffle_xor(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    x = np.asarray(args[0])
    lanes = np.arange(it.T)
    src = (lanes // it.W) * it.W + ((lanes % it.W) ^ op.attrs["mask"])
    return [x[src]]


@handles("uniform")
def _uniform(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    x = it.full(args[0], 1)[:, 0]
    same = x == x[0]
    if x.dtype.kind == "f":
        same |= np.isnan(x) & np.isnan(x[0])
    if not same.all():
        t = int(np.argmin(same))
        raise RuntimeError(f"internal: {op.loc}: 'uniform' of a value the threads do not agree on: "
                           f"{it.who(0)} holds {x[0]}, {it.who(t)} holds {x[t]}")
    return [np.asarray(x[:1])]


def _global_positions(it: ThreadInterpreter, op: Op, tensor: GlobalTensor, index_args: list[Any], n: int,
                      mask: np.ndarray) -> np.ndarray:
    """Flat offsets of every (thread, register); reports unmasked out-of-bounds."""
    shape = tensor.data.shape
    lin = np.zeros((it.T, n), dtype=np.int64)
    oob = np.zeros((it.T, n), dtype=bool)
    for d, ix in enumerate(index_args):
        full = it.full(ix, n).astype(np.int64)
        oob |= (full < 0) | (full >= shape[d])
        lin = lin * shape[d] + np.clip(full, 0, max(shape[d] - 1, 0))
    bad = oob & mask
    if bad.any():
        t, r = np.argwhere(bad)[0]
        where = [int(it.full(ix, n)[t, r]) for ix in index_args]
        it.error("out-of-bounds", op, f"unmasked access to '{tensor.name}' {list(shape)} at {where}", int(t))
    return np.where(bad, 0, lin)


@handles("global_load")
def _global_load(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, *index_args, mask = args
    n = op.result.type.n
    mask = it.full(mask, n)
    lin = _global_positions(it, op, tensor, index_args, n, mask)
    vals = tensor.data.reshape(-1).take(lin) if tensor.data.size else np.zeros((it.T, n), STORAGE[tensor.dtype])
    pad = round_to(np.asarray(op.attrs["pad"]), tensor.dtype)
    return [np.where(mask, vals, pad)]


@handles("global_store")
def _global_store(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, *index_args, mask, value = args
    n = op.operands[-1].type.n
    mask = it.full(mask, n)
    lin = _global_positions(it, op, tensor, index_args, n, mask)
    where = lin[mask]
    tensor.data.reshape(-1)[where] = as_stored(np.asarray(value)[mask], tensor.dtype)
    if tensor.counts is not None:
        tensor.counts.reshape(-1)[...] += np.bincount(where, minlength=tensor.counts.size).astype(np.int32)
    return []


@handles("global_atomic")
def _global_atomic(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    """The threads' updates are applied one thread after another in thread order (each thread's
    registers in order), blocks in the order they run (``shuffle_blocks`` changes it); the old
    values are those of that serialisation, 0 where masked off."""
    tensor, *index_args, mask, value = args
    n = op.operands[-1].type.n
    mask = it.full(mask, n)
    lin = _global_positions(it, op, tensor, index_args, n, mask)
    old = np.zeros((it.T, n), dtype=tensor.data.dtype)
    old[mask] = tensor.update_atomically(lin[mask], it.full(value, n)[mask], op.attrs["kind"])
    return [old] if op.results else []


def _to_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    if dtype in FP8_DTYPES:
        return to_bits(values, dtype)
    return np.asarray(values).astype(_NP[dtype])


def _from_bits(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype in FP8_DTYPES:
        return from_bits(raw, dtype)
    if dtype in INT_DTYPES:
        return raw.astype(STORAGE[dtype])
    return raw.astype(np.float32)


@handles("lds_load")
def _lds_load(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    off, mask = args
    rt: RegsType = op.result.type
    es = DTYPE_BYTES[rt.dtype]
    off, mask = it.full(off, rt.n), it.full(mask, rt.n)
    it.check_vector(op, off, mask, es)
    it.lds_access(op, off, mask, es, write=False)
    out = np.full((it.T, rt.n), round_to(np.asarray(op.attrs.get("pad", 0)), rt.dtype), dtype=STORAGE[rt.dtype])
    ok = mask & (off >= 0) & (off + es <= it.lds.data.size)
    if ok.any():
        view = it.lds_view(rt.dtype)
        out[ok] = _from_bits(view[off[ok] // es], rt.dtype)
    return [out]


@handles("lds_store")
def _lds_store(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    off, mask, value = args
    vt: RegsType = op.operands[-1].type
    es = DTYPE_BYTES[vt.dtype]
    off, mask = it.full(off, vt.n), it.full(mask, vt.n)
    it.check_vector(op, off, mask, es)
    it.lds_access(op, off, mask, es, write=True)
    ok = mask & (off >= 0) & (off + es <= it.lds.data.size)
    view = it.lds_view(vt.dtype)
    view[off[ok] // es] = _to_bits(np.asarray(value)[ok], vt.dtype)
    return []


@handles("async_copy")
def _async_copy(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, *index_args, load_mask, off, store_mask = args
    n = op.operands[-1].type.n
    load_mask, store_mask, off = it.full(load_mask, n), it.full(store_mask, n), it.full(off, n)
    lin = _global_positions(it, op, tensor, index_args, n, load_mask & store_mask)
    vals = tensor.data.reshape(-1).take(lin) if tensor.data.size else np.zeros((it.T, n), np.float32)
    vals = np.where(load_mask, vals, 0)
    es = DTYPE_BYTES[tensor.dtype]
    bits = _to_bits(as_stored(vals, tensor.dtype), tensor.dtype).view(_WORD[es])
    it.async_issue(op, off, np.array(store_mask), bits, es)
    return []


@handles("async_commit")
def _async_commit(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    for c in it.lds.copies:
        if c.group is None:
            c.group = it.lds.groups
    it.lds.groups += 1
    return []


@handles("async_wait")
def _async_wait(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    it.async_wait(op, op.attrs["pending"])
    return []


@handles("barrier")
def _barrier(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    it.epoch += 1
    return []


def _scatter_tile(lay: Layout, regs: np.ndarray, wave: int) -> np.ndarray:
    """The tile as wave ``wave`` sees it: its registers placed, NaN elsewhere."""
    tile = np.full(lay.shape, np.nan, dtype=np.float32)
    m = lay.index_map()[wave]
    ok = m[..., 0] >= 0
    tile[m[ok][:, 0], m[ok][:, 1]] = regs[ok]
    return tile


@handles("mma_tile")
def _mma_tile(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    a, b, c = (np.asarray(x) for x in args)
    dtype = op.attrs["dtype"]
    m, n, k = op.attrs["m"], op.attrs["n"], op.attrs["k"]
    la = it.ctx.bind(op.attrs["a_layout"], (m, k), dtype)
    lb = it.ctx.bind(op.attrs["b_layout"], (k, n), dtype)
    lc = it.ctx.bind(op.attrs["c_layout"], (m, n), "f32")
    out = np.array(c, dtype=np.float32, copy=True)
    for w in range(it.ctx.num_waves):
        rows = slice(w * it.W, (w + 1) * it.W)
        at = _scatter_tile(la, a[rows].reshape(it.W, la.regs), w)
        bt = _scatter_tile(lb, b[rows].reshape(it.W, lb.regs), w)
        with np.errstate(invalid="ignore"):
            prod = np.matmul(at, bt)
        mc = lc.index_map()[w]
        ok = mc[..., 0] >= 0
        out_w = out[rows]
        out_w[ok] = out_w[ok] + prod[mc[ok][:, 0], mc[ok][:, 1]]
    return [out]


@handles("lds_dot")
def _lds_dot(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    (c,) = args
    lay = it.ctx.bind(op.attrs["c_layout"], tuple(op.attrs["shape"]), "f32")
    dtype = op.attrs["dtype"]
    es = DTYPE_BYTES[dtype]
    K = op.attrs["k"]
    m = lay.index_map().reshape(it.T, lay.regs, 2)
    valid = m[..., 0] >= 0
    i, j = np.maximum(m[..., 0], 0), np.maximum(m[..., 1], 0)
    kk = np.arange(K)
    (sa0, sa1), (sb0, sb1) = op.attrs["a_strides"], op.attrs["b_strides"]
    a_off = op.attrs["a_offset"] + (i[..., None] * sa0 + kk * sa1) * es
    b_off = op.attrs["b_offset"] + (kk * sb0 + j[..., None] * sb1) * es
    vmask = np.broadcast_to(valid[..., None], a_off.shape)
    view = it.lds_view(dtype)
    vals = []
    for off in (a_off, b_off):
        flat_off = off.reshape(it.T, -1)
        it.lds_access(op, flat_off, vmask.reshape(it.T, -1), es, write=False)
        vals.append(_from_bits(view[np.clip(off, 0, it.lds.data.size - es) // es], dtype))
    prod = np.sum(vals[0] * vals[1], axis=-1, dtype=np.float32)
    return [np.asarray(c, np.float32) + np.where(valid, prod, 0)]


@handles("for")
def _for(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    lo, hi, step, *carried = args
    lo_, hi_, st_ = (int(np.asarray(x).reshape(-1)[0]) for x in (lo, hi, step))
    if st_ <= 0:
        from tiledsl.diagnostics import TdslError
        raise TdslError(op.loc, f"loop step {st_} is not positive")
    for v in range(lo_, hi_, st_):
        carried = it.run_block(op.regions[0], [np.asarray([v], dtype=np.int32), *carried])
    return carried


@handles("if")
def _if(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    taken = bool(np.asarray(args[0]).reshape(-1)[0])
    return it.run_block(op.regions[0 if taken else 1], [])


def run_thread_level(program: Any, tile_kernel: ops.KernelOp, tensors: dict[str, GlobalTensor],
                     scalars: dict[str, Any], dims: dict[str, int], report: Report, target: str,
                     shuffle_blocks: bool = False, nan_fill: bool = False, seed: int = 0) -> None:
    """Compile ``program`` to thread IR for ``target`` and interpret it."""
    from tiledsl.thread import compile_thread_ir
    thread_kernel, ctx = compile_thread_ir(program, target)
    interp = ThreadInterpreter(thread_kernel, ctx, tensors, scalars, dims, report, nan_fill=nan_fill)
    order = None
    if shuffle_blocks:
        rng = np.random.default_rng(seed)
        order = rng.permutation
    interp.run(order)


# ---------------------------------------------------------------- arg-reductions and scans

@handles("reg_argreduce")
def _reg_argreduce(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    values, indices = (np.asarray(a) for a in args)
    out_v, out_i = [], []
    for g in op.attrs["groups"]:
        v, i = values[:, g[0]], indices[:, g[0]]
        for r in g[1:]:
            take = arg_better(op.attrs["kind"], v, i, values[:, r], indices[:, r])
            v, i = np.where(take, values[:, r], v), np.where(take, indices[:, r], i)
        out_v.append(v)
        out_i.append(i)
    return [np.stack(out_v, axis=1), np.stack(out_i, axis=1).astype(np.int32)]


@handles("arg_combine")
def _arg_combine(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    v1, i1, v2, i2 = (np.asarray(a) for a in args)
    take = arg_better(op.attrs["kind"], v1, i1, v2, i2)
    return [np.where(take, v2, v1), np.where(take, i2, i1).astype(np.int32)]


@handles("reg_scan")
def _reg_scan(it: ThreadInterpreter, op: Op, args: list[Any]) -> list[Any]:
    x = np.asarray(args[0])
    out = x.copy()
    dtype = op.result.type.dtype
    for run in op.attrs["runs"]:
        out[:, run] = scan(op.attrs["kind"], x[:, run], 1, dtype)
    return [out]
