"""An ``mma_tile`` as Hopper warpgroup matrix instructions (``wgmma.mma_async``, sm_90a).

``wgmma.mma_async.m64nNk16`` is issued by a warpgroup (four consecutive warps) and computes a
64xN tile: warp ``q`` of the group holds rows ``16q..16q+15`` of D in exactly the layout of
``mma.sync.m16n8k16``'s accumulator, one 4-register n8 tile after another; A comes from
registers (each warp its 16 rows, in mma.sync's A fragment layout) or from shared memory, B from
shared memory, both read through a 64-bit *matrix descriptor*: start address, and the byte
distances between 8x8 *core matrices* (8 rows of 16 contiguous bytes) along K (the leading
byte offset, LBO) and along M or N (the stride byte offset, SBO). The hardware reads each operand
once per warpgroup instead of once per warp, and needs no ``ldmatrix``.

Nothing about the tile program is assumed. A ``mma_tile`` becomes wgmma when its mma.sync plan
(``lower_matrix.matrix_plan``, already checked against the fragment layouts) has the shape
above — every call's accumulator tile sits at rows ``r_g + 16q`` of warp ``4g + q``, each warp
owning all N columns; warpgroups may hold the same rows (a layout whose waves replicate data:
each group then computes the tile itself), the warps of one group may not — and its B operand
(and, for the shared-memory form of A, its A operand) is an LDS read that may be deferred to the
dot (``can_defer``: nothing writes LDS in between) and whose byte offsets, known for every thread
at compile time, are one of the descriptor's canonical layouts (``fit_descriptor``): core matrices
without swizzle or the 128-byte swizzle, K-major or MN-major. The LDS storages chosen on sm_90a
(``LdsStorage.swizzle``, ``LdsStorage.cores``) produce exactly those.

The instructions are asynchronous: ``wgmma.fence`` before the first (the accumulators were last
written by ordinary instructions), ``commit_group`` after the last, then ``wait_group 0``, which
passes every accumulator through it so that nothing reads one before the products land. wgmma
reads LDS through the async proxy: ordinary stores to LDS are followed by
``fence.proxy.async.shared::cta`` (``NvptxTarget.lds_store_fence``); cp.async copies, completed and
published by the barrier, get none, as in Triton.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tiledsl.ir.core import Op
from tiledsl.ir.lds_storage import CORE_ROW_BYTES, CORE_ROWS, SWIZZLE_ALIGN, SWIZZLE_LINE, swizzle128
from tiledsl.llvm import irgen
from tiledsl.llvm.irgen import F16, F32, I16, I32, I64
from tiledsl.llvm.llvm_init import ir
from tiledsl.llvm.lower_core import KernelLowering, can_defer
from tiledsl.llvm.lower_layout import lower_ints
from tiledsl.llvm.lower_matrix import MatrixCall, plan_of, tile_layouts
from tiledsl.llvm.static_ints import static_table

WARPGROUP = 4           # warps
M = 64                  # rows of one instruction
K = 16                  # k of one instruction (16-bit operands)
FIELD_LIMIT = 1 << 18   # descriptor address fields: 14 bits of bytes >> 4


@dataclass(frozen=True)
class Descriptor:
    """An operand in shared memory: ``start[t]`` (bytes into the LDS arena, per thread: a
    warpgroup may read its own rows), ``lbo``/``sbo`` and whether it is MN-major (transposed)."""

    start: tuple[int, ...]
    lbo: int
    sbo: int
    mn_major: bool
    swizzle: int = 0        # layout type: 0 none, 1 the 128-byte swizzle


@dataclass(frozen=True)
class Step:
    """One wgmma: accumulator registers (n8 tiles in column order), the A operand (registers
    in mma.sync A order, or a descriptor) and B's descriptor."""

    d_regs: tuple[int, ...]
    a_regs: tuple[int, ...] | None
    a_desc: Descriptor | None
    b_desc: Descriptor
    n: int


