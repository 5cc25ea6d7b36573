"""Layout specs: the thread tiles written in source, before they meet a shape and a target.

A spec says *how* a tile is spread over waves, lanes and registers; ``bind`` (in
``tiledsl.layout.bind``) turns it into a concrete ``Layout`` for one tile shape, wave count and
target.  Specs are frozen and hashable so that IR types can hold them, and each prints as one
canonical text that ``parse_layout_spec`` reads back (print -> parse -> print is identical).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class LayoutError(ValueError):
    """A layout spec that is malformed or cannot cover the tile it is bound to; worded for the user."""


class LayoutSyntaxError(LayoutError):
    """Layout spec text that does not parse."""


def _ints_text(values: tuple[int, ...]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def _as_tuple(spec: object, name: str) -> None:
    """Store a list-valued field as a tuple, so that specs written with lists still hash."""
    value = getattr(spec, name)
    if isinstance(value, list):
        object.__setattr__(spec, name, tuple(value))


def _check_positive(what: str, values: tuple[int, ...]) -> None:
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise LayoutError(f"{what} must be a non-empty list of positive integers, got {list(values)}")


class LayoutSpec:
    """Base of all layout specs.  ``kind`` is the keyword that starts the spec's text."""

    kind: ClassVar[str]


@dataclass(frozen=True)
class BlockedSpec(LayoutSpec):
    """Each thread holds ``size_per_thread`` contiguous elements; lanes then waves tile the rest.

    ``order`` lists the dims from fastest to slowest varying (``[1,0]``: row-major, lanes run along
    a row first).  ``waves`` gives the number of waves along each dim.  Omitted fields are chosen
    when binding from the tile shape and dtype (see ``tiledsl.layout.blocked``).
    """

    kind: ClassVar[str] = "blocked"
    size_per_thread: tuple[int, ...] | None = None
    order: tuple[int, ...] | None = None
    waves: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("size_per_thread", "order", "waves"):
            _as_tuple(self, name)
        ranks = {}
        if self.size_per_thread is not None:
            _check_positive("blocked spt", self.size_per_thread)
            ranks["spt"] = len(self.size_per_thread)
        if self.order is not None:
            if sorted(self.order) != list(range(len(self.order))):
                raise LayoutError(f"blocked order must be a permutation of 0..{len(self.order) - 1}, "
                                  f"got {list(self.order)}")
            ranks["order"] = len(self.order)
        if self.waves is not None:
            _check_positive("blocked waves", self.waves)
            ranks["waves"] = len(self.waves)
        if len(set(ranks.values())) > 1:
            detail = ", ".join(f"{name} has {n}" for name, n in ranks.items())
            raise LayoutError(f"blocked fields disagree on the rank: {detail}")

    @property
    def rank(self) -> int | None:
        """The tile rank the spec is written for, or None when no field fixes it."""
        for values in (self.size_per_thread, self.order, self.waves):
            if values is not None:
                return len(values)
        return None

    def __str__(self) -> str:
        fields = [(name, values) for name, values in
                  (("spt", self.size_per_thread), ("order", self.order), ("waves", self.waves))
                  if values is not None]
        if not fields:
            return "blocked"
        return "blocked(" + ", ".join(f"{name}={_ints_text(v)}" for name, v in fields) + ")"


@dataclass(frozen=True)
class MmaSpec(LayoutSpec):
    """The accumulator layout of the target's matrix instruction, waves tiling M and N.

    ``waves[0]`` waves split the rows (M) and ``waves[1]`` the columns (N); ``instr`` names the
    instruction (default: the target's preferred one).  ``swap=True`` means the hardware computes
    the transpose (A and B exchanged): tile element (i, j) sits where the instruction keeps (j, i).
    ``swap=None`` (not written) is the target's choice, made by layout assignment
    (``Target.mma_swap``); until then it binds as ``False``.
    """

    kind: ClassVar[str] = "mma"
    waves: tuple[int, int]
    instr: str | None = None
    swap: bool | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "waves")
        _check_positive("mma waves", self.waves)
        if len(self.waves) != 2:
            raise LayoutError(f"mma waves must have 2 entries (M, N), got {list(self.waves)}")
        if self.swap is not None and not isinstance(self.swap, bool):
            raise LayoutError(f"mma swap must be true or false, got {self.swap!r}")

    def __str__(self) -> str:
        text = f"mma(waves={_ints_text(self.waves)}"
        if self.instr is not None:
            text += f", instr={self.instr}"
        if self.swap is not None:
            text += f", swap={'true' if self.swap else 'false'}"
        return text + ")"


@dataclass(frozen=True)
class DotOperandSpec(LayoutSpec):
    """The A (``operand=0``) or B (``operand=1``) operand layout that feeds the ``parent`` accumulator.

    A (M x K) is split over waves along M like the parent, B (K x N) along N; each wave holds all of K.
    """

    kind: ClassVar[str] = "dot_operand"
    parent: MmaSpec
    operand: int

    def __post_init__(self) -> None:
        if self.operand not in (0, 1) or isinstance(self.operand, bool):
            raise LayoutError(f"dot_operand operand must be 0 (A) or 1 (B), got {self.operand!r}")
        if not isinstance(self.parent, MmaSpec):
            raise LayoutError(f"dot_operand needs an mma parent, got {self.parent}")

    def __str__(self) -> str:
        return f"dot_operand({self.operand}, {self.parent})"


@dataclass(frozen=True)
class SliceSpec(LayoutSpec):
    """The layout of a reduction result: ``parent`` with dim ``dim`` removed.

    A thread holds element x of the slice when it holds, in the parent, some element that projects
    onto x.  ``size`` is the parent's extent along the removed dim; it is only needed where the
    parent's lane split depends on it (blocked parents).  For mma and dot-operand parents the
    pattern repeats along every dim, so the smallest extent the parent covers gives the same slice.
    """

    kind: ClassVar[str] = "slice"
    parent: LayoutSpec
    dim: int
    size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or isinstance(self.dim, bool) or self.dim < 0:
            raise LayoutError(f"slice dim must be a non-negative integer, got {self.dim!r}")
        if self.size is not None:
            _check_positive("slice size", (self.size,))
        if not isinstance(self.parent, LayoutSpec):
            raise LayoutError(f"slice parent must be a layout spec, got {self.parent!r}")

    def __str__(self) -> str:
        size = "" if self.size is None else f", size={self.size}"
        return f"slice({self.dim}, {self.parent}{size})"


@dataclass(frozen=True)
class ExpandSpec(LayoutSpec):
    """The layout of ``x[:, _]`` as a tile of its own: ``parent`` with a size-1 dim inserted at ``dim``.

    Every thread holds what it holds in ``parent``, at coordinate 0 along the new dim; the inverse
    of a ``slice`` along that dim.  A broadcast along ``dim`` then needs no data from other threads
    when the broadcast tile's layout projects onto ``parent``.
    """

    kind: ClassVar[str] = "expand"
    dim: int
    parent: LayoutSpec

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or isinstance(self.dim, bool) or self.dim < 0:
            raise LayoutError(f"expand dim must be a non-negative integer, got {self.dim!r}")
        if not isinstance(self.parent, LayoutSpec):
            raise LayoutError(f"expand parent must be a layout spec, got {self.parent!r}")

    def __str__(self) -> str:
        return f"expand({self.dim}, {self.parent})"


@dataclass(frozen=True)
class ReplicatedSpec(LayoutSpec):
    """Every thread holds the whole tile (small vectors, scalars)."""

    kind: ClassVar[str] = "replicated"

    def __str__(self) -> str:
        return "replicated"
