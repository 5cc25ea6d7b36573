"""What an interpreter run found: the errors its checks raised, with locations."""

from __future__ import annotations

from dataclasses import dataclass, field

from tiledsl.diagnostics import Loc


@dataclass
class InterpError:
    """One finding. ``kind`` is one of: ``out-of-bounds``, ``uninitialized-lds``,
    ``output-hole``, ``output-double-write``, ``output-mixed-write`` (an element both stored and
    updated atomically), ``lds-race``, ``uninitialized-register``,
    ``bad-vector`` (a vector LDS access whose registers are not consecutive aligned bytes: a
    compiler bug)."""

    kind: str
    loc: Loc | None
    message: str
    block: tuple[int, ...] | None = None
    wave: int | None = None
    lane: int | None = None

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        who = []
        if self.block is not None:
            who.append(f"block ({', '.join(map(str, self.block))})")
        if self.wave is not None:
            who.append(f"wave {self.wave}")
        if self.lane is not None:
            who.append(f"lane {self.lane}")
        tail = f" [{', '.join(who)}]" if who else ""
        return f"{where}error: {self.kind}: {self.message}{tail}"


@dataclass
class Report:
    """The result of ``program.interpret``: ``ok`` is False when a check failed."""

    errors: list[InterpError] = field(default_factory=list)
    level: str = "block"
    blocks: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, err: InterpError, limit_per_site: int = 4) -> None:
        same = sum(1 for e in self.errors if e.kind == err.kind and e.loc == err.loc)
        if same < limit_per_site:
            self.errors.append(err)

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.blocks} blocks interpreted at {self.level} level, no check failed"
        return "\n".join(str(e) for e in self.errors)
