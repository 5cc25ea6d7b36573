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
    """An exception of ``exc_type`` whose text matches ``text`` (raised in ``frame``), whether or
    not the pipeline runner wrapped it into an internal compiler error."""
    pattern = re.compile(text)

    def match(o: Outcome) -> bool:
        detail = re.sub(r"^internal compiler error in [\w-]+: ", "", o.detail)
        return (o.kind == "crash" and detail.startswith(f"{exc_type}: ") and pattern.search(detail) is not None
                and frame in detail)
    return match


# Every bug of issue 11's list, and every one the generator found before (scalar stores,
# reductions taking their user's layout, the FMA fallback's staging), is fixed on main: a
# failure they would explain now fails the tests. What remains is below.
KNOWN_BUGS = [
    KnownBug("llvm-compile-time", "NEW",
             "LLVM takes minutes to compile a kernel whose one or two waves hold big tiles (e.g. a 48x48 "
             "dot and 32x48 loads in one wave32 wave on gfx1100: 130 s; the same kernel takes 5 s on "
             "sm_90): over the stage budget (tests/fuzz/repros/llvm-compile-time.tdsl)",
             lambda o, f: o.kind == "timeout" and o.stage.startswith("compile:")),
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
# language the compiler is expected to handle today (none: every construct is).
AVOID_KNOWN: frozenset[str] = frozenset()
