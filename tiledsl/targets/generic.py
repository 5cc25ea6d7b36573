"""The generic target: a wave32 machine with shuffles and no matrix instruction.

It is the target every program must compile for: mma layouts fall back to the FMA accumulator
layout (``tiledsl.targets.matrix.fma_fallback``).
"""

from __future__ import annotations

from tiledsl.targets.target import Target

# Registers: no hardware to ask, so the smallest register file of the real targets (NVIDIA's 255):
# a tile the generic target holds fits every real one's registers at the same thread count.
GENERIC = Target(name="generic", vendor="generic", wave_size=32, lds_bytes=65536,
                 matrix_instrs=(), cross_lane=frozenset({"shuffle", "shuffle_xor"}), has_async_copy=False,
                 max_registers_per_thread=255)
