"""The Python API: ``tiledsl.load`` → :class:`Program` (or :class:`Module`).

A program is one parsed kernel plus compile-time parameter values. Tile IR is built
(and checked) for those values; a ``const`` dim without a value is bound from the
argument shapes when interpreting, and a ``dtype`` parameter not given a value from the
arrays' dtypes, which specialises the program.

A file of several kernels loads as a :class:`Module`, a table of programs by kernel name
that cannot itself run: ``load(path).kernels["combine"]`` (or ``load(path, kernel="combine")``)
is the program of one kernel.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError, Source, TdslError
from tiledsl.frontend import ast
from tiledsl.frontend.parser import parse_kernels
from tiledsl.interp.arguments import scalar_value, tensor_storage
from tiledsl.interp.block import BlockInterpreter, GlobalTensor, check_coverage
from tiledsl.interp.limits import check_argument_sizes
from tiledsl.interp.report import Report
from tiledsl.ir import ops
from tiledsl.ir.parser import parse_op
from tiledsl.ir.printer import print_op
from tiledsl.ir.types import DTYPES
from tiledsl.stages import Options, internal_errors, run_until
from tiledsl.targets import UnknownTargetError, get_target


class KernelTable(dict):
    """The kernels of one file by name (a ``dict[str, Program]``); a name it lacks is a KeyError
    that lists the names it has."""

    def __missing__(self, name: str) -> Program:
        raise KeyError(f"no kernel '{name}' (the kernels: {', '.join(self)})")


@dataclass
class Program:
    """A checked kernel. Build with :func:`load`.

    ``params``: compile-time values by name — numbers for ``const`` and ``param``, dtype names
    (``"bf16"``) for ``dtype`` parameters."""

    source: Source
    ast: ast.Kernel
    params: dict[str, int | float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._specialized: dict[tuple, Program] = {}
        #: Each compile stage's result for this program, by (stage, target, options): kept by
        #: ``tiledsl.stages.run_until``, so every stage runs once per program.
        self.stage_results: dict[tuple, tuple[Any, Any]] = {}
        #: The kernels of the file this program was loaded from (set by :func:`load`).
        self._file_kernels: KernelTable | None = None

    # ------------------------------------------------------------ structure
    @property
    def name(self) -> str:
        return self.ast.name

    @property
    def kernels(self) -> KernelTable:
        """The kernels of this program's file by name, this one among them: ``{name: self}`` for a
        file of one kernel (and for a program made by :meth:`specialize`)."""
        return self._file_kernels if self._file_kernels is not None else KernelTable({self.name: self})

    @property
    def dtypes(self) -> dict[str, str]:
        """The value of each ``dtype`` parameter: given in ``params``, else its default."""
        return {d.name: str(self.params.get(d.name, d.default.id)) for d in self.ast.dtype_params}

    @property
    def tensor_params(self) -> list[ast.TensorParam]:
        """The tensor parameters, a dtype parameter in their dtype replaced by its value."""
        return [self._resolved(p) for p in self.ast.params if isinstance(p, ast.TensorParam)]

    @property
    def scalar_params(self) -> list[ast.ScalarParam]:
        """The scalar parameters, a dtype parameter in their dtype replaced by its value."""
        return [self._resolved(p) for p in self.ast.params if isinstance(p, ast.ScalarParam)]

    def _resolved(self, p: Any) -> Any:
        dtypes = self.dtypes
        return dataclasses.replace(p, dtype=dtypes[p.dtype]) if p.dtype in dtypes else p

    @property
    def unbound_consts(self) -> list[str]:
        return [c.name for c in self.ast.consts if c.default is None and c.name not in self.params]

    def accumulators(self) -> dict[str, list[str]]:
        """The out tensors the kernel updates with atomics, each with the kinds of update (``add``,
        ``max``, ``min``) in program order: the caller initialises them (the coverage check
        accepts their elements updated any number of times, or not at all)."""
        found: dict[str, list[str]] = {}
        for op in self.tile_ir().walk():
            if isinstance(op, ops.AtomicOp):
                kinds = found.setdefault(op.operands[0].hint, [])
                if op.kind not in kinds:
                    kinds.append(op.kind)
        return found

    def tile_ir(self) -> ops.KernelOp:
        """The tile IR as sema builds it (before any pass; cached: do not mutate it). Raises TdslError."""
        return run_until(self, "tile-ir")

    def lower(self, passes: tuple[str, ...] | None = None, record: bool = False
              ) -> tuple[ops.KernelOp, list[tuple[str, str]]]:
        """A fresh copy of the tile IR after ``passes`` (default: the compile's tile passes), each
        verified; with ``record``, also the IR text after each pass as (pass name, text)."""
        snapshots: list[tuple[str, str]] = []
        hook = (lambda stage, after, target, text: snapshots.append((after, text)) if stage == "ir"
                else None) if record else None
        kernel = run_until(self, "ir", options=Options(tile_passes=passes, print_ir=hook))
        return parse_op(print_op(kernel)), snapshots

    def ir(self, passes: tuple[str, ...] | None = None) -> str:
        return print_op(self.lowered(passes))

    def lowered(self, passes: tuple[str, ...] | None = None) -> ops.KernelOp:
        """The tile IR after ``passes``, computed once; callers must not mutate it."""
        return run_until(self, "ir", options=Options(tile_passes=passes))

    def specialize(self, **params: float | str) -> Program:
        """The same kernel with more compile-time values fixed (cached per values)."""
        key = tuple(sorted(params.items()))
        if key not in self._specialized:
            self._specialized[key] = Program(self.source, self.ast, {**self.params, **params})
        return self._specialized[key]

    def compile(self, target: str = "gfx942", matrix: bool = True, strided: Iterable[str] = ()) -> Any:
        """Compile to native code for ``target`` (gfx90a, gfx942, gfx1100, sm_80, sm_90):
        an Artifact with ``.llvm_ir``, ``.asm``, ``.binary``, ``.resources`` and ``.meta``.
        ``matrix=False`` uses FMAs instead of matrix instructions (AMDGPU). ``strided`` names
        tensor parameters that take their strides as kernel arguments (any view whose last dim is
        contiguous; the launcher picks this specialisation for non-contiguous tensors)."""
        from tiledsl.compile import compile_program
        if self.unbound_consts:
            raise TdslError(self.ast.loc, "compiling needs every const: pass params="
                                          + str({c: "..." for c in self.unbound_consts}), source=self.source)
        names = {p.name for p in self.tensor_params}
        for name in strided:
            if name not in names:
                raise ArgumentError(f"strided: '{name}' is not a tensor parameter of '{self.name}' "
                                    f"(its tensors: {', '.join(sorted(names))})")
        return compile_program(self, target, matrix, strided=frozenset(strided))

    def launcher(self, target: str = "sm_90", interpret: bool | None = None,
                 tuned: Callable[[Program, Mapping[str, int]], Mapping[str, Any]] | None = None,
                 autotune: bool = False) -> Any:
        """A callable that launches this kernel on an NVIDIA GPU with arrays by name (PyTorch CUDA
        tensors, CuPy, DLPack), on the current stream of their device, binding what
        :meth:`interpret` binds from them (unbound consts from the shapes, dtype parameters not in
        ``params`` from the arrays' dtypes) and compiling each specialisation for ``target`` once
        (non-contiguous tensors: the specialisation that takes their strides).
        ``compile(target).launcher()`` launches one compiled specialisation.

        ``interpret=True`` (default: the environment variable ``TDSL_INTERPRET=1``) runs the
        thread-level interpreter for ``target`` instead, with all its checks, on copies of the
        arrays (CPU or GPU tensors), writing the results back. ``tuned(program, dims)`` gives the
        tile parameters to compile a specialisation with; without it, the tile parameters kept by
        an earlier tuning of this source, shape and GPU (``tdslc tune``, :mod:`tiledsl.tune`) are
        used where ``params`` does not fix them, and with ``autotune`` a shape without them is
        tuned on its first launch over the kernel's ``tune`` space (``TDSL_PRINT_AUTOTUNING=1``
        prints each choice)."""
        from tiledsl.runtime.cuda import ProgramLauncher
        return ProgramLauncher(self, target, interpret, tuned, autotune)

    # ------------------------------------------------------------ running
    def bind_shapes(self, args: Mapping[str, Any]) -> tuple[Program, dict[str, int]]:
        """Check the NumPy arrays ``args`` against the parameters; return the program specialised
        for them (:meth:`bind`) and the run-time dim sizes. Raises ArgumentError."""
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, str | None] = {}
        for p in self.tensor_params:
            if p.name not in args:
                raise ArgumentError(f"missing argument '{p.name}'")
            arr = args[p.name]
            if not isinstance(arr, np.ndarray):
                raise ArgumentError(f"'{p.name}' must be a NumPy array, got {type(arr).__name__}")
            shapes[p.name], dtypes[p.name] = np.shape(arr), array_dtype(arr.dtype)
        return self.bind(shapes, dtypes)

    def bind(self, shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str | None]
             ) -> tuple[Program, dict[str, int]]:
        """The program specialised for arguments of these shapes and dtypes (by tensor name; a
        dtype None where the array's is none of tiledsl's), and the run-time dim sizes.

        An unbound const takes the size of the dim of its name. A dtype parameter not in ``params``
        takes the dtype of the arrays of the tensors declared with it, where that dtype is one the
        parameter may take (the arrays of other dtypes are converted as for a fixed dtype); arrays
        of two such dtypes are an error. Raises ArgumentError."""
        dims: dict[str, int] = {}
        where: dict[str, str] = {}
        for p in self.tensor_params:
            if p.name not in shapes:
                raise ArgumentError(f"missing argument '{p.name}'")
            shape = tuple(shapes[p.name])
            if len(shape) != len(p.dims):
                raise ArgumentError(f"'{p.name}' must have {len(p.dims)} dims {p.dims}, got shape {shape}")
            for d, n in zip(p.dims, shape):
                if isinstance(d, int):
                    if d != n:
                        raise ArgumentError(f"'{p.name}' dim must be {d}, got {n} (shape {shape})")
                    continue
                if d in dims and dims[d] != n:
                    raise ArgumentError(f"dim {d} is {dims[d]} in '{where[d]}' but {n} in '{p.name}'")
                dims[d] = int(n)
                where[d] = p.name
        consts = {c.name for c in self.ast.consts} | {t.name for t in self.ast.tile_params}
        extra = {}
        for name in consts & set(dims):
            if name in self.params:
                if self.params[name] != dims[name]:
                    raise ArgumentError(f"{name} is {self.params[name]} at compile time but the arguments have "
                                        f"{name}={dims[name]}")
            elif name in self.unbound_consts:
                extra[name] = dims[name]
        for name in self.unbound_consts:
            if name not in dims and name not in extra:
                raise ArgumentError(f"const {name} has no value: pass params={{'{name}': ...}}")
        extra.update(self._dtypes_of_arrays(dtypes))
        prog = self.specialize(**extra) if extra else self
        return prog, dims

    def _dtypes_of_arrays(self, dtypes: Mapping[str, str | None]) -> dict[str, str]:
        """The dtype parameters that the arrays bind (see :meth:`bind`), where not their default."""
        bound: dict[str, str] = {}
        for d in self.ast.dtype_params:
            if d.name in self.params:
                continue
            allowed = [c.id for c in d.choices] if d.choices else DTYPES
            seen: dict[str, str] = {}           # dtype -> the first tensor with it
            for p in self.ast.params:
                if isinstance(p, ast.TensorParam) and p.dtype == d.name and dtypes.get(p.name) in allowed:
                    seen.setdefault(str(dtypes[p.name]), p.name)
            if len(seen) > 1:
                (a, pa), (b, pb) = list(seen.items())[:2]
                raise ArgumentError(f"dtype {d.name} is taken from the arrays, but '{pa}' is {a} and "
                                    f"'{pb}' is {b}: give arrays of one dtype, or fix it with "
                                    f"params={{'{d.name}': ...}}")
            if seen and next(iter(seen)) != d.default.id:
                bound[d.name] = next(iter(seen))
        return bound

    def prepare_arguments(self, args: Mapping[str, Any]
                          ) -> tuple[Program, dict[str, GlobalTensor], dict[str, Any], dict[str, int]]:
        """Check ``args`` against the parameters and put them in the interpreters' storage:
        (the program specialised for the shapes, tensors, scalars, run-time dims). Raises
        ArgumentError (the rules are in :meth:`interpret`)."""
        known = {p.name for p in self.ast.params}
        for name in args:
            if name not in known:
                raise ArgumentError(f"'{self.name}' has no parameter '{name}' (it has: {', '.join(sorted(known))})")
        for p in self.scalar_params:
            if p.name not in args:
                raise ArgumentError(f"missing argument '{p.name}'")
        prog, dims = self.bind_shapes(args)
        check_argument_sizes(prog.tensor_params, {p.name: np.shape(args[p.name]) for p in prog.tensor_params},
                             self.ast.loc, self.source)
        tensors = {p.name: tensor_storage(p, args[p.name]) for p in prog.tensor_params}
        scalars = {p.name: scalar_value(p, args[p.name]) for p in prog.scalar_params}
        return prog, tensors, scalars, dims

    def interpret(self, level: str = "block", target: str | None = None, *, shuffle_blocks: bool = False,
                  nan_fill: bool = False, seed: int = 0, **args: Any) -> Report:
        """Run the kernel on arrays (by parameter name): NumPy arrays, PyTorch tensors (CPU, or
        CUDA through a host copy), DLPack or ``__array__`` arrays (``tiledsl.runtime.interpret``);
        ``out`` arrays are written in place. Returns a :class:`Report`; ``report.ok`` is False when a
        check (bounds, uninitialised LDS, output coverage, races) failed.

        ``level="thread"`` runs the thread IR for ``target`` (default gfx942);
        ``shuffle_blocks`` runs its blocks in a random order (``seed``) and
        ``nan_fill`` fills uninitialised LDS with NaN bits.

        The arguments, checked before anything runs (a mistake raises
        :class:`tiledsl.ArgumentError`, a ``TypeError`` and ``ValueError``, naming the parameter):

        - every parameter is given, by name, and no other;
        - a tensor is a NumPy array of the parameter's rank, its fixed dims equal, a dim name the
          same size in every tensor (and equal to a compile-time value of that name). Any memory
          order or strides will do (Fortran order, a strided view); an ``out`` array must be
          writeable and receives the result.
        - f16/bf16/f32 tensors take any floating-point array, ml_dtypes' ``bfloat16`` included
          (rounded to the dtype); i32 tensors any integer array whose values fit in i32 (not
          floats, not bools).
        - a f16/bf16/f32 scalar is a real number: a Python or NumPy int or float, or a 0-d array
          of one, rounded to the dtype (NaN and ±inf are legal values). Not a bool, ``None``, a
          string, a complex number or an array with dims.
        - an i32 scalar is an integer in [-2**31, 2**31 - 1] (a float without a fraction counts);
          not a bool. An i1 scalar is a bool.
        """
        if level not in ("block", "thread"):
            raise ArgumentError(f"level must be 'block' or 'thread', got {level!r}")
        if level == "thread":
            try:
                target = get_target(target or "gfx942").name
            except UnknownTargetError as e:
                raise ArgumentError(str(e)) from None
        from tiledsl.runtime.interpret import host_arguments, write_result
        host, shared = host_arguments(self, args)
        prog, tensors, scalars, dims = self.prepare_arguments(host)
        kernel = prog.lowered()
        report = Report(level=level)
        # The interpreters' own failures are internal errors, reported like the compiler's.
        with internal_errors(f"interpret-{level}", self, target):
            self._run(level, prog, kernel, tensors, scalars, dims, report, target, shuffle_blocks, nan_fill, seed)
        self.check_coverage(kernel, tensors, report)
        for p in self.tensor_params:
            if p.out:
                write_result(args[p.name], host[p.name], shared[p.name], tensors[p.name].data)
        return report

    @staticmethod
    def check_coverage(kernel: ops.KernelOp, tensors: dict[str, GlobalTensor], report: Report) -> None:
        """Report holes and double writes of every out tensor, at the op that stores it."""
        stores = {op.operands[0].hint: op for op in kernel.walk() if isinstance(op, ops.StoreOp)}
        atomics = {op.operands[0].hint: op for op in kernel.walk() if isinstance(op, ops.AtomicOp)}
        for t in tensors.values():
            if t.counts is not None:
                check_coverage(atomics.get(t.name) or stores.get(t.name, kernel), {t.name: t}, report,
                               frozenset(atomics))

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


@dataclass(repr=False)
class Module:
    """A file of several kernels, as :func:`load` returns it. It is not a program: its
    ``interpret``, ``compile`` and the like raise :class:`~tiledsl.ArgumentError` naming the
    kernels; pick one with ``module.kernels["name"]`` (or ``load(path, kernel="name")``).

    A file's kernels are separate programs (each its own symbol, tile IR and artifacts) that
    share the file and the ``params`` given to :func:`load`; one call cannot stand for all of
    them, so a module refuses to guess rather than run the first.
    """

    source: Source
    kernels: KernelTable
    params: dict[str, int | float | str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The kernels' names, in the order of the file."""
        return list(self.kernels)

    def __repr__(self) -> str:
        return f"Module({self.source.name!r}, kernels={self.names}, params={self.params})"

    def pick_one(self) -> ArgumentError:
        """The error for using the module as one program."""
        first = self.names[0]
        return ArgumentError(f"'{self.source.name}' has {len(self.kernels)} kernels "
                             f"({', '.join(self.names)}): pick one with .kernels['{first}'] or "
                             f"tiledsl.load(path, kernel='{first}')")

    def interpret(self, *args: Any, **kwargs: Any) -> Report:
        raise self.pick_one()

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        raise self.pick_one()

    def launcher(self, *args: Any, **kwargs: Any) -> Any:
        raise self.pick_one()

    def specialize(self, **params: Any) -> Program:
        raise self.pick_one()

    def tile_ir(self) -> ops.KernelOp:
        raise self.pick_one()

    def lowered(self, *args: Any, **kwargs: Any) -> ops.KernelOp:
        raise self.pick_one()


def load(path_or_source: str | os.PathLike, params: Mapping[str, int | float | str] | None = None,
         kernel: str | None = None, name: str = "<string>") -> Program | Module:
    """Parse and check a .tdsl program from a path or from source text (called ``name`` in
    diagnostics; ``tdslc`` names a program read from stdin ``<stdin>``).

    ``params`` gives compile-time values by name (numbers; dtype names such as ``"bf16"`` for
    ``dtype`` parameters). A file of one kernel gives its :class:`Program`; a file of several
    gives a :class:`Module` (every kernel checked, ``params`` applying to each kernel that
    declares them), unless ``kernel`` names the one to return (only it is checked).

    Raises :class:`tiledsl.TdslError` (with file:line:col) for a mistake in the program, among
    them a param that no kernel of the file declares; :class:`tiledsl.ArgumentError` for a
    ``kernel`` the file does not have.
    """
    text, name = _read(path_or_source, name)
    source = Source(name, text)
    try:
        asts = parse_kernels(text, name)
    except TdslError as e:
        e.source = source
        raise
    params = dict(params or {})
    if len(asts) == 1:      # sema reports a param the kernel does not declare
        programs = [Program(source, asts[0], params)]
    else:
        _check_declared(asts, params, source)
        programs = [Program(source, k, {n: v for n, v in params.items() if n in _declared(k)}) for k in asts]
    table = KernelTable((p.name, p) for p in programs)
    for p in programs:
        p._file_kernels = table
    if kernel is not None:
        if kernel not in table:
            raise ArgumentError(f"'{name}' has no kernel '{kernel}' (its kernels: {', '.join(table)})")
        table[kernel].tile_ir()
        return table[kernel]
    errors: list[TdslError] = []
    for p in programs:      # the kernels are independent: report the errors of each
        try:
            p.tile_ir()
        except TdslError as e:
            errors.append(e)
    if len(errors) > 1:
        errors[0].diagnostics = [d for e in errors for d in e.diagnostics]
    if errors:
        raise errors[0]
    return programs[0] if len(programs) == 1 else Module(source, table, params)


def _declared(kernel: ast.Kernel) -> set[str]:
    """The compile-time names a kernel declares (what ``params`` may set)."""
    return {c.name for c in kernel.consts} | {p.name for p in kernel.tile_params} | \
        {d.name for d in kernel.dtype_params}


def _check_declared(kernels: list[ast.Kernel], params: Mapping[str, Any], source: Source) -> None:
    """A param that no kernel of the file declares is a mistake (a typo would otherwise go unseen)."""
    for name in params:
        if not any(name in _declared(k) for k in kernels):
            declares = "; ".join(f"{k.name}: {', '.join(sorted(_declared(k))) or 'none'}" for k in kernels)
            raise TdslError(kernels[0].loc, f"unknown parameter '{name}': no kernel of the file declares it",
                            [f"the kernels declare: {declares}"], source=source)


#: NumPy's names (ml_dtypes' for bfloat16 and fp8) of the array dtypes that name a tiledsl dtype,
#: for binding a dtype parameter from the arrays; only the dtypes in ``tiledsl.ir.types.DTYPES`` count.
_NUMPY_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "int32": "i32", "int8": "i8",
                 "uint8": "u8", "int16": "i16", "uint32": "u32", "int64": "i64", "float8_e4m3fn": "f8e4m3",
                 "float8_e5m2": "f8e5m2"}


