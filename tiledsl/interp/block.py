"""The block-level interpreter: runs tile IR with NumPy for every block of the grid.

Blocks are vectorised: every value carries a leading block axis, of length 1 when
the value is the same in every block (constants, dims) so that NumPy broadcasting
does the rest. Loops whose trip count differs between blocks (causal attention) and
``if``s whose condition differs run with an *active* mask over blocks, exactly like
SIMT lanes. While it runs it checks unmasked global accesses, reads of LDS nothing
wrote, and — at the end — that every element of every ``out`` tensor was written
exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.diagnostics import TdslError
from tiledsl.interp.dispatch import OpInterpreter, handler_table
from tiledsl.interp.numerics import (
    ELEMENTWISE,
    STORAGE,
    arg_reduce,
    as_stored,
    atomic_update,
    reduce,
    round_to,
    scan,
)
from tiledsl.interp.report import InterpError, Report
from tiledsl.ir import ops
from tiledsl.ir.core import Op
from tiledsl.ir.types import LdsType, TensorType, TileType

HANDLERS, handles = handler_table()


@dataclass
class GlobalTensor:
    """A tensor argument: its data in storage form and, for outs, a write count."""

    name: str
    data: np.ndarray
    dtype: str
    counts: np.ndarray | None = None
    #: For outs: which elements an atomic has updated (made at the first atomic on the tensor).
    atomic_hits: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Accesses go through ``data.reshape(-1)``, a view only of C-ordered data: a write into
        # anything else would land in a copy and be lost.
        if not self.data.flags.c_contiguous:
            raise ValueError(f"internal: the storage of '{self.name}' is not C-contiguous")

    def update_atomically(self, where: np.ndarray, values: np.ndarray, kind: str) -> np.ndarray:
        """Atomics at the flat positions ``where``, in that order (``numerics.atomic_update``):
        returns the old values; records the positions for the coverage check."""
        if self.counts is not None:
            if self.atomic_hits is None:
                self.atomic_hits = np.zeros(self.data.shape, dtype=bool)
            self.atomic_hits.reshape(-1)[where] = True
        return atomic_update(self.data.reshape(-1), where, values, kind, self.dtype)


def checked_grid(kernel: ops.KernelOp, values: list[Any], dims: dict[str, int]) -> list[int]:
    """The grid's extents, computed by running its region to ``values``. A negative extent is
    the program's mistake for these sizes: a TdslError at the extent's expression."""
    extents = [int(np.asarray(v).reshape(-1)[0]) for v in values]
    term = kernel.grid.terminator
    names = kernel.attrs.get("grid_names") or []
    for axis, (n, v) in enumerate(zip(extents, term.operands)):
        if n < 0:
            loc = v.owner.loc if isinstance(v.owner, Op) and v.owner.loc is not None else term.loc
            name = f" ({names[axis]})" if axis < len(names) else ""
            sizes = ", ".join(f"{k}={dims[k]}" for k in sorted(dims))
            raise TdslError(loc, f"grid axis {axis}{name} has extent {n}{f' with {sizes}' if sizes else ''}; "
                                 f"a grid extent must not be negative")
    return extents


@dataclass
class LdsBuffer:
    data: np.ndarray        # [blocks, *shape]
    written: np.ndarray     # [blocks, *shape] bool
    name: str


class BlockInterpreter(OpInterpreter):
    """Interprets one kernel op over a chunk of blocks at a time."""

    handlers = HANDLERS
    level = "block"

    def __init__(self, kernel: ops.KernelOp, tensors: dict[str, GlobalTensor], scalars: dict[str, Any],
                 dims: dict[str, int], report: Report) -> None:
        super().__init__()
        self.kernel = kernel
        self.tensors = tensors
        self.scalars = scalars
        self.dims = dims
        self.report = report
        self.coords: list[np.ndarray] = []
        self.active = np.ones(1, dtype=bool)
        # Optional observer of global and LDS accesses (used to draw who touches what):
        # tracer(op, kind, name, flat_index[blocks, *tile], mask[blocks, *tile], block_coords)
        # with kind "read" | "write" | "lds_read" | "lds_write"; and tracer(op, "sync", "", None,
        # active_blocks, block_coords) at every sync.
        self.tracer: Callable[..., None] | None = None

    # ------------------------------------------------------------ driving
    def grid_extents(self) -> list[int]:
        return checked_grid(self.kernel, self.run_block(self.kernel.grid, []), self.dims)

    def run(self, chunk_elems: int = 1 << 22) -> None:
        grid = self.grid_extents()
        total = math.prod(grid)      # np.prod would wrap past 2^63
        self.report.blocks = total
        per_block = max(self._largest_tile(), 1)
        chunk = max(1, min(total, chunk_elems // per_block))
        for start in range(0, total, chunk):
            ids = np.arange(start, min(start + chunk, total))      # not all at once: grids can be huge
            self.coords = list(np.unravel_index(ids, grid, order="F")) if grid else []
            self.coords = [c.astype(np.int32) for c in self.coords]
            self.active = np.ones(len(ids), dtype=bool)
            args = []
            for a in self.kernel.body.args:
                name = a.hint
                args.append(self.tensors[name] if isinstance(a.type, TensorType)
                            else np.asarray([self.scalars[name]]))
            self.run_block(self.kernel.body, args)

    def _largest_tile(self) -> int:
        best = 1
        for op in self.kernel.walk():
            for r in op.results:
                if isinstance(r.type, (TileType, LdsType)) and all(isinstance(d, int) for d in r.type.shape):
                    best = max(best, int(np.prod(r.type.shape)))
        return best

    # ------------------------------------------------------------ helpers
    @property
    def nb(self) -> int:
        return len(self.active)

    def block_coords(self, i: int) -> tuple[int, ...]:
        return tuple(int(c[i]) for c in self.coords)

    def error(self, kind: str, op: Op, message: str, block_index: int | None) -> None:
        block = self.block_coords(block_index) if block_index is not None else None
        self.report.add(InterpError(kind, op.loc, message, block))

    def per_block(self, x: np.ndarray) -> np.ndarray:
        """``x`` with a full block axis (a uniform value is repeated)."""
        return np.broadcast_to(x, (self.nb, *x.shape[1:]))

    def slice_indices(self, op: Op, tensor: GlobalTensor, starts: list[np.ndarray]
                      ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per-dim index arrays (broadcastable to [blocks, *tile]), the in-bounds mask,
        and the flag of unmasked out-of-bounds positions: scalar indices, index tiles of dims
        without a bound, and the dims a pass marked ``inbounds`` (split-tail), whose claim is
        checked here. ``starts`` are the op's addressing operands: one per dim, then the bounds."""
        extents = op.attrs["extents"]
        inbounds = op.attrs.get("inbounds", ())
        gather = op.attrs.get("gather", ())
        bounds = dict(zip(op.attrs.get("bounded", ()), starts[len(extents):]))
        rank = sum(1 for e in extents if e != 0)
        idx = []
        inb = np.ones((1,) * (rank + 1), dtype=bool)
        unmasked_bad = np.zeros((1,) * (rank + 1), dtype=bool)
        pos = 0
        for d, (e, st) in enumerate(zip(extents, starts)):
            size = tensor.data.shape[d]
            if d in gather:
                axis = op.gather_axis()
                tile = np.asarray(st)
                ix = tile.reshape(tile.shape[0], *([1] * axis), tile.shape[-1], *([1] * (rank - axis - 1)))
                ix = ix.astype(np.int64)
                pos += e != 0
            else:
                ix = np.asarray(st).reshape(-1, *([1] * rank)).astype(np.int64)
            if e != 0 and d not in gather:
                shape = [1] * (rank + 1)
                shape[pos + 1] = e
                ix = ix + np.arange(e).reshape(shape)
                pos += 1
            ok = (ix >= 0) & (ix < size)
            if d in bounds:
                ok = ok & (ix < np.asarray(bounds[d]).reshape(-1, *([1] * rank)))
            if (e == 0 and d not in gather) or d in inbounds or (d in gather and d not in bounds):
                unmasked_bad = unmasked_bad | ~ok
            inb = inb & ok
            idx.append(ix)
        return idx, inb, unmasked_bad

    def linear_index(self, tensor: GlobalTensor, idx: list[np.ndarray], inb: np.ndarray) -> np.ndarray:
        """Flat offsets into the tensor (out-of-bounds positions point at element 0)."""
        strides = np.cumprod((1, *tensor.data.shape[:0:-1]))[::-1]
        lin = sum(ix * int(s) for ix, s in zip(idx, strides))
        if not inb.all():
            lin = np.where(inb, lin, 0)
        return lin

    def check_unmasked(self, op: Op, tensor: GlobalTensor, bad: np.ndarray, idx: list[np.ndarray],
                       active: np.ndarray) -> None:
        if not bad.any():
            return
        tile = np.broadcast_shapes(bad.shape, *(np.shape(ix) for ix in idx))[1:]
        bad_full = np.broadcast_to(bad, (self.nb, *tile))
        bad_blocks = bad_full.reshape(self.nb, -1).any(axis=1) & active
        if bad_blocks.any():
            b = int(np.argmax(bad_blocks))
            at = np.unravel_index(int(np.argmax(bad_full[b])), bad_full.shape[1:])
            where = [int(np.broadcast_to(ix, bad_full.shape)[(b, *at)]) for ix in idx]
            hint = "; an index tile's entries must lie inside the dim, or be masked with 'until BOUND'" \
                if set(op.attrs.get("gather", ())) - set(op.attrs.get("bounded", ())) else ""
            self.error("out-of-bounds", op,
                       f"unmasked index out of range of '{tensor.name}' {list(tensor.data.shape)}: "
                       f"element {where} ({int(bad_blocks.sum())} blocks affected){hint}", b)


