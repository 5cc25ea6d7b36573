"""What the thread-level passes share: the target, the block's waves, bound layouts,
and the analysis of how one layout converts to another."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tiledsl.ir import ops
from tiledsl.layout import BlockedSpec, Layout, LayoutSpec, bind, parse_layout_spec
from tiledsl.targets import Target, get_target


@dataclass
class ThreadContext:
    target: Target
    num_waves: int
    _cache: dict[tuple, Layout] = field(default_factory=dict)

    @classmethod
    def for_kernel(cls, kernel: ops.KernelOp, target: str | Target) -> ThreadContext:
        t = get_target(target) if isinstance(target, str) else target
        size, unit = kernel.attrs["block"], kernel.attrs["block_unit"]
        if unit == "waves":
            waves = size
        else:
            if size % t.wave_size:
                raise ValueError(f"a block of {size} threads is not a whole number of {t.wave_size}-lane waves "
                                 f"on {t.name}")
            waves = size // t.wave_size
        return cls(t, waves)

    @property
    def threads(self) -> int:
        return self.num_waves * self.target.wave_size

    def bind(self, spec: LayoutSpec | str, shape: tuple[int, ...], dtype: str) -> Layout:
        if isinstance(spec, str):
            spec = parse_layout_spec(spec)
        key = (spec, tuple(shape), dtype)
        if key not in self._cache:
            self._cache[key] = bind(spec, tuple(shape), self.num_waves, self.target, dtype)
        return self._cache[key]

    def copy_layout(self, shape: tuple[int, ...], dtype: str) -> Layout:
        """The register layout of a cooperative ``copy`` into LDS: the default blocked layout,
        whose 16-byte vectors run along the global tensor's contiguous last dim."""
        return self.bind(BlockedSpec(), tuple(shape), dtype)


def register_mapping(src: Layout, dst: Layout, drop_axis: int | None = None,
                     broadcast: list[int] | tuple[int, ...] = ()) -> list[int] | None:
    """Source register index for each destination register when every thread already
    holds what it needs, with the same indices in every thread; else None.

    ``drop_axis``: the destination has one more dim than the source (a broadcast of
    ``x[:, _]``); that coordinate is ignored. ``broadcast``: dims along which the source has
    extent 1 and the destination more (a broadcast); the destination's element (i, j) reads
    the source's (0, j).
    """
    s, d = src.index_map(), dst.index_map()
    if s.shape[:2] != d.shape[:2]:
        return None
    dcoords = d if drop_axis is None else np.delete(d, drop_axis, axis=-1)
    if broadcast:
        dcoords = dcoords.copy()
        dcoords[..., list(broadcast)] = np.where(dcoords[..., list(broadcast)] >= 0, 0, -1)
    if dcoords.shape[-1] != s.shape[-1]:
        return None
    # Match on linear element ids: src[t, r] == dst[t, r'] within each thread.
    shape = src.shape
    strides = np.cumprod((1, *shape[:0:-1]))[::-1] if shape else np.array([], dtype=np.int64)
    s_lin = np.where(s[..., 0] >= 0, (s * strides).sum(-1), -1) if shape else np.zeros(s.shape[:3], np.int64)
    d_valid = dcoords[..., 0] >= 0 if shape else np.ones(d.shape[:3], bool)
    d_lin = np.where(d_valid, (dcoords * strides).sum(-1), -2) if shape else np.zeros(d.shape[:3], np.int64)
    s_flat = s_lin.reshape(-1, s_lin.shape[-1])
    d_flat = d_lin.reshape(-1, d_lin.shape[-1])
    # For each thread, position of each dst element among the thread's src registers.
    eq = d_flat[:, :, None] == s_flat[:, None, :]
    found = eq.any(-1)
    idx = eq.argmax(-1)
    valid = d_flat >= 0
    if not (found | ~valid).all():
        return None
    ref = None
    for t in range(idx.shape[0]):
        row = np.where(valid[t], idx[t], -1)
        if ref is None:
            ref = row.copy()
            continue
        both = (row >= 0) & (ref >= 0)
        if (row[both] != ref[both]).any():
            return None
        ref = np.where(ref >= 0, ref, row)
    assert ref is not None
    return [int(i) if i >= 0 else 0 for i in ref]


def axis_mapping(src: Layout, dst: Layout, axis: int) -> list[int] | None:
    """For each register of ``dst``, a register of the 1-D ``src`` that holds the element at the
    ``dst`` element's coordinate along ``axis``, the same register in every thread (a gather's
    index tile read for each register of its data tile); None where some thread lacks it."""
    s, d = src.index_map(), dst.index_map()
    if s.shape[:2] != d.shape[:2] or s.shape[-1] != 1:
        return None
    threads = s.shape[0] * s.shape[1]
    s_at = s[..., 0].reshape(threads, -1)
    d_at = d[..., axis].reshape(threads, -1)
    holds = (d_at[:, :, None] == s_at[:, None, :]) & (s_at[:, None, :] >= 0)    # [thread, dst reg, src reg]
    out = []
    for r in range(d_at.shape[1]):
        valid = d_at[:, r] >= 0
        common = holds[valid, r, :].all(axis=0)
        if not common.any():
            if valid.any():
                return None
            out.append(0)
            continue
        out.append(int(np.argmax(common)))
    return out
