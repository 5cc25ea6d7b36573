"""Resource limits every target shares, checked while sema builds the tile IR.

A tile, a block or a pipeline too large for *any* target is refused here, at its source line,
before a pass or an interpreter spends minutes and gigabytes on it. The limits that depend on
the target (threads of its waves, its LDS, its register file) are checked again, tighter, when
the thread level starts (``tiledsl.thread.limits``).
"""

from __future__ import annotations

from collections.abc import Mapping

from tiledsl.diagnostics import Loc, TdslError
from tiledsl.ir.core import Op
from tiledsl.ir.types import DTYPE_BYTES, LdsType, TileType, is_static_shape, num_elements
from tiledsl.targets import TARGETS

#: The most elements one tile may have. Triton's limit (``TRITON_MAX_TENSOR_NUMEL``): beyond it a
#: tile cannot live in any block's registers or LDS, and the interpreters would hold it once per
#: block.
MAX_TILE_ELEMENTS = 1 << 20

#: The most buffers a pipelined loop may have. A copy issued S-1 iterations ahead hides S-1
#: iterations of copy latency, and a handful already hides it all; every stage costs one more
#: buffer of each pipelined tile and one more copy of the unrolled loop body.
MAX_PIPELINE_STAGES = 16

MAX_BLOCK_THREADS = max(t.max_threads_per_block for t in TARGETS.values())
MIN_WAVE_SIZE = min(t.wave_size for t in TARGETS.values())
MAX_LDS_BYTES = max(t.lds_bytes for t in TARGETS.values())


def _largest_lds_target() -> str:
    return next(t.name for t in TARGETS.values() if t.lds_bytes == MAX_LDS_BYTES)


def check_block_size(count: int, unit: str, loc: Loc | None) -> None:
    """A block the size of ``block COUNT waves|threads`` fits some target."""
    if unit == "waves":
        if count * MIN_WAVE_SIZE > MAX_BLOCK_THREADS:
            raise TdslError(loc, f"a block of {count} waves has at least {count * MIN_WAVE_SIZE} threads "
                                 f"({MIN_WAVE_SIZE}-lane waves), more than any target allows "
                                 f"({MAX_BLOCK_THREADS} threads)",
                            [(f"use at most {MAX_BLOCK_THREADS // MIN_WAVE_SIZE} waves of 32 lanes "
                             f"({MAX_BLOCK_THREADS // 64} of 64 lanes)")])
        return
    if count > MAX_BLOCK_THREADS:
        raise TdslError(loc, f"a block of {count} threads is more than any target allows ({MAX_BLOCK_THREADS})")
    if count % MIN_WAVE_SIZE:
        raise TdslError(loc, f"a block of {count} threads is not a whole number of waves on any target",
                        [(f"use a multiple of {MIN_WAVE_SIZE} threads (of 64 for the 64-lane waves of "
                         f"gfx90a/gfx942), or give the block in waves")])


def check_result_sizes(op: Op, params: Mapping[str, int | float]) -> None:
    """Each tile ``op`` makes fits the limits of every target: at most ``MAX_TILE_ELEMENTS``
    elements in registers, at most the largest LDS in LDS."""
    for r in op.results:
        t = r.type
        if not isinstance(t, (TileType, LdsType)) or not t.shape or not is_static_shape(t.shape):
            continue
        n = num_elements(t.shape)
        if isinstance(t, LdsType):
            nbytes = n * DTYPE_BYTES[t.dtype]
            if nbytes > MAX_LDS_BYTES:
                raise TdslError(op.loc, f"LDS tile '{r.hint or t}' takes {nbytes} bytes, more than the LDS of any "
                                        f"target ({MAX_LDS_BYTES} bytes on {_largest_lds_target()})",
                                smaller_tile_note(t.shape, params))
        elif n > MAX_TILE_ELEMENTS:
            raise TdslError(op.loc, f"this {t} tile has {n} elements; a tile may have at most "
                                    f"{MAX_TILE_ELEMENTS} (2^20)", smaller_tile_note(t.shape, params))


def smaller_tile_note(shape: tuple, params: Mapping[str, int | float], more: str = "") -> list[str]:
    """A note naming the params whose value is the largest dim of ``shape`` (the likely knob)."""
    big = max(shape)
    named = [f"{name} (now {v})" for name, v in params.items() if isinstance(v, int) and v == big and v > 1]
    return [(f"use a smaller tile: lower {', '.join(named)}" if named else "use a smaller tile") + more]


def check_stages(stages: int, loc: Loc | None) -> None:
    """A ``pipeline S`` count is at most ``MAX_PIPELINE_STAGES``."""
    if stages > MAX_PIPELINE_STAGES:
        raise TdslError(loc, f"{stages} pipeline stages is more than the {MAX_PIPELINE_STAGES} this compiler "
                             f"allows",
                        [("2 to 4 stages hide the copy latency; each stage costs one more LDS buffer of each "
                         "pipelined tile and one more copy of the loop body")])