# ---------------------------------------------------------------- handlers

@handles("dim")
def _dim(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray([it.dims[op.attrs["name"]]], dtype=np.int32)]


@handles("scalar_arg")
def _scalar_arg(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.asarray([it.scalars[op.attrs["name"]]], dtype=np.int32)]


@handles("block_id")
def _block_id(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [it.coords[op.attrs["axis"]]]


@handles("const")
def _const(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [round_to(np.asarray([op.attrs["value"]]), op.result.type.dtype)]


@handles("fill")
def _fill(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    (s,) = args
    shape = op.result.type.shape
    return [np.broadcast_to(s.reshape(-1, *([1] * len(shape))), (s.shape[0], *shape))]


@handles("iota")
def _iota(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.arange(op.result.type.shape[0], dtype=np.int32)[None]]


def _elementwise(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [ELEMENTWISE[op.name](op, *args)]


for _name in ELEMENTWISE:
    HANDLERS[_name] = _elementwise


@handles("expand_dims")
def _expand(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.expand_dims(args[0], op.attrs["axis"] + 1)]


@handles("broadcast")
def _broadcast(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    (x,) = args
    shape = op.result.type.shape
    if x.ndim == 1:
        x = x.reshape(-1, *([1] * len(shape)))
    return [np.broadcast_to(x, (x.shape[0], *shape))]


@handles("transpose")
def _transpose(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [np.swapaxes(args[0], -1, -2)]


@handles("convert_layout")
def _convert_layout(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [args[0]]


@handles("reduce_max", "reduce_min", "reduce_sum")
def _reduce(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    # An LDS scratch operand plays no part here.
    return [reduce(op.kind, args[0], op.attrs["axis"] + 1, op.result.type.dtype)]


@handles(*(cls.name for cls in ops.ARG_REDUCE_OPS.values()))
def _arg_reduce(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    # The LDS scratch operands play no part here.
    return list(arg_reduce(op.kind, args[0], op.attrs["axis"] + 1))


@handles(*(cls.name for cls in ops.SCAN_OPS.values()))
def _scan(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    return [scan(op.kind, args[0], op.attrs["axis"] + 1, op.result.type.dtype)]


@handles("dot")
def _dot(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    # Operands are already rounded to their dtype; the products and sums are f32.
    # Contiguous f32 operands keep np.matmul on BLAS (a transposed view takes a slow loop).
    a = np.ascontiguousarray(args[0], dtype=np.float32)
    b = np.ascontiguousarray(args[1], dtype=np.float32)
    out = np.matmul(a, b)
    if len(args) == 3:
        out = out + args[2]
    return [out]


@handles("load")
def _load(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, starts = args[0], args[1:]
    idx, inb, bad = it.slice_indices(op, tensor, starts)
    it.check_unmasked(op, tensor, bad, idx, it.active)
    if tensor.data.size == 0:
        shape = np.broadcast_shapes(*[ix.shape for ix in idx])
        return [np.full(shape, round_to(np.asarray(op.attrs["pad"]), tensor.dtype), STORAGE[tensor.dtype])]
    row = _row_gather(tensor, op.attrs["extents"], idx, inb)
    if row is not None and it.tracer is None:
        return [row]
    lin = it.linear_index(tensor, idx, inb)
    vals = tensor.data.reshape(-1).take(lin)
    if it.tracer is not None:
        full = (it.nb, *lin.shape[1:])
        mask = np.broadcast_to(inb, full) & it.active.reshape(-1, *([1] * (lin.ndim - 1)))
        it.tracer(op, "read", tensor.name, np.broadcast_to(lin, full), mask, it.coords)
    if not inb.all():
        vals = np.where(inb, vals, round_to(np.asarray(op.attrs["pad"]), tensor.dtype))
    return [vals]


def _row_gather(tensor: GlobalTensor, extents: list, idx: list[np.ndarray], inb: np.ndarray) -> np.ndarray | None:
    """Fast path of a load whose last dim is taken whole and in bounds: gather rows,
    not elements (the index array is a row's length smaller)."""
    size = tensor.data.shape[-1]
    last = idx[-1]
    if extents[-1] != size or last.shape[-1] != size or not inb.all() or len(idx) < 2:
        return None
    if not (last.reshape(-1, size)[:, 0] == 0).all():
        return None
    rows = sum(ix[..., :1] * int(np.prod(tensor.data.shape[d + 1:-1])) for d, ix in enumerate(idx[:-1]))
    rows = np.asarray(rows)[..., 0]
    return tensor.data.reshape(-1, size).take(rows, axis=0)


@handles("store")
def _store(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, starts, value = args[0], args[1:-1], args[-1]
    idx, inb, bad = it.slice_indices(op, tensor, starts)
    it.check_unmasked(op, tensor, bad, idx, it.active)
    tile_shape = tuple(e for e in op.attrs["extents"] if e != 0)
    full = (it.nb, *tile_shape)
    mask = np.broadcast_to(inb, full) & it.active.reshape(-1, *([1] * len(tile_shape)))
    lin_full = np.broadcast_to(it.linear_index(tensor, idx, inb), full)
    if it.tracer is not None:
        it.tracer(op, "write", tensor.name, lin_full, mask, it.coords)
    lin = lin_full[mask]
    vals = np.broadcast_to(value, full)[mask]
    tensor.data.reshape(-1)[lin] = as_stored(vals, tensor.dtype)
    if tensor.counts is not None:
        # bincount counts repeated positions within one store (overlapping blocks).
        tensor.counts.reshape(-1)[...] += np.bincount(lin, minlength=tensor.counts.size).astype(np.int32)
    return []


@handles("atomic_add", "atomic_max", "atomic_min")
def _atomic(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    """The blocks' updates are applied one block after another, in the order of their linear ids
    (the grid's first axis fastest; a block's own elements are distinct), so the old values are
    those of that serialisation. Masked-off elements are not updated and read as 0."""
    tensor = args[0]
    rank = tensor.data.ndim
    starts, value = args[1:1 + rank], args[1 + rank]
    idx, inb, bad = it.slice_indices(op, tensor, starts)
    it.check_unmasked(op, tensor, bad, idx, it.active)
    tile_shape = tuple(e for e in op.attrs["extents"] if e != 0)
    full = (it.nb, *tile_shape)
    mask = np.broadcast_to(inb, full) & it.active.reshape(-1, *([1] * len(tile_shape)))
    lin_full = np.broadcast_to(it.linear_index(tensor, idx, inb), full)
    if it.tracer is not None:
        it.tracer(op, "write", tensor.name, lin_full, mask, it.coords)
    old = np.zeros(full, dtype=tensor.data.dtype)
    old[mask] = tensor.update_atomically(lin_full[mask], np.broadcast_to(value, full)[mask], op.kind)
    return [old] if op.results else []


@handles("lds_alloc")
def _lds_alloc(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    shape = op.result.type.shape
    storage = STORAGE[op.result.type.dtype]
    data = np.full((it.nb, *shape), np.nan if np.issubdtype(storage, np.floating) else 0, dtype=storage)
    return [LdsBuffer(data, np.zeros((it.nb, *shape), dtype=bool), op.result.hint or "lds")]


def _lds_trace(it: BlockInterpreter, op: Op, kind: str, buf: LdsBuffer) -> None:
    if it.tracer is not None:
        shape = buf.data.shape
        lin = np.broadcast_to(np.arange(int(np.prod(shape[1:]))).reshape(shape[1:]), shape)
        mask = np.broadcast_to(it.active.reshape(-1, *([1] * (len(shape) - 1))), shape)
        it.tracer(op, kind, buf.name, lin, mask, it.coords)


def _lds_store(it: BlockInterpreter, op: Op, buf: LdsBuffer, value: np.ndarray) -> None:
    _lds_trace(it, op, "lds_write", buf)
    act = it.active
    full = np.broadcast_to(value, buf.data.shape)
    if act.all():
        buf.data[...] = full
        buf.written[...] = True
    else:
        buf.data[act] = full[act]
        buf.written[act] = True


@handles("copy")
def _copy(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    tensor, starts, buf = args[0], args[1:-1], args[-1]
    (vals,) = _load(it, op, [tensor, *starts])
    _lds_store(it, op, buf, vals)
    return []


@handles("lds_write")
def _lds_write(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    buf, value = args
    _lds_store(it, op, buf, value)
    return []


@handles("lds_read")
def _lds_read(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    (buf,) = args
    _lds_trace(it, op, "lds_read", buf)
    unwritten = ~buf.written.reshape(it.nb, -1)
    bad = unwritten.any(axis=1) & it.active
    if bad.any():
        b = int(np.argmax(bad))
        first = np.unravel_index(int(np.argmax(unwritten[b])), buf.data.shape[1:])
        self_count = int(unwritten[b].sum())
        it.error("uninitialized-lds", op, f"read of LDS tile '{buf.name}' where nothing was written: "
                 f"{self_count} elements, first {[int(i) for i in first]}", b)
    return [buf.data.copy()]


@handles("sync")
def _sync(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    if it.tracer is not None:
        it.tracer(op, "sync", "", None, it.active, it.coords)
    return []


@handles("async_commit", "async_wait")
def _async_group(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    # The block level runs an async copy as an immediate one: nothing is in flight to wait for.
    return []


def _merge(mask: np.ndarray, new: Any, old: Any) -> Any:
    if isinstance(new, np.ndarray) or isinstance(old, np.ndarray):
        new, old = np.asarray(new), np.asarray(old)
        m = mask.reshape(-1, *([1] * (max(new.ndim, old.ndim) - 1)))
        return np.where(m, new, old)
    return new


@handles("for")
def _for(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    lo, hi, step, *carried = args
    body = op.regions[0]
    iv = np.asarray(lo).astype(np.int32)
    outer = it.active
    uniform = all(np.asarray(x).shape[0] == 1 for x in (lo, hi, step))
    if uniform:
        lo_, hi_, st_ = (int(np.asarray(x)[0]) for x in (lo, hi, step))
        if st_ <= 0:
            raise TdslError(op.loc, f"loop step {st_} is not positive")
        for v in range(lo_, hi_, st_):
            carried = it.run_block(body, [np.asarray([v], dtype=np.int32), *carried])
        return carried
    if (np.asarray(step) <= 0).any():
        raise TdslError(op.loc, "loop step is not positive in some block")
    while True:
        running = outer & np.broadcast_to(iv < hi, outer.shape)
        if not running.any():
            break
        it.active = running
        new = it.run_block(body, [iv, *carried])
        carried = new if running.all() else [_merge(running, n, o) for n, o in zip(new, carried)]
        iv = (iv + step).astype(np.int32)
    it.active = outer
    return carried


@handles("if")
def _if(it: BlockInterpreter, op: Op, args: list[Any]) -> list[Any]:
    cond = np.broadcast_to(np.asarray(args[0]), it.active.shape)
    outer = it.active
    taken = outer & cond
    if not (outer & ~cond).any():
        return it.run_block(op.regions[0], [])
    if not taken.any():
        return it.run_block(op.regions[1], [])
    it.active = taken
    then = it.run_block(op.regions[0], [])
    it.active = outer & ~cond
    orelse = it.run_block(op.regions[1], [])
    it.active = outer
    return [_merge(taken, a, b) for a, b in zip(then, orelse)]


def check_coverage(op: Op | None, tensors: dict[str, GlobalTensor], report: Report,
                   accumulators: frozenset[str] = frozenset()) -> None:
    """Every element of every out tensor written exactly once: list holes and double writes.
    ``accumulators`` (the outs the kernel updates with atomics) are checked by
    :func:`check_accumulator` instead."""
    for t in tensors.values():
        if t.counts is None:
            continue
        if t.name in accumulators:
            check_accumulator(op, t, report)
            continue
        for kind, mask in (("output-hole", t.counts == 0), ("output-double-write", t.counts > 1)):
            n = int(mask.sum())
            if n:
                first = [[int(i) for i in p] for p in np.argwhere(mask)[:4]]
                what = "never written" if kind == "output-hole" else "written more than once"
                report.add(InterpError(kind, op.loc if op else None,
                                       f"{n} of {t.counts.size} elements of '{t.name}' {what}; first at {first}"))


def check_accumulator(op: Op | None, t: GlobalTensor, report: Report) -> None:
    """Coverage of an out tensor that the kernel updates with atomics: the caller initialised it,
    so an element may be updated any number of times, or not at all (it keeps its value). An
    element both stored and updated atomically is reported (the two race: nothing orders them),
    as is one stored twice, and a run of blocks that reached no element of the tensor at all."""
    assert t.counts is not None
    hits = t.atomic_hits if t.atomic_hits is not None else np.zeros(t.counts.shape, dtype=bool)
    loc = op.loc if op else None
    checks = (("output-mixed-write", hits & (t.counts > 0), "both stored and updated atomically"),
              ("output-double-write", t.counts > 1, "written more than once"))
    for kind, mask, what in checks:
        n = int(mask.sum())
        if n:
            first = [[int(i) for i in p] for p in np.argwhere(mask)[:4]]
            report.add(InterpError(kind, loc, f"{n} of {t.counts.size} elements of '{t.name}' {what}; "
                                              f"first at {first}"))
    if report.blocks and t.counts.size and not hits.any() and not t.counts.any():
        report.add(InterpError("output-hole", loc, f"'{t.name}' is updated atomically in the kernel, but no "
                                                   f"block reached any of its {t.counts.size} elements"))
