"""LDS reads of 16-bit tiles as ``ldmatrix`` (NVPTX sm_75+), found from the read's offsets.

``ldmatrix.x{1,2,4}[.trans]`` loads one to four 8x8 tiles of 16-bit elements whose eight rows
are 16 contiguous bytes each, anywhere in shared memory: lane ``8q + i`` gives the address of row
``i`` of tile ``q``, and every lane gets, per tile, one 32-bit register of two elements — without
``.trans`` row ``lane/4``, elements ``2·(lane%4)`` and ``+1``; with ``.trans`` column ``lane/4``,
rows ``2·(lane%4)`` and ``+1`` (the tile read transposed). One instruction replaces up to eight
2-byte or four 4-byte ``ld.shared`` per lane, and the transposed form is what a B operand read
across rows (P·V's V) needs.

Nothing about mma fragments is assumed: a read qualifies when its byte offsets, known for every
thread at compile time (``static_ints``), have exactly that shape. Register pairs ``(2j, 2j+1)``
are matched one by one against both forms, per warp; runs of up to four pairs of one form, taken
in the order the registers are first used, become one instruction: a group of pairs used together
is loaded together and its registers are not held across unrelated instructions (an x4 that loaded
two k-steps of one n-tile of P·V's V would keep half of its registers live across a whole k-step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELEM_BYTES = 2
ROW_BYTES = 16


@dataclass(frozen=True)
class LdmatrixGroup:
    """One instruction: register pairs ``pairs`` (tile q lands in registers ``2·pairs[q]`` and
    ``+1``); ``addresses[t]``: the byte offset thread ``t`` passes (the row it supplies)."""

    pairs: tuple[int, ...]
    trans: bool
    addresses: np.ndarray

    @property
    def count(self) -> int:
        return len(self.pairs)

    @property
    def registers(self) -> list[int]:
        return [r for p in self.pairs for r in (2 * p, 2 * p + 1)]


def _pair_rows(off: np.ndarray, j: int) -> tuple[bool, np.ndarray] | None:
    """(trans, rows [warps, 8]) when registers 2j, 2j+1 of ``off`` ``[warps, 32, regs]`` are one
    8x8 tile of one form in every warp; None otherwise."""
    lanes = np.arange(32)
    a, b = off[:, :, 2 * j], off[:, :, 2 * j + 1]
    # Without .trans: lane l holds row l//4, columns 2(l%4), 2(l%4)+1.
    rows = a[:, 0:32:4]
    want = rows[:, lanes // 4] + ELEM_BYTES * 2 * (lanes % 4)
    if (b == a + ELEM_BYTES).all() and (a == want).all():
        return False, rows
    # With .trans: lane l holds rows 2(l%4), 2(l%4)+1 of column l//4; lane k//2 (column 0)
    # holds row k in register 2j + k%2.
    k = np.arange(8)
    rows = off[:, k // 2, 2 * j + k % 2]
    for e, reg in ((0, a), (1, b)):
        if not (reg == rows[:, 2 * (lanes % 4) + e] + ELEM_BYTES * (lanes // 4)).all():
            return None
    return True, rows


def plan(offsets: np.ndarray, wave_size: int, order: list[int] | None = None) -> list[LdmatrixGroup] | None:
    """The ldmatrix instructions that read ``offsets`` ``[threads, regs]`` (bytes), or None when
    some register pair is not a 16-byte-row tile of either form. ``order``: the register pairs
    in the order of their first use (a permutation of ``range(regs // 2)``; default: by index)."""
    threads, n = offsets.shape
    if wave_size != 32 or n % 2 or threads % 32:
        return None
    order = list(range(n // 2)) if order is None else list(order)
    if sorted(order) != list(range(n // 2)):
        raise ValueError(f"order {order} is not a permutation of the {n // 2} register pairs")
    off = offsets.reshape(threads // 32, 32, n)
    pairs = []
    for j in range(n // 2):
        found = _pair_rows(off, j)
        if found is None or (found[1] % ROW_BYTES).any():
            return None
        pairs.append(found)
    groups = []
    j = 0
    lanes = np.arange(32)
    while j < len(order):
        trans = pairs[order[j]][0]
        count = 1
        while count < 4 and j + count < len(order) and pairs[order[j + count]][0] == trans:
            count += 1
        if count == 3:
            count = 2
        members = tuple(order[j:j + count])
        rows = np.stack([pairs[p][1] for p in members], axis=1)                 # [warps, count, 8]
        addr = rows[:, (lanes // 8) % count, lanes % 8]                          # [warps, 32]
        groups.append(LdmatrixGroup(members, trans, addr.reshape(threads)))
        j += count
    return groups


__all__ = ["LdmatrixGroup", "plan"]
