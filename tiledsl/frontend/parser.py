"""Source text → AST, with lark (LALR) and located syntax errors."""

from __future__ import annotations

import functools
from importlib import resources

import lark
from lark import Token, Transformer, v_args

from tiledsl.diagnostics import Loc, Source, TdslError
from tiledsl.frontend import ast

_FRIENDLY = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number",
    "CMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//' or '%'", "$END": "end of input",
    "SHIFT_OP": "'<<' or '>>'", "BOR": "'|'", "BXOR": "'^'", "BAND": "'&'", "TRANSPOSE": "'^T'",
}


@functools.cache
def _lark() -> lark.Lark:
    text = resources.files("tiledsl").joinpath("grammar.lark").read_text()
    return lark.Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(term: str) -> str:
    if term in _FRIENDLY:
        return _FRIENDLY[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"'{pattern.value}'"
    return term.lower()


class _Builder(Transformer):
    """One method per grammar alias; each returns an AST node with its location."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _loc(self, meta: lark.tree.Meta) -> Loc:
        end = meta.end_column if getattr(meta, "end_line", None) == getattr(meta, "line", None) else None
        return Loc(self.file, meta.line, meta.column, end)

    def _tloc(self, tok: Token) -> Loc:
        return Loc(self.file, tok.line, tok.column, tok.end_column)

    # ---- kernels and header ----
    def start(self, children):
        seen: dict[str, ast.Kernel] = {}
        for k in children:
            if k.name in seen:
                raise TdslError(k.loc, f"kernel '{k.name}' is defined twice (first at {seen[k.name].loc})",
                                ["each kernel of a file needs its own name: it is the kernel's symbol"])
            seen[k.name] = k
        return children

    @v_args(meta=True)
    def kernel(self, meta, children):
        name, *rest = children
        params, consts, tparams, dparams, grid, block, body = [], [], [], [], None, None, []
        for c in rest:
            if c is None:
                continue
            if isinstance(c, (ast.TensorParam, ast.ScalarParam)):
                params.append(c)
            elif isinstance(c, list) and c and isinstance(c[0], ast.ConstDecl):
                consts.extend(c)
            elif isinstance(c, list) and c and isinstance(c[0], ast.ParamDecl):
                tparams.extend(c)
            elif isinstance(c, list) and c and isinstance(c[0], ast.DtypeDecl):
                dparams.extend(c)
            elif isinstance(c, ast.Grid):
                if grid is not None:
                    raise TdslError(c.loc, "the grid is declared twice")
                grid = c
            elif isinstance(c, ast.BlockSize):
                if block is not None:
                    raise TdslError(c.loc, "the block size is declared twice")
                block = c
            elif isinstance(c, ast.Stmt):
                body.append(c)
        return ast.Kernel(self._tloc(name), str(name), params, consts, tparams, grid, block, body, dparams)

    @v_args(meta=True)
    def tensor_param(self, meta, children):
        out, name, dtype, *dims = children
        dims = [int(d) if d.type == "INT" else str(d) for d in dims if d is not None]
        return ast.TensorParam(self._tloc(name), str(name), str(dtype), dims, out is not None,
                               self._tloc(dtype))

    @v_args(meta=True)
    def scalar_param(self, meta, children):
        name, dtype = children
        return ast.ScalarParam(self._tloc(name), str(name), str(dtype), self._tloc(dtype))

    def const_decl(self, children):
        return children

    def param_decl(self, children):
        return children

    def dtype_decl(self, children):
        return children

    def dtype_item(self, children):
        name, choices, default = children
        return ast.DtypeDecl(self._tloc(name), str(name), choices, self._dtype_name(default))

    def dtype_choices(self, children):
        return [self._dtype_name(c) for c in children]

    def _dtype_name(self, tok: Token) -> ast.Name:
        return ast.Name(self._tloc(tok), str(tok))

    @v_args(meta=True)
    def const_item(self, meta, children):
        return ast.ConstDecl(self._tloc(children[0]), str(children[0]), children[1])

    @v_args(meta=True)
    def param_item(self, meta, children):
        return ast.ParamDecl(self._tloc(children[0]), str(children[0]), children[1])

    @v_args(meta=True)
    def grid_decl(self, meta, children):
        exprs = [c for c in children if isinstance(c, ast.Expr)]
        names = [str(c) for c in children if isinstance(c, Token)]
        return ast.Grid(self._loc(meta), exprs, names)

    @v_args(meta=True)
    def block_decl(self, meta, children):
        return ast.BlockSize(self._loc(meta), children[0], str(children[1]))

    # ---- statements ----
    def empty(self, children):
        return None

    @v_args(meta=True)
    def lds_decl(self, meta, children):
        name, dtype, *shape = children
        return ast.LdsDecl(self._loc(meta), str(name), str(dtype), shape, self._tloc(dtype))

    @v_args(meta=True)
    def layout_decl(self, meta, children):
        return ast.LayoutDecl(self._loc(meta), str(children[0]), children[1])

    @v_args(meta=True)
    def layout_ref(self, meta, children):
        return ast.LayoutExpr(self._loc(meta), str(children[0]), None, {})

    @v_args(meta=True)
    def layout_call(self, meta, children):
        name, *args = children
        pos = [a for a in args if a is not None and not (isinstance(a, tuple) and a[0] == "kw")]
        kw = {a[1]: a[2] for a in args if isinstance(a, tuple) and a[0] == "kw"}
        return ast.LayoutExpr(self._loc(meta), str(name), [p[1] if isinstance(p, tuple) else p for p in pos], kw)

    def layout_kwarg(self, children):
        return ("kw", str(children[0]), self._layout_value(children[1]))

    def layout_posarg(self, children):
        return ("pos", self._layout_value(children[0]))

    def _layout_value(self, v):
        if isinstance(v, Token):
            return str(v) == "true"
        return v

    def layout_list(self, children):
        return [c for c in children if c is not None]

    @v_args(meta=True)
    def assign(self, meta, children):
        name, value, layout = children
        return ast.Assign(self._tloc(name), str(name), value, layout)

    @v_args(meta=True)
    def assign_many(self, meta, children):
        *names, value = children
        return ast.AssignMany(self._tloc(names[0]), [str(n) for n in names], [self._tloc(n) for n in names], value)

    @v_args(meta=True)
    def copy(self, meta, children):
        (name, indices, tloc), value = children
        return ast.Copy(self._loc(meta), name, indices, value, tloc)

    def lvalue_name(self, children):
        return (str(children[0]), None, self._tloc(children[0]))

    def lvalue_slice(self, children):
        name, *indices = children
        return (str(name), indices, self._tloc(name))

    @v_args(meta=True)
    def for_stmt(self, meta, children):
        var, lo, hi, step, stages, body = children
        return ast.For(self._loc(meta), str(var), lo, hi, step, body, stages)

    @v_args(meta=True)
    def if_stmt(self, meta, children):
        cond, then, orelse = children
        return ast.If(self._loc(meta), cond, then, orelse or [])

    def else_if(self, children):
        return [children[0]]

    def block(self, children):
        return [c for c in children if c is not None]

    @v_args(meta=True)
    def sync_stmt(self, meta, children):
        return ast.Sync(self._loc(meta))

    @v_args(meta=True)
    def call_stmt(self, meta, children):
        call = self._call(meta, children)
        return ast.CallStmt(call.loc, call)

    # ---- expressions ----
    @v_args(meta=True)
    def or_(self, meta, c):
        return ast.BinOp(self._loc(meta), "or", c[0], c[1])

    @v_args(meta=True)
    def and_(self, meta, c):
        return ast.BinOp(self._loc(meta), "and", c[0], c[1])

    @v_args(meta=True)
    def not_(self, meta, c):
        return ast.Not(self._loc(meta), c[0])

    @v_args(meta=True)
    def compare(self, meta, c):
        return ast.BinOp(self._tloc(c[1]), str(c[1]), c[0], c[2])

    @v_args(meta=True)
    def binop(self, meta, c):
        return ast.BinOp(self._tloc(c[1]), str(c[1]), c[0], c[2])

    @v_args(meta=True)
    def neg(self, meta, c):
        return ast.Neg(self._loc(meta), c[0])

    @v_args(meta=True)
    def invert(self, meta, c):
        return ast.Invert(self._loc(meta), c[0])

    @v_args(meta=True)
    def index(self, meta, c):
        base, *rest = c
        pad = rest[-1]
        indices = [i for i in rest[:-2] if i is not None]
        return ast.Subscript(self._loc(meta), base, indices, pad)

    @v_args(meta=True)
    def transpose(self, meta, c):
        return ast.Transpose(self._loc(meta), c[0])

    @v_args(meta=True)
    def call(self, meta, c):
        return self._call(meta, c)

    def _call(self, meta, c):
        name, *args = c
        pos = [a for a in args if a is not None and not isinstance(a, tuple)]
        kw = {a[0]: a[1] for a in args if isinstance(a, tuple)}
        end = meta.end_column if getattr(meta, "end_line", None) == name.line else name.end_column
        return ast.Call(Loc(self.file, name.line, name.column, end), str(name), pos, kw)

    def kwarg(self, c):
        return (str(c[0]), c[1])

    @v_args(meta=True)
    def int_lit(self, meta, c):
        return ast.IntLit(self._tloc(c[0]), int(c[0]))

    @v_args(meta=True)
    def float_lit(self, meta, c):
        return ast.FloatLit(self._tloc(c[0]), float(c[0]))

    @v_args(meta=True)
    def inf_lit(self, meta, c):
        return ast.FloatLit(self._loc(meta), float("inf"))

    @v_args(meta=True)
    def name(self, meta, c):
        return ast.Name(self._tloc(c[0]), str(c[0]))

    @v_args(meta=True)
    def idx_scalar(self, meta, c):
        return ast.Index("scalar", self._loc(meta), c[0], bound=c[1])

    @v_args(meta=True)
    def idx_extent(self, meta, c):
        return ast.Index("extent", self._loc(meta), c[0], c[1], bound=c[2])

    @v_args(meta=True)
    def idx_full(self, meta, c):
        return ast.Index("full", self._loc(meta))

    @v_args(meta=True)
    def idx_newaxis(self, meta, c):
        return ast.Index("newaxis", self._loc(meta))


def parse(text: str, file: str = "<string>") -> ast.Kernel:
    """Parse a .tdsl source of one kernel. Raises TdslError (located) on a syntax error, and for a
    source of several kernels (see :func:`parse_kernels`)."""
    kernels = parse_kernels(text, file)
    if len(kernels) > 1:
        raise TdslError(kernels[1].loc, f"expected one kernel, the source has {len(kernels)}: "
                                        f"{', '.join(k.name for k in kernels)}", source=Source(file, text))
    return kernels[0]


def parse_kernels(text: str, file: str = "<string>") -> list[ast.Kernel]:
    """Parse a .tdsl source: its kernels, in order, each named once. Raises TdslError (located)
    on a syntax error or a kernel name defined twice."""
    source = Source(file, text)
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            loc = _end_loc(text, file)
            got = "end of input"
        else:
            loc = Loc(file, tok.line, tok.column, tok.end_column)
            got = f"'{tok}'"
        expected = sorted({_describe(t) for t in e.expected})
        raise TdslError(loc, f"unexpected {got}; expected {_join(expected)}", source=source) from None
    except lark.exceptions.UnexpectedCharacters as e:
        loc = Loc(file, e.line, e.column, e.column + 1)
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        raise TdslError(loc, f"unexpected character {char!r}", source=source) from None
    except lark.exceptions.UnexpectedEOF as e:
        expected = sorted({_describe(t) for t in e.expected})
        raise TdslError(_end_loc(text, file), f"unexpected end of input; expected {_join(expected)}",
                        source=source) from None
    _check_depth(tree, file, source)
    try:
        return _Builder(file).transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, TdslError):
            e.orig_exc.source = source
            raise e.orig_exc from None
        raise


#: How deep the parse tree may be. The AST builder, sema and the passes recurse once or twice
#: per level, and Python stops at 1000 frames: 300 levels is about 150 nested loops or an
#: expression of 300 terms, and leaves room for the caller's frames.
MAX_DEPTH = 300


def _check_depth(tree: lark.Tree, file: str, source: Source) -> None:
    """Refuse a program nested deeper than ``MAX_DEPTH``, at the first node below that depth,
    before anything recurses through it."""
    stack: list[tuple[lark.Tree | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node if isinstance(node, Token) else node.meta
            loc = Loc(file, getattr(meta, "line", 1), getattr(meta, "column", 1))
            raise TdslError(loc, f"the program nests more than {MAX_DEPTH} levels deep here",
                            ["give parts of long expressions names, or nest fewer loops and ifs"], source=source)
        if isinstance(node, lark.Tree):
            stack.extend((c, depth + 1) for c in node.children if c is not None)


def _end_loc(text: str, file: str) -> Loc:
    # Lines are counted as lark counts them (at '\n' only); a final newline opens no new line.
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return Loc(file, len(lines), len(lines[-1]) + 1)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items) or "nothing"
    if len(items) > 8:
        return ", ".join(items[:8]) + f" or one of {len(items) - 8} more"
    return ", ".join(items[:-1]) + " or " + items[-1]
