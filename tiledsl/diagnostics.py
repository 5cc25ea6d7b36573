"""Source locations and user-facing errors.

Every user mistake becomes a :class:`TdslError` holding one or more
:class:`Diagnostic`s, printed as ``file:line:col: error: message`` with the
source line and a caret. Our own bugs are not user errors: a stage that fails with
anything but a ``TdslError`` is reported as an :class:`InternalCompilerError`, which names the
stage and the target and says how to report it, never as the user's fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Source:
    """The text of one program, kept so that diagnostics can quote it."""

    name: str
    text: str

    def line(self, n: int) -> str:
        lines = self.text.split("\n")       # lark counts lines by \n only
        return lines[n - 1].rstrip("\r") if 0 < n <= len(lines) else ""


@dataclass
class Diagnostic:
    loc: Loc | None
    message: str
    severity: str = "error"
    notes: list[str] = field(default_factory=list)

    def format(self, source: Source | None = None) -> str:
        head = f"{self.loc}: {self.severity}: {self.message}" if self.loc else f"{self.severity}: {self.message}"
        out = [head]
        if self.loc is not None and source is not None and source.name == self.loc.file:
            text = source.line(self.loc.line).replace("\t", " ")
            if text:
                width = max(1, (self.loc.end_col or self.loc.col + 1) - self.loc.col)
                out.append(f"  {text}")
                out.append("  " + " " * (self.loc.col - 1) + "^" + "~" * (width - 1))
        out.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(out)


class TdslError(Exception):
    """A located error in a user's program (never an internal failure)."""

    def __init__(self, loc: Loc | None, message: str, notes: list[str] | None = None,
                 source: Source | None = None) -> None:
        self.diagnostics = [Diagnostic(loc, message, notes=list(notes or []))]
        self.source = source
        super().__init__(message)

    @property
    def loc(self) -> Loc | None:
        return self.diagnostics[0].loc

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    def format(self) -> str:
        return "\n".join(d.format(self.source) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.format()


class ArgumentError(TypeError, ValueError):
    """A mistake in the arguments given to a program from Python (``program.interpret``): a
    missing or unknown argument, an array of the wrong shape or dtype, a scalar that is not a
    number of the parameter's type. The message names the parameter. A ``TypeError`` and a
    ``ValueError`` both, so that code catching either keeps working."""


REPORT_URL = "https://github.com/tiledsl/tiledsl/issues"


class InternalCompilerError(Exception):
    """A bug in tiledsl found while compiling or running a program: an exception other than
    :class:`TdslError` escaped from ``stage`` (``"thread-ir"``, ``"llvm"``, ``"interpret"`` ...).

    ``cause`` is the original exception (also ``__cause__``); ``loc`` is the program location the
    stage was working on when it failed, where known.
    """

    def __init__(self, stage: str, cause: BaseException, loc: Loc | None = None, target: str | None = None,
                 source: Source | None = None) -> None:
        self.stage = stage
        self.cause = cause
        self.loc = loc
        self.target = target
        self.source = source
        super().__init__(self.headline())

    def headline(self) -> str:
        on = f" for {self.target}" if self.target else ""
        detail = str(self.cause).strip().splitlines()
        text = detail[0] if detail else ""
        return f"internal compiler error in stage '{self.stage}'{on}: {type(self.cause).__name__}: {text}"

    def format(self) -> str:
        diag = Diagnostic(self.loc, self.headline(), severity="error", notes=[
            "this is a bug in tiledsl, not a mistake in your program",
            f"please report it at {REPORT_URL} with the program, the command line and `tdslc --version`",
        ])
        return diag.format(self.source)

    def __str__(self) -> str:
        return self.format()
