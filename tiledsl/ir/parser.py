"""Parse the generic IR text printed by printer.py back into ops."""

from __future__ import annotations

import ast as pyast
import functools
from collections.abc import Callable
from importlib import resources
from typing import Any

import lark

from tiledsl.diagnostics import Loc
from tiledsl.ir.core import Block, Op, Value, op_class
from tiledsl.ir.types import LdsType, RegsType, Sym, TensorType, TileType, Type, with_dtype_names

# Named types (``name<args>``) of other IR levels register a constructor here.
NAMED_TYPES: dict[str, Callable[[list[Any]], Type]] = {}


class IRParseError(ValueError):
    pass


@functools.cache
def _lark() -> lark.Lark:
    return lark.Lark(with_dtype_names(resources.files("tiledsl.ir").joinpath("ir.lark").read_text()), parser="lalr",
                     maybe_placeholders=True, propagate_positions=True)


def _dim(tok: lark.Token) -> int | Sym:
    return int(tok) if tok.type == "INT" else Sym(str(tok))


class _IRBuilder:
    """Walks the lark tree in order, resolving value names as it goes."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Value]] = [{}]

    def lookup(self, name: str) -> Value:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise IRParseError(f"use of undefined value {name}")

    def define(self, name: str, v: Value) -> None:
        if name in self.scopes[-1]:
            raise IRParseError(f"value {name} defined twice")
        self.scopes[-1][name] = v
        bare = name[1:]
        v.hint = None if bare.isdigit() else bare

    def op(self, tree: lark.Tree) -> Op:
        results, opname, *rest = tree.children
        attrs_t, regions_t, types_t, loc_t = rest[-4:]
        operand_toks = rest[:-4]
        cls = op_class(str(opname))
        if cls is None:
            raise IRParseError(f"unknown op '{opname}'")
        operands = [self.lookup(str(t)) for t in operand_toks if t is not None]
        attrs = {str(a.children[0]): self.value(a.children[1]) for a in attrs_t.children if a is not None} \
            if attrs_t is not None else {}
        regions = [self.region(r) for r in regions_t.children] if regions_t is not None else []
        types = self.types(types_t) if types_t is not None else []
        names = [str(t) for t in results.children] if results is not None else []
        if len(names) != len(types):
            raise IRParseError(f"'{opname}' has {len(names)} results but {len(types)} types")
        loc = None
        if loc_t is not None:
            f, line, col = loc_t.children
            loc = Loc(pyast.literal_eval(str(f)), int(line), int(col))
        op = cls(operands, types, attrs, regions, loc)
        for n, r in zip(names, op.results):
            self.define(n, r)
        return op

    def region(self, tree: lark.Tree) -> Block:
        args = [c for c in tree.children if isinstance(c, lark.Tree) and c.data == "blockarg"]
        ops = [c for c in tree.children if isinstance(c, lark.Tree) and c.data == "op"]
        block = Block([self.type(a.children[1]) for a in args])
        self.scopes.append({})
        for a, v in zip(args, block.args):
            self.define(str(a.children[0]), v)
        for o in ops:
            block.append(self.op(o))
        self.scopes.pop()
        return block

    def types(self, tree: lark.Tree) -> list[Type]:
        return [self.type(t) for t in tree.children if t is not None]

    def type(self, t: lark.Tree) -> Type:
        kind = t.data
        if kind == "tile_t":
            dtype, *dims, layout = t.children
            shape = tuple(_dim(d) for d in dims if d is not None)
            return TileType(str(dtype), shape, str(layout)[1:] if layout is not None else None)
        if kind == "regs_t":
            return RegsType(str(t.children[0]), int(t.children[1]))
        if kind == "lds_t":
            dtype, *dims = t.children
            return LdsType(str(dtype), tuple(_dim(d) for d in dims if d is not None))
        if kind == "tensor_t":
            out, dtype, *dims = t.children
            return TensorType(str(dtype), tuple(int(d) if d.type == "INT" else str(d) for d in dims
                                                if d is not None), out is not None)
        name, *args = t.children
        if str(name) not in NAMED_TYPES:
            raise IRParseError(f"unknown type '{name}'")
        return NAMED_TYPES[str(name)]([self.value(a) for a in args if a is not None])

    def value(self, t: Any) -> Any:
        kind = t.data
        if kind == "int_v":
            return int(t.children[0])
        if kind == "float_v":
            return float(t.children[0])
        if kind == "str_v":
            return pyast.literal_eval(str(t.children[0]))
        if kind == "true_v":
            return True
        if kind == "false_v":
            return False
        if kind == "none_v":
            return None
        if kind == "sym_v":
            return Sym(str(t.children[0]))
        if kind == "list_v":
            return [self.value(c) for c in t.children if c is not None]
        if kind == "dict_v":
            return {str(a.children[0]): self.value(a.children[1]) for a in t.children if a is not None}
        if kind == "loc_v":
            f, line, col = t.children[0].children
            return Loc(pyast.literal_eval(str(f)), int(line), int(col))
        raise IRParseError(f"bad attribute value {t}")


def parse_op(text: str) -> Op:
    """Parse one top-level op (usually a kernel) from IR text."""
    try:
        tree = _lark().parse(text)
    except lark.exceptions.LarkError as e:
        raise IRParseError(str(e).splitlines()[0]) from None
    return _IRBuilder().op(tree.children[0])
