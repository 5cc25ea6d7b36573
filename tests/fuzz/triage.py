"""Which failures are known compiler bugs (issue 11), and a signature to group the others.

Each KnownBug names the issue item it is, the branch fixing it, and a narrow matcher: the
exception (type and text, where the stages report it) *and* the construct of the program
that causes it. A failure matching none is NEW. Delete an entry when its fix merges: the
generated tests then fail on any program that still shows it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .stages import Outcome


@dataclass(frozen=True)
class KnownBug:
    key: str
    branch: str                                   # who fixes it (issue 11's work split)
    item: str                                     # the issue item, in its words
    matches: Callable[[Outcome, set[str]], bool]  # (outcome, the program's features)


def _crash(exc_type: str, text: str, frame: str = "") -> Callable[[Outcome], bool]:
    pattern = re.compile(text)

    def match(o: Outcome) -> bool:
        return (o.kind == "crash" and o.detail.startswith(f"{exc_type}: ") and pattern.search(o.detail) is not None
                and frame in o.detail)
    return match


_NPOW2 = _crash("NotImplementedError", r"do not form an xor group; cannot reduce across lanes")
_WIDTH1 = _crash("TypeError", r"operand of \w+ is \('expanded', ")
_NO_LAYOUT_LOAD = _crash("RuntimeError", r"internal: value <Value [^>]*> has no layout", "op_load")
_NO_LAYOUT_STORE = _crash("RuntimeError", r"internal: value <Value [^>]*> has no layout", "op_store")
_NO_LAYOUT_LDS_READ = _crash("RuntimeError", r"internal: value <Value [^>]*> has no layout", "op_lds_read")
_NEEDS_OTHER_THREADS = _crash("RuntimeError", r"internal: .*broadcast needs data from other threads")
_GROUPS_DIFFER = _crash("NotImplementedError", r"this layout's reduction groups differ between threads")
_NO_LAYOUT_REDUCE = _crash("RuntimeError", r"internal: value <Value [^>]*> has no layout", "op_reduce")
_BIND_NONE = _crash("LayoutError", r"bind is not implemented for NoneType")
_ROW_BROADCAST = _crash("NotImplementedError", r"broadcast of a tile that was not made with x\[:, _\]")
_USED_BEFORE_DEFINED = _crash("VerifyError", r"'lds_write' .* is used before it is defined")

KNOWN_BUGS = [
    # ---- found by the generator (issue 11's tests), not yet assigned
    KnownBug("scalar-store", "NEW", "storing one element of a tensor (Y[i, j] <- x, x a scalar)",
             lambda o, f: _NO_LAYOUT_STORE(o) and "scalar_store" in f),
    KnownBug("reduce-layout-from-user", "NEW",
             "a reduction's result takes the layout its user asks for, not the slice of its operand's: "
             "x + rowsum(y)[:, _] with y narrower than x, or rowsum(x) + colsum(y), give wrong rows at the "
             "thread level (or 'reduction groups differ between threads')",
             lambda o, f: (o.kind == "mismatch" or _GROUPS_DIFFER(o)) and bool({"reduce_bcast_width", "reduce_mix"} & f)),
    KnownBug("dot-fma-fallback", "NEW",
             "a dot on the FMA fallback (generic; or no matrix instruction fits: f32 operands, small tiles) "
             "whose operand is a register value to stage through LDS: the staging reads have no layout",
             lambda o, f: _NO_LAYOUT_LDS_READ(o) and bool({"dot_staged", "dot_transposed_reg"} & f)),
    # ---- issue 11's list
    KnownBug("min-as-sum", "sem", "min(x, axis=k) is lowered as a sum",
             lambda o, f: o.kind == "oracle" and "min_reduce" in f and "matches min-as-sum" in o.detail),
    KnownBug("reduce-npow2", "thr", "a row reduction whose width is not a power of two",
             lambda o, f: _NPOW2(o) and "reduce_npow2" in f),
    KnownBug("width1", "thr", "a tile of width 1",
             lambda o, f: _WIDTH1(o) and bool({"width1", "reduce_width1"} & f)),
    KnownBug("scalar-load", "thr", "loading one element of a tensor (lo = Off[g])",
             lambda o, f: _NO_LAYOUT_LOAD(o) and "scalar_load" in f),
    KnownBug("full-reduce", "thr", "a full reduction to a scalar",
             lambda o, f: (_BIND_NONE(o) or _NO_LAYOUT_REDUCE(o)) and "full_reduce" in f),
    KnownBug("row-broadcast", "thr", "broadcasting a one-row tile",
             lambda o, f: _ROW_BROADCAST(o) and "row_broadcast" in f),
    KnownBug("width1-broadcast", "thr", "a tile of width 1 / broadcasting a one-row tile",
             lambda o, f: _NEEDS_OTHER_THREADS(o) and bool({"width1", "full_reduce", "row_broadcast"} & f)),
    KnownBug("huge-block", "lim", "block 17 waves on gfx942 (over 1024 threads) hangs in layout defaults",
             lambda o, f: o.kind == "timeout" and "huge_block" in f),
    KnownBug("if-in-for-gfx942", "mma", "on gfx942 only, an if inside a for that updates loop-carried tiles",
             lambda o, f: _USED_BEFORE_DEFINED(o) and o.target == "gfx942" and "if_in_for" in f),
]


def known_bug(outcome: Outcome, features: set[str]) -> KnownBug | None:
    """The known bug a failed outcome is, if any."""
    return next((b for b in KNOWN_BUGS if b.matches(outcome, features)), None)


def signature(outcome: Outcome) -> str:
    """The failure without what varies from program to program (locations, values, sizes)."""
    stage = outcome.stage.split(":")[0]
    text = re.sub(r"<string>:\d+:\d+: ?", "", outcome.detail)
    text = re.sub(r"<Value [^>]*>", "<Value>", text)
    text = re.sub(r"'[A-Za-z_][A-Za-z0-9_]*'", "'_'", text)
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text)
    text = re.sub(r"np\.float\w*\((.*?)\)", r"\1", text)
    return f"{stage}/{outcome.kind}: {text[:200]}"


# The features behind the known bugs: a generator that avoids them draws from the part of the
# language the compiler is expected to handle today. Shrink this set as the fixes merge.
AVOID_KNOWN = frozenset({"min_reduce", "reduce_npow2", "reduce_width1", "full_reduce", "width1", "scalar_load",
                         "row_broadcast", "small_dot", "if_in_for",
                         "scalar_store", "reduce_bcast_width", "reduce_mix", "dot_staged",
                         "dot_transposed_reg"})