def array_dtype(dtype: Any) -> str | None:
    """The tiledsl dtype an array of NumPy dtype ``dtype`` holds exactly, or None."""
    name = _NUMPY_DTYPES.get(np.dtype(dtype).name)
    return name if name in DTYPES else None


def _read(path_or_source: str | os.PathLike, name: str) -> tuple[str, str]:
    if isinstance(path_or_source, os.PathLike):
        p = os.fspath(path_or_source)
        return read_source_file(p), p
    s = str(path_or_source)
    if "\n" not in s and "{" not in s:
        if not os.path.exists(s):
            raise FileNotFoundError(f"no such file: {s}")
        return read_source_file(s), s
    return s, name


def read_source_file(path: str) -> str:
    """The text of a .tdsl file. A file that is not UTF-8 text (a binary, a NUL byte) is a
    TdslError saying where; errors of the file system (OSError) propagate."""
    with open(path, "rb") as f:
        data = f.read()
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
        bad = -1
    except UnicodeDecodeError as e:
        bad = e.start
    if bad >= 0 and not 0 <= nul < bad:
        line, col = _position(data, bad)
        raise TdslError(None, f"cannot read '{path}': not a text file (byte 0x{data[bad]:02x} at line {line}, "
                              f"column {col} is not UTF-8)")
    if nul >= 0:
        line, col = _position(data, nul)
        raise TdslError(None, f"cannot read '{path}': not a text file (a NUL byte at line {line}, column {col})")
    return text


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset``."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", errors="replace")) + 1