def fit_descriptor(addr: np.ndarray) -> tuple[int, int, int, bool, int] | None:
    """(start, lbo, sbo, mn_major, swizzle) when ``addr[mn, k]`` (byte offsets of an MN x 16
    operand from a 1024-aligned base) is a canonical layout: without swizzle (8x8 core matrices,
    LBO between them along K and SBO along MN) or with the 128-byte swizzle (K-major: rows of 128
    bytes, SBO between groups of 8 rows, LBO unused; MN-major: 64-element lines, one per k, SBO
    between groups of 8 k, LBO between column blocks of 64); None otherwise."""
    mn_n, k_n = addr.shape
    if k_n != K or mn_n % CORE_ROWS or (addr < 0).any():
        return None
    mn = np.arange(mn_n)[:, None]
    k = np.arange(k_n)[None, :]
    start = int(addr[0, 0])
    lbo = int(addr[0, CORE_ROWS] - start)
    sbo = int(addr[CORE_ROWS, 0] - start) if mn_n > CORE_ROWS else 0
    for mn_major in (False, True):
        inner = (k % 8) * CORE_ROW_BYTES + (mn % 8) * 2 if mn_major else (mn % 8) * CORE_ROW_BYTES + (k % 8) * 2
        want = start + inner + (k // 8) * lbo + (mn // 8) * sbo
        if np.array_equal(want, addr):
            return (start, lbo, sbo, mn_major, 0) if _fields_ok(start, lbo, sbo) else None
    plain = swizzle128(addr)                       # the offsets before the swizzle
    start = int(plain[0, 0])
    if (start >> 7) & 7:
        return None                                # the pattern would not start at its row 0
    # K-major: row mn at start + (mn%8)*128 + (mn//8)*SBO, k contiguous inside the 128-byte row.
    sbo = int(plain[CORE_ROWS, 0] - start) if mn_n > CORE_ROWS else SWIZZLE_ALIGN
    if start % SWIZZLE_LINE + 2 * K <= SWIZZLE_LINE and \
            np.array_equal(plain, start + (mn % 8) * SWIZZLE_LINE + (mn // 8) * sbo + k * 2) and \
            _fields_ok(start, CORE_ROW_BYTES, sbo):
        return start, CORE_ROW_BYTES, sbo, False, 1
    # MN-major: k-line k at start + (k%8)*128 + (k//8)*SBO, mn contiguous in blocks of 64.
    sbo = int(plain[0, CORE_ROWS] - start)
    lbo = int(plain[64, 0] - start) if mn_n > 64 else 0
    if start % SWIZZLE_LINE == 0 and \
            np.array_equal(plain, start + (k % 8) * SWIZZLE_LINE + (k // 8) * sbo + (mn % 64) * 2 + (mn // 64) * lbo) \
            and _fields_ok(start, lbo, sbo):
        return start, lbo, sbo, True, 1
    return None


def _fields_ok(*values: int) -> bool:
    return all(v % 16 == 0 and 0 <= v < FIELD_LIMIT for v in values)


def _address_map(table: np.ndarray, coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """``addr[i, j]``: the byte offset every thread that reads tile element (i, j) reads it from
    (-1 where none does); None when two threads disagree."""
    out = np.full(shape, -1, dtype=np.int64)
    valid = coords[..., 0] >= 0
    i, j, a = coords[..., 0][valid], coords[..., 1][valid], table[valid]
    out[i, j] = a
    return out if np.array_equal(out[i, j], a) else None


def _lds_source(lw: KernelLowering, op: Op, operand: int) -> np.ndarray | None:
    """The ``[threads, regs]`` byte offsets of operand ``operand`` of ``op`` when it is an LDS read
    that wgmma may do in its place (deferred to the dot, every slot read, offsets static)."""
    src = op.operands[operand].owner
    if not isinstance(src, Op) or src.name != "lds_load" or not can_defer(src):
        return None
    mask = lw.get(src.operands[1])
    if not all(isinstance(m, ir.Constant) and m.constant for m in (mask if isinstance(mask, list) else [mask])):
        return None
    table = static_table(lw, src.operands[0])
    if table is None:
        return None
    return np.broadcast_to(np.asarray(table, dtype=np.int64), (lw.ctx.threads, src.result.type.n))


def plan(lw: KernelLowering, op: Op) -> list[Step] | None:
    """The wgmma steps of ``op`` (k-step outermost), or None where it does not qualify."""
    attrs = op.attrs
    if not lw.target.has_wgmma or attrs["dtype"] not in ("f16", "bf16"):
        return None
    ctx = lw.ctx
    instr = ctx.target.matrix_instr(attrs["instr"])
    if instr is None or instr.family != "mma_sync" or ctx.num_waves % WARPGROUP:
        return None
    calls: list[MatrixCall] = plan_of(lw, op)
    if any(c.a_from_b for c in calls):
        return None
    b_table = _lds_source(lw, op, 1)
    if b_table is None:
        return None
    la, lb, lc = tile_layouts(ctx, attrs)
    threads = ctx.threads
    m, n, k = attrs["m"], attrs["n"], attrs["k"]
    b_addr = _address_map(b_table, lb.index_map().reshape(threads, lb.regs, 2), (k, n))
    a_table = _lds_source(lw, op, 0)
    a_addr = None if a_table is None else _address_map(a_table, la.index_map().reshape(threads, la.regs, 2), (m, k))
    if b_addr is None:
        return None

    cm = lc.index_map()                                   # [waves, lanes, regs, 2]
    unit = instr.c_map()[0, 0]                            # lane 0, element 0 of the instruction tile
    groups: dict[tuple, list[tuple[int, MatrixCall]]] = {}
    k_of: dict[tuple[int, ...], int] = {}
    for call in calls:
        k0 = k_of.get(call.c_regs, 0)
        k_of[call.c_regs] = k0 + instr.k
        origin = cm[:, 0, call.c_regs[0], :] - unit        # [waves, 2]
        cols = set(origin[:, 1].tolist())
        if len(cols) != 1:
            return None                                   # waves split the columns
        groups.setdefault((k0, tuple(origin[:, 0].tolist())), []).append((cols.pop(), call))

    waves = ctx.num_waves
    wave_of = np.arange(threads) // ctx.target.wave_size
    steps = []
    for (k0, rows), members in groups.items():
        members.sort(key=lambda x: x[0])
        if [c for c, _ in members] != list(range(0, n, instr.n)) or n > 256:
            return None
        rows_arr = np.asarray(rows)
        first = rows_arr[::WARPGROUP]
        if not (rows_arr == np.repeat(first, WARPGROUP) + 16 * np.tile(np.arange(WARPGROUP), waves // WARPGROUP)).all():
            return None
        a_regs = {c.a_regs for _, c in members}
        if len(a_regs) != 1:
            return None
        b_fit = fit_descriptor(b_addr[k0:k0 + K, :].T)
        if b_fit is None:
            return None
        b_desc = Descriptor((b_fit[0],) * threads, *b_fit[1:])
        a_desc = None
        if a_addr is not None:
            fits = [fit_descriptor(a_addr[r:r + M, k0:k0 + K]) if r + M <= m else None for r in first.tolist()]
            if all(f is not None for f in fits) and len({f[1:] for f in fits}) == 1:   # type: ignore[index]
                starts = [fits[w // WARPGROUP][0] for w in range(waves)]       # type: ignore[index]
                a_desc = Descriptor(tuple(starts[w] for w in wave_of), *fits[0][1:])  # type: ignore[index]
        d_regs = tuple(r for _, c in members for r in c.c_regs)
        steps.append(Step(d_regs, None if a_desc else a_regs.pop(), a_desc, b_desc, n))
    return steps


# ---------------------------------------------------------------- emission

def _descriptor(lw: KernelLowering, arena: ir.Value, d: Descriptor) -> ir.Value:
    b = lw.b
    if len(set(d.start)) == 1:
        start = b.add(arena, ir.Constant(I32, d.start[0]))
    else:
        (rel,) = lower_ints(lw, np.asarray(d.start)[:, None], np.ones((len(d.start), 1), bool), "wgmma")
        start = b.add(arena, rel)
    addr = b.zext(b.and_(b.lshr(start, ir.Constant(I32, 4)), ir.Constant(I32, 0x3FFF)), I64)
    return b.or_(addr, ir.Constant(I64, ((d.lbo >> 4) << 16) | ((d.sbo >> 4) << 32) | (d.swizzle << 62)))


def _a_words(b: ir.IRBuilder, a: Any, regs: tuple[int, ...], dtype: str) -> list[ir.Value]:
    """The A fragment as 32-bit words, element 2j in the low half of word j."""
    elem = F16 if dtype == "f16" else I16
    return [b.bitcast(irgen.pack(b, [a[regs[i]], a[regs[i + 1]]], elem), I32) for i in range(0, len(regs), 2)]


def emit(lw: KernelLowering, op: Op, steps: list[Step], a: Any, c: list[ir.Value]) -> list[ir.Value]:
    b = lw.b
    dtype = op.attrs["dtype"]
    acc = list(c)
    arena = b.ptrtoint(lw.lds_arena(), I32)
    one = ir.Constant(I32, 1)
    # Every operand is in its registers before the fence: a register the warpgroup writes
    # between the fence and a wgmma that reads it makes ptxas insert another fence (C7519).
    operands = []
    for st in steps:
        if st.a_desc is None:
            assert st.a_regs is not None
            a_ops, a_cons = _a_words(b, a, st.a_regs, dtype), "r"
        else:
            a_ops, a_cons = [_descriptor(lw, arena, st.a_desc)], "l"
        operands.append((a_ops, a_cons, _descriptor(lw, arena, st.b_desc)))
    irgen.inline_asm(b, "wgmma.fence.sync.aligned;", "", ir.VoidType(), [])
    touched: dict[int, None] = {}
    for st, (a_ops, a_cons, b_desc) in zip(steps, operands):
        nd = len(st.d_regs)
        pos = 2 * nd                     # outputs, then their tied inputs
        a_text = ", ".join(f"${pos + i}" for i in range(len(a_ops)))
        if st.a_desc is None:
            a_text = "{" + a_text + "}"
        pos += len(a_ops)
        trans = (f"{int(st.a_desc.mn_major)}, " if st.a_desc is not None else "") + str(int(st.b_desc.mn_major))
        text = ("{\n.reg .pred p;\n"
                f"setp.ne.b32 p, ${pos + 1}, 0;\n"
                f"wgmma.mma_async.sync.aligned.m64n{st.n}k16.f32.{dtype}.{dtype} "
                f"{{{', '.join(f'${i}' for i in range(nd))}}}, {a_text}, ${pos}, p, 1, 1, {trans};\n}}")
        cons = ",".join(["=f"] * nd + [str(i) for i in range(nd)] + [a_cons] * len(a_ops) + ["l", "r"])
        out = irgen.inline_asm(b, text, cons, ir.LiteralStructType([F32] * nd), [acc[r] for r in st.d_regs] + a_ops + [b_desc, one])
        for i, r in enumerate(st.d_regs):
            acc[r] = b.extract_value(out, i)
            touched.setdefault(r)
    irgen.inline_asm(b, "wgmma.commit_group.sync.aligned;", "", ir.VoidType(), [])
    regs = list(touched)
    nd = len(regs)
    cons = ",".join(["=f"] * nd + [str(i) for i in range(nd)])
    out = irgen.inline_asm(b, "wgmma.wait_group.sync.aligned 0;", cons, ir.LiteralStructType([F32] * nd), [acc[r] for r in regs])
    for i, r in enumerate(regs):
        acc[r] = b.extract_value(out, i)
    lw.stats["wgmma"] += len(steps)
    return acc
