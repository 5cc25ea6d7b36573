"""The Python API: ``tiledsl.load`` → :class:`Program`.

A program is a parsed kernel plus compile-time parameter values. Tile IR is built
(and checked) for those values; a ``const`` dim without a value is bound from the
argument shapes when interpreting, which specialises the program.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiledsl.diagnostics import Source, TdslError
from tiledsl.frontend import ast
from tiledsl.frontend.parser import parse
from tiledsl.frontend.sema import build_kernel
from tiledsl.interp.block import BlockInterpreter, GlobalTensor, check_coverage
from tiledsl.interp.limits import check_argument_sizes
from tiledsl.interp.numerics import STORAGE, round_to
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.ir.core import verify_tree
from tiledsl.ir.passes import DEFAULT_PIPELINE, PassManager, pipeline
from tiledsl.ir.printer import print_op

_NUMPY_OK = {"f16": "f", "bf16": "f", "f32": "f", "i32": "iu"}


@dataclass
class Program:
    """A checked kernel. Build with :func:`load`."""

    source: Source
    ast: ast.Kernel
    params: dict[str, int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tile_ir: ops.KernelOp | None = None
        self._lowered: dict[tuple[str, ...], ops.KernelOp] = {}
        self._specialized: dict[tuple, Program] = {}

    # ------------------------------------------------------------ structure
    @property
    def name(self) -> str:
        return self.ast.name

    @property
    def tensor_params(self) -> list[ast.TensorParam]:
        return [p for p in self.ast.params if isinstance(p, ast.TensorParam)]

    @property
    def scalar_params(self) -> list[ast.ScalarParam]:
        return [p for p in self.ast.params if isinstance(p, ast.ScalarParam)]

    @property
    def unbound_consts(self) -> list[str]:
        return [c.name for c in self.ast.consts if c.default is None and c.name not in self.params]

    def tile_ir(self) -> ops.KernelOp:
        """The tile IR as sema builds it (before any pass). Raises TdslError."""
        if self._tile_ir is None:
            try:
                k = build_kernel(self.ast, self.params)
                pipeline.check(k)
            except TdslError as e:
                e.source = self.source
                raise
            verify_tree(k)
            self._tile_ir = k
        return self._tile_ir

    def lower(self, passes: tuple[str, ...] = DEFAULT_PIPELINE, record: bool = False
              ) -> tuple[ops.KernelOp, PassManager]:
        """A fresh copy of the tile IR after ``passes`` (each verified)."""
        from tiledsl.ir.parser import parse_op
        kernel = parse_op(print_op(self.tile_ir()))
        pm = PassManager(passes, record=record)
        pm.run(kernel)
        return kernel, pm

    def ir(self, passes: tuple[str, ...] = DEFAULT_PIPELINE) -> str:
        return print_op(self.lower(passes)[0])

    def lowered(self, passes: tuple[str, ...] = DEFAULT_PIPELINE) -> ops.KernelOp:
        """The tile IR after ``passes``, computed once; callers must not mutate it."""
        if passes not in self._lowered:
            self._lowered[passes] = self.lower(passes)[0]
        return self._lowered[passes]

    def specialize(self, **params: float) -> Program:
        """The same kernel with more compile-time values fixed (cached per values)."""
        key = tuple(sorted(params.items()))
        if key not in self._specialized:
            self._specialized[key] = Program(self.source, self.ast, {**self.params, **params})
        return self._specialized[key]

    def compile(self, target: str = "gfx942", matrix: bool = True) -> Any:
        """Compile to native code for ``target`` (gfx90a, gfx942, gfx1100, sm_80, sm_90):
        an Artifact with ``.llvm_ir``, ``.asm``, ``.binary``, ``.resources`` and ``.meta``.
        ``matrix=False`` uses FMAs instead of matrix instructions (AMDGPU)."""
        from tiledsl.compile import compile_program
        if self.unbound_consts:
            raise TdslError(self.ast.loc, "compiling needs every const: pass params="
                                          + str({c: "..." for c in self.unbound_consts}), source=self.source)
        return compile_program(self, target, matrix)

    # ------------------------------------------------------------ running
    def bind_shapes(self, args: Mapping[str, Any]) -> tuple[Program, dict[str, int]]:
        """Check argument shapes against the parameters; return the program
        specialised for unbound consts and the runtime dim sizes."""
        dims: dict[str, int] = {}
        where: dict[str, str] = {}
        for p in self.tensor_params:
            if p.name not in args:
                raise TypeError(f"missing argument '{p.name}'")
            arr = args[p.name]
            shape = np.shape(arr)
            if len(shape) != len(p.dims):
                raise ValueError(f"'{p.name}' must have {len(p.dims)} dims {p.dims}, got shape {shape}")
            for d, n in zip(p.dims, shape):
                if isinstance(d, int):
                    if d != n:
                        raise ValueError(f"'{p.name}' dim must be {d}, got {n} (shape {shape})")
                    continue
                if d in dims and dims[d] != n:
                    raise ValueError(f"dim {d} is {dims[d]} in '{where[d]}' but {n} in '{p.name}'")
                dims[d] = int(n)
                where[d] = p.name
        consts = {c.name for c in self.ast.consts} | {t.name for t in self.ast.tile_params}
        extra = {}
        for name in consts & set(dims):
            if name in self.params:
                if self.params[name] != dims[name]:
                    raise ValueError(f"{name} is {self.params[name]} at compile time but the arguments have "
                                     f"{name}={dims[name]}")
            elif name in self.unbound_consts:
                extra[name] = dims[name]
        for name in self.unbound_consts:
            if name not in dims and name not in extra:
                raise ValueError(f"const {name} has no value: pass params={{'{name}': ...}}")
        prog = self.specialize(**extra) if extra else self
        return prog, dims

    def prepare_arguments(self, args: Mapping[str, Any]
                          ) -> tuple[Program, dict[str, GlobalTensor], dict[str, Any], dict[str, int]]:
        """Check ``args`` against the parameters and put them in the interpreters' storage:
        (the program specialised for the shapes, tensors, scalars, run-time dims)."""
        known = {p.name for p in self.ast.params}
        for name in args:
            if name not in known:
                raise TypeError(f"'{self.name}' has no parameter '{name}' (it has: {', '.join(sorted(known))})")
        for p in self.scalar_params:
            if p.name not in args:
                raise TypeError(f"missing argument '{p.name}'")
        prog, dims = self.bind_shapes(args)
        check_argument_sizes(self.tensor_params, {p.name: np.shape(args[p.name]) for p in self.tensor_params},
                             self.ast.loc, self.source)
        tensors: dict[str, GlobalTensor] = {}
        for p in self.tensor_params:
            arr = args[p.name]
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"'{p.name}' must be a NumPy array, got {type(arr).__name__}")
            if arr.dtype.kind not in _NUMPY_OK[p.dtype] and not (p.dtype == "bf16" and arr.dtype.name == "bfloat16"):
                raise TypeError(f"'{p.name}' is {p.dtype} but the array is {arr.dtype}")
            if p.out and not arr.flags.writeable:
                raise ValueError(f"out array '{p.name}' is read-only")
            if arr.dtype == np.float16 and p.dtype == "f16":
                data = arr.astype(np.float32)      # exact: no rounding needed
            else:
                data = np.array(round_to(np.asarray(arr), p.dtype), dtype=STORAGE[p.dtype])
            counts = np.zeros(arr.shape, dtype=np.int32) if p.out else None
            tensors[p.name] = GlobalTensor(p.name, data, p.dtype, counts)
        scalars = {}
        for p in self.scalar_params:
            v = args[p.name]
            if not np.isscalar(v) and np.ndim(v) != 0:
                raise TypeError(f"'{p.name}' is a scalar parameter, got {type(v).__name__}")
            scalars[p.name] = round_to(np.asarray(v), p.dtype)[()]
        return prog, tensors, scalars, dims

    def interpret(self, level: str = "block", target: str | None = None, *, shuffle_blocks: bool = False,
                  nan_fill: bool = False, seed: int = 0, **args: Any) -> Report:
        """Run the kernel on NumPy arrays (by parameter name); ``out`` arrays are
        written in place. Returns a :class:`Report`; ``report.ok`` is False when a
        check (bounds, uninitialised LDS, output coverage, races) failed.

        ``level="thread"`` runs the thread IR for ``target`` (default gfx942);
        ``shuffle_blocks`` runs its blocks in a random order (``seed``) and
        ``nan_fill`` fills uninitialised LDS with NaN bits."""
        if level not in ("block", "thread"):
            raise ValueError(f"level must be 'block' or 'thread', got {level!r}")
        prog, tensors, scalars, dims = self.prepare_arguments(args)
        kernel = prog.lowered()
        report = Report(level=level)
        try:
            self._run(level, prog, kernel, tensors, scalars, dims, report, target, shuffle_blocks, nan_fill, seed)
        except TdslError as e:
            e.source = e.source or self.source
            raise
        self.check_coverage(kernel, tensors, report)
        for p in self.tensor_params:
            if p.out:
                out = args[p.name]
                out[...] = tensors[p.name].data.astype(out.dtype) if out.dtype.name != "bfloat16" else \
                    tensors[p.name].data
        return report

    @staticmethod
    def check_coverage(kernel: ops.KernelOp, tensors: dict[str, GlobalTensor], report: Report) -> None:
        """Report holes and double writes of every out tensor, at the op that stores it."""
        stores = {op.operands[0].hint: op for op in kernel.walk() if isinstance(op, ops.StoreOp)}
        for t in tensors.values():
            if t.counts is not None:
                check_coverage(stores.get(t.name, kernel), {t.name: t}, report)

    @staticmethod
    def _run(level: str, prog: Program, kernel: ops.KernelOp, tensors: dict[str, GlobalTensor],
             scalars: dict[str, Any], dims: dict[str, int], report: Report, target: str | None,
             shuffle_blocks: bool, nan_fill: bool, seed: int) -> None:
        if level == "block":
            BlockInterpreter(kernel, tensors, scalars, dims, report).run()
            return
        from tiledsl.interp.thread import run_thread_level
        run_thread_level(prog, kernel, tensors, scalars, dims, report, target or "gfx942",
                         shuffle_blocks=shuffle_blocks, nan_fill=nan_fill, seed=seed)


def load(path_or_source: str | os.PathLike, params: Mapping[str, int | float] | None = None) -> Program:
    """Parse and check a .tdsl program from a path or from source text.

    Raises :class:`tiledsl.TdslError` (with file:line:col) for a mistake in the program.
    """
    text, name = _read(path_or_source)
    source = Source(name, text)
    try:
        kernel = parse(text, name)
    except TdslError as e:
        e.source = source
        raise
    prog = Program(source, kernel, dict(params or {}))
    prog.tile_ir()
    return prog


def _read(path_or_source: str | os.PathLike) -> tuple[str, str]:
    if isinstance(path_or_source, os.PathLike):
        p = os.fspath(path_or_source)
        with open(p, encoding="utf-8") as f:
            return f.read(), p
    s = str(path_or_source)
    if "\n" not in s and "{" not in s:
        if not os.path.exists(s):
            raise FileNotFoundError(f"no such file: {s}")
        with open(s, encoding="utf-8") as f:
            return f.read(), s
    return s, "<string>"
