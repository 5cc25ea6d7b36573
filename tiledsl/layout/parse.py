"""Reading layout spec text back: the inverse of the specs' ``__str__``.

The grammar is small enough for a hand-written recursive-descent reader (the language grammar in
the frontend embeds the same text as one token and calls ``parse_layout_spec`` on it)::

    spec   := "replicated"
            | "blocked" [ "(" [ kwargs ] ")" ]
            | "mma" "(" kwargs ")"
            | "dot_operand" "(" INT "," spec ")"
            | "slice" "(" INT "," spec [ "," "size" "=" INT ] ")"
            | "expand" "(" INT "," spec ")"
    kwargs := NAME "=" value { "," NAME "=" value }
    value  := "[" INT { "," INT } "]" | INT | NAME          (NAME includes true / false)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tiledsl.layout.spec import (
    BlockedSpec,
    DotOperandSpec,
    ExpandSpec,
    LayoutError,
    LayoutSpec,
    LayoutSyntaxError,
    MmaSpec,
    ReplicatedSpec,
    SliceSpec,
)

_TOKEN = re.compile(r"\s*(?:(?P<int>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[\[\](),=]))")

Value = tuple[int, ...] | int | str


@dataclass(frozen=True)
class _Token:
    kind: str  # "int", "name", "punct" or "end"
    text: str
    col: int  # 1-based column in the spec text


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise LayoutSyntaxError(f"unexpected character {text[col - 1]!r} at column {col} in layout "
                                    f"'{text}'")
        kind = match.lastgroup or "punct"
        tokens.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    tokens.append(_Token("end", "end of text", len(text) + 1))
    return tokens


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def error(self, expected: str) -> LayoutSyntaxError:
        tok = self.tokens[self.pos]
        found = tok.text if tok.kind == "end" else f"'{tok.text}'"
        return LayoutSyntaxError(f"expected {expected} at column {tok.col} in layout '{self.text}', "
                                 f"found {found}")

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self, kind: str, text: str | None = None, expected: str | None = None) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(expected or (f"'{text}'" if text else kind))
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.tokens[self.pos]
        if tok.kind == "punct" and tok.text == text:
            self.pos += 1
            return True
        return False

    def integer(self) -> int:
        return int(self.take("int", expected="an integer").text)

    def value(self) -> Value:
        if self.accept("["):
            items = [self.integer()]
            while self.accept(","):
                items.append(self.integer())
            self.take("punct", "]", expected="',' or ']'")
            return tuple(items)
        tok = self.peek()
        if tok.kind == "int":
            return self.integer()
        return self.take("name", expected="a value (a list, an integer or a name)").text

    def kwargs(self, allowed: tuple[str, ...]) -> dict[str, Value]:
        found: dict[str, Value] = {}
        while True:
            tok = self.take("name", expected=f"one of {', '.join(allowed)}")
            if tok.text not in allowed:
                self.pos -= 1
                raise self.error(f"one of {', '.join(allowed)}")
            if tok.text in found:
                self.pos -= 1
                raise self.error(f"a field other than '{tok.text}' (given twice)")
            self.take("punct", "=")
            found[tok.text] = self.value()
            if not self.accept(","):
                return found

    def spec(self) -> LayoutSpec:
        tok = self.take("name", expected=f"a layout ({', '.join(_KINDS)})")
        reader = _KINDS.get(tok.text)
        if reader is None:
            self.pos -= 1
            raise self.error(f"a layout ({', '.join(_KINDS)})")
        return reader(self)


def _ints(value: Value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple):
        raise LayoutSyntaxError(f"{what} must be a list like [4,1], got {value}")
    return value


def _read_blocked(r: _Reader) -> BlockedSpec:
    if not r.accept("("):
        return BlockedSpec()
    fields: dict[str, Value] = {}
    if not r.accept(")"):
        fields = r.kwargs(("spt", "order", "waves"))
        r.take("punct", ")", expected="',' or ')'")
    spt, order, waves = (fields.get(name) for name in ("spt", "order", "waves"))
    return BlockedSpec(size_per_thread=None if spt is None else _ints(spt, "blocked spt"),
                       order=None if order is None else _ints(order, "blocked order"),
                       waves=None if waves is None else _ints(waves, "blocked waves"))


def _read_mma(r: _Reader) -> MmaSpec:
    r.take("punct", "(")
    fields = r.kwargs(("waves", "instr", "swap"))
    r.take("punct", ")", expected="',' or ')'")
    if "waves" not in fields:
        raise LayoutSyntaxError(f"mma needs waves=[M,N] in layout '{r.text}'")
    instr = fields.get("instr")
    if instr is not None and not isinstance(instr, str):
        raise LayoutSyntaxError(f"mma instr must be an instruction name, got {instr}")
    swap = fields.get("swap")
    if swap not in (None, "true", "false"):
        raise LayoutSyntaxError(f"mma swap must be true or false, got {swap}")
    return MmaSpec(waves=_ints(fields["waves"], "mma waves"), instr=instr,
                   swap=None if swap is None else swap == "true")  # type: ignore[arg-type]


def _read_dot_operand(r: _Reader) -> DotOperandSpec:
    r.take("punct", "(")
    operand = r.integer()
    r.take("punct", ",")
    parent = r.spec()
    r.take("punct", ")")
    if not isinstance(parent, MmaSpec):
        raise LayoutSyntaxError(f"dot_operand needs an mma parent, got {parent} in layout '{r.text}'")
    return DotOperandSpec(parent=parent, operand=operand)


def _read_slice(r: _Reader) -> SliceSpec:
    r.take("punct", "(")
    dim = r.integer()
    r.take("punct", ",")
    parent = r.spec()
    size = None
    if r.accept(","):
        r.take("name", "size", expected="'size'")
        r.take("punct", "=")
        size = r.integer()
    r.take("punct", ")", expected="',' or ')'")
    return SliceSpec(parent=parent, dim=dim, size=size)


def _read_expand(r: _Reader) -> ExpandSpec:
    r.take("punct", "(")
    dim = r.integer()
    r.take("punct", ",")
    parent = r.spec()
    r.take("punct", ")")
    return ExpandSpec(dim=dim, parent=parent)


def _read_replicated(r: _Reader) -> ReplicatedSpec:
    return ReplicatedSpec()


_KINDS: dict[str, Callable[[_Reader], LayoutSpec]] = {
    BlockedSpec.kind: _read_blocked,
    MmaSpec.kind: _read_mma,
    DotOperandSpec.kind: _read_dot_operand,
    SliceSpec.kind: _read_slice,
    ExpandSpec.kind: _read_expand,
    ReplicatedSpec.kind: _read_replicated,
}


def parse_layout_spec(text: str) -> LayoutSpec:
    """Parse the text of a layout spec, e.g. ``mma(waves=[4,1])``; raises ``LayoutSyntaxError``."""
    reader = _Reader(text)
    try:
        spec = reader.spec()
    except LayoutSyntaxError:
        raise
    except LayoutError as err:  # a well-formed text whose values a spec rejects (e.g. order=[0,0])
        raise LayoutSyntaxError(f"{err} in layout '{text}'") from None
    if reader.peek().kind != "end":
        raise reader.error("end of layout")
    return spec
