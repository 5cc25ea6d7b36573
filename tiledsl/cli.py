"""``tdslc``: the command-line driver.

Every user mistake (in the program or on the command line) ends in a located
message and exit code 1 (2 for a malformed command line); nothing is written
half-way: outputs go to a temporary file that is renamed into place at the end.
Anything else that escapes a command is our bug: it is reported as an internal compiler
error (exit code 3), its traceback shown with ``--traceback``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tiledsl.diagnostics import ArgumentError, InternalCompilerError, TdslError
from tiledsl.interp.numerics import FP8_TYPES
from tiledsl.ir.types import DTYPE_BYTES, INT_DTYPES, UNSIGNED_DTYPES, int_range

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
TOLERANCE = {"f32": 1e-4, "f16": 2e-3, "bf16": 1.6e-2, "i32": 0.0, "f8e4m3": 7e-2, "f8e5m2": 1.4e-1, "i8": 0.0,
             "u8": 0.0, "i16": 0.0, "u32": 0.0, "i64": 0.0}
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: The random inputs and outputs of ``run``/``bench``/``tune`` may take at most this fraction of the
#: machine's memory (the interpreters hold about three times as much: storage copies, write counts).


class UserError(Exception):
    """A mistake on the command line or in the inputs: printed without a traceback."""


def command(name: str) -> Callable:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return deco


# ---------------------------------------------------------------- argument helpers

def _number(text: str) -> tuple[str, int | float]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    name, value = text.split("=", 1)
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"'{name}' is not a name")
    try:
        return name, int(value)
    except ValueError:
        try:
            return name, float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"value of {name} must be a number, got '{value}'") from None


def _define(text: str) -> tuple[str, int | float | str]:
    """``-D NAME=VALUE``: a number, or a dtype for a dtype parameter (``-D T=bf16``)."""
    from tiledsl.ir.types import DTYPES
    name, _, value = text.partition("=")
    if value in DTYPES and name.isidentifier():
        return name, value
    try:
        return _number(text)
    except argparse.ArgumentTypeError as e:
        if "must be a number" not in str(e):
            raise
        raise argparse.ArgumentTypeError(f"value of {name} must be a number or a dtype "
                                         f"({', '.join(DTYPES)}), got '{value}'") from None


def _shape(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        name, value = _number(part.strip())
        if not isinstance(value, int) or value < 0:
            raise argparse.ArgumentTypeError(f"size of {name} must be a non-negative integer")
        if value > 2**31 - 1:
            raise argparse.ArgumentTypeError(f"size of {name} must fit in i32 (at most {2**31 - 1}), got {value}")
        out[name] = value
    return out


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the seed must be a non-negative integer, got {value}")
    return value


def _output_path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("the output path is empty (give a file name, or '-' for stdout)")
    return text


def _default_passes() -> tuple[str, ...]:
    from tiledsl.stages import DEFAULT_TILE_PASSES
    return DEFAULT_TILE_PASSES


def _add_defines(p: argparse.ArgumentParser) -> None:
    p.add_argument("-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
                   help="set a compile-time const, tile param or dtype param (repeatable), e.g. -D BM=64 "
                        "-D D=128 -D T=bf16; in a file of several kernels, for every kernel that declares it")


def add_kernel_flag(p: argparse.ArgumentParser, what: str = "the kernel to use") -> None:
    """``--kernel NAME``: which kernel of a file of several (needed there, except by ``check``)."""
    p.add_argument("--kernel", metavar="NAME", default=None,
                   help=f"{what}, in a file of several kernels (required there)")


def _load(args: argparse.Namespace, extra: dict[str, Any] | None = None, several: bool = False) -> Any:
    """The program of FILE (of ``--kernel`` in a file of several kernels); with ``several``, the
    whole file when no ``--kernel`` is given (a ``Module`` for a file of several kernels)."""
    import tiledsl
    path = Path(args.file)
    if path.is_dir():
        raise UserError(f"cannot read '{args.file}': it is a directory")
    if not path.is_file():
        raise UserError(f"cannot read '{args.file}': no such file")
    params = dict(args.defines)
    params.update(extra or {})
    kernel = getattr(args, "kernel", None)
    try:
        prog = tiledsl.load(path, params=params, kernel=kernel)
    except OSError as e:
        raise UserError(f"cannot read '{args.file}': {e.strerror or e}") from None
    except ArgumentError as e:       # only --kernel can be wrong here
        raise UserError(f"--kernel: {e}") from None
    if isinstance(prog, tiledsl.Module) and not several:
        raise UserError(f"'{args.file}' has {len(prog.kernels)} kernels ({', '.join(prog.names)}): "
                        f"pick one with --kernel NAME")
    return prog


def check_output_path(out: str | None) -> None:
    """Refuse, before any work, an output path that cannot be written: a directory, a read-only
    file (not replaced, even where the directory would allow it), a missing or read-only directory.
    What only the attempt can tell (a full disk, /proc) is reported when writing."""
    if out is None or out == "-":
        return
    target = Path(out)
    if target.is_dir():
        raise UserError(f"cannot write '{out}': it is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise UserError(f"cannot write '{out}': directory '{parent}' does not exist")
    # Permission bits are honoured for root too (who could replace the file or write in the
    # directory anyway): a read-only output is a mistake to report, not to override.
    if target.exists() and not (os.access(target, os.W_OK) and target.stat().st_mode & 0o222):
        raise UserError(f"cannot write '{out}': the file is read-only")
    if not (os.access(parent, os.W_OK | os.X_OK) and parent.stat().st_mode & 0o222):
        raise UserError(f"cannot write '{out}': directory '{parent}' is not writable")


def _write_output(out: str | None, text: str | bytes) -> None:
    """Print to stdout, or write ``out`` atomically (temp file + rename)."""
    if out is None or out == "-":
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
        else:
            sys.stdout.write(text)
        return
    check_output_path(out)
    target = Path(out)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        os.replace(tmp, target)
    except OSError as e:
        raise UserError(f"cannot write '{out}': {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------- commands

@command("check")
def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args, several=True)
    for prog in loaded.kernels.values() if args.kernel is None else [loaded]:
        variants = _dtype_variants(prog)
        for values in variants:
            changed = {k: v for k, v in values.items() if v != prog.dtypes[k]}
            try:
                (prog.specialize(**changed) if changed else prog).lower()
            except TdslError as e:
                e.diagnostics[0].notes.append(f"with {', '.join(f'{k}={v}' for k, v in values.items())} "
                                              "(check tries every dtype a 'dtype ... in (...)' lists)")
                raise
        notes = [f"symbolic {', '.join(prog.unbound_consts)}"] if prog.unbound_consts else []
        open_dtypes = variants[0].keys() if variants and variants[0] else []
        notes += [f"{name} = {', '.join(dict.fromkeys(v[name] for v in variants))}" for name in open_dtypes]
        note = f" (checked with {'; '.join(notes)})" if notes else ""
        print(f"{args.file}: ok: kernel '{prog.name}'{note}")
    return 0


def _dtype_variants(prog: Any) -> list[dict[str, str]]:
    """The dtype parameters' values ``check`` tries: every combination of the values listed by
    the parameters that -D leaves open (``dtype T in (f16, bf16)``; one without a list keeps its
    default: not every dtype makes sense in every kernel). ``[{}]`` when there are none."""
    listed = [d for d in prog.ast.dtype_params if d.name not in prog.params and d.choices]
    choices = [[c.id for c in d.choices] for d in listed]
    return [dict(zip((d.name for d in listed), combo)) for combo in itertools.product(*choices)]


@command("compile")
def cmd_compile(args: argparse.Namespace) -> int:
    from tiledsl.stages import EMITS, STAGES, TILE_PASSES, Options, run_with_context
    check_output_path(args.output)
    prog = _load(args)
    emit = EMITS[args.emit]
    passes = None if args.passes is None else tuple(p for p in args.passes.split(",") if p)
    for p in passes or ():
        if p not in TILE_PASSES:
            raise UserError(f"unknown pass '{p}' (tile-IR passes: {', '.join(sorted(TILE_PASSES))})")
    stage = next(s for s in STAGES if s.name == emit.stage)
    target = _stage_target(args.target, args.no_matrix_cores, stage.target)
    if target is not None and emit.backend is not None and target.backend != emit.backend:
        kind = {"amdgpu": "AMDGPU", "nvptx": "NVPTX"}[emit.backend]
        raise UserError(f"--emit {args.emit} is for {kind} targets")
    hook = _print_ir if args.print_after_all else None
    result, ctx = run_with_context(prog, emit.stage, target, Options(tile_passes=passes, print_ir=hook))
    from tiledsl.backend_amdgpu.codeobject import LinkerNotFound
    from tiledsl.backend_nvptx.ptx import PtxasNotFound
    try:
        out = emit.show(result, ctx)
    except (LinkerNotFound, PtxasNotFound) as e:
        raise UserError(str(e)) from None
    if isinstance(out, bytes) and (args.output is None or args.output == "-") and sys.stdout.isatty():
        raise UserError(f"--emit {args.emit} is binary: write it to a file with -o")
    _write_output(args.output, out)
    return 0


def _print_ir(stage: str, after: str, target: str | None, text: str) -> None:
    where = f"{stage}, {target}" if target else stage
    sys.stderr.write(f"// ----- IR after {after} ({where}) ----- //\n{text}")
    if not text.endswith("\n"):
        sys.stderr.write("\n")


def _stage_target(name: str | None, no_matrix_cores: bool, needs: str | None) -> Any:
    """The target record a stage runs for: ``name`` (gfx942 by default), without matrix
    instructions with --no-matrix-cores; None for a target-independent stage."""
    from tiledsl.targets import NATIVE_TARGETS, TARGETS
    if needs is None:
        return None
    name = name or "gfx942"
    record = TARGETS.get(name)
    if record is None:
        raise UserError(f"unknown target '{name}' (known: {', '.join(TARGETS)})")
    if needs == "native" and not record.native:
        raise UserError(f"cannot compile natively for '{name}' (native targets: {', '.join(NATIVE_TARGETS)})")
    if no_matrix_cores:
        if record.backend != "amdgpu":
            raise UserError("--no-matrix-cores applies to AMDGPU targets")
        record = record.without_matrix()
    return record


def _compile_native(args: argparse.Namespace, prog: Any) -> Any:
    from tiledsl.stages import run_until
    return run_until(prog, "llvm", _stage_target(args.target, args.no_matrix_cores, "native"))


@command("resources")
def cmd_resources(args: argparse.Namespace) -> int:
    prog = _load(args)
    art = _compile_native(args, prog)
    res = art.resources
    print(f"{prog.name} on {art.target}: block {art.block_threads} threads, LDS {art.lds_bytes} bytes")
    print(res.table() if hasattr(res, "table") else res)
    return 0


def _target_name(name: str) -> str:
    from tiledsl.targets import TARGETS
    if name not in TARGETS:
        raise UserError(f"unknown target '{name}' (known: {', '.join(sorted(TARGETS))})")
    return name


_INPUT_DTYPES = {"f16": np.float16, "bf16": np.float32, "f32": np.float32, "i32": np.int32,
                 "f8e4m3": FP8_TYPES["f8e4m3"], "f8e5m2": FP8_TYPES["f8e5m2"], "i8": np.int8, "u8": np.uint8,
                 "i16": np.int16, "u32": np.uint32, "i64": np.int64}


def _check_input_sizes(prog: Any, shapes: dict[str, list[int]]) -> None:
    """Refuse shapes whose inputs (each drawn in float64 first) and interpreter copies do not fit."""
    from tiledsl.interp.limits import check_argument_sizes
    sizes = [(math.prod(shapes[p.name]), np.dtype(_INPUT_DTYPES[p.dtype]).itemsize) for p in prog.tensor_params]
    inputs = sum(n * size for n, size in sizes) + 8 * max((n for n, _ in sizes), default=0)
    check_argument_sizes(prog.tensor_params, shapes, prog.ast.loc, prog.source, allocating=inputs)


def _tensor_shapes(prog: Any, shape: dict[str, int]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for p in prog.tensor_params:
        dims = shapes[p.name] = []
        for d in p.dims:
            if isinstance(d, int):
                dims.append(d)
            elif d in shape:
                dims.append(shape[d])
            elif d in prog.params:
                dims.append(int(prog.params[d]))
            else:
                raise UserError(f"--shape gives no size for dim '{d}' of '{p.name}' (e.g. --shape {d}=64)")
        shapes[p.name] = dims
    return shapes


def _random_inputs(prog: Any, shape: dict[str, int], rng: np.random.Generator,
                   scalar_args: dict[str, float]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    scalars = {p.name for p in prog.scalar_params}
    for name in scalar_args:
        if name not in scalars:
            raise UserError(f"--arg {name}: '{prog.name}' has no scalar parameter '{name}' "
                            f"(its scalars: {', '.join(sorted(scalars)) or 'none'})")
    shapes = _tensor_shapes(prog, shape)
    _check_input_sizes(prog, shapes)
    accumulators = prog.accumulators()
    for p in prog.tensor_params:
        dims = shapes[p.name]
        np_dtype = _INPUT_DTYPES[p.dtype]
        if p.name in accumulators:
            args[p.name] = np.full(dims, _accumulator_start(p, accumulators[p.name]), dtype=np_dtype)
        elif p.out:
            args[p.name] = np.full(dims, np.nan, dtype=np_dtype) if p.dtype not in INT_DTYPES else \
                np.zeros(dims, dtype=np_dtype)
        elif p.dtype in INT_DTYPES:
            args[p.name] = _random_ints(rng, p.dtype, dims)
        elif p.dtype == "bf16":     # values the kernel holds exactly, so the reference sees them too
            from tiledsl.interp.numerics import round_bf16
            args[p.name] = round_bf16(rng.standard_normal(dims).astype(np_dtype))
        else:
            args[p.name] = rng.standard_normal(dims).astype(np.float32).astype(np_dtype)
    for p in prog.scalar_params:
        if p.name in scalar_args:
            args[p.name] = scalar_args[p.name]
        elif p.dtype in INT_DTYPES:
            args[p.name] = 1
        else:
            args[p.name] = float(rng.uniform(0.05, 0.5))
    return args


def _accumulator_start(p: Any, kinds: list[str]) -> float | int:
    """What an out tensor updated atomically starts from: the identity of its updates (0 for
    ``atomic_add``, the lowest value for ``atomic_max``, the highest for ``atomic_min``)."""
    if len(kinds) > 1:
        raise UserError(f"'{p.name}' is updated with {' and '.join('atomic_' + k for k in kinds)}: no one "
                        f"initial value suits both; run the kernel from Python with '{p.name}' initialised")
    kind = kinds[0]
    if kind == "add":
        start: float | int = 0
    elif p.dtype == "i32":
        start = int(np.iinfo(np.int32).min if kind == "max" else np.iinfo(np.int32).max)
    else:
        start = -np.inf if kind == "max" else np.inf
    print(f"{p.name}: updated with atomic_{kind}, starts at {start}")
    return start


def _random_ints(rng: np.random.Generator, dtype: str, dims: list[int]) -> np.ndarray:
    """Bytes over their whole range (packed data: int4 pairs, fp8 bits); wider integers small, as
    indices and counts are (-8..7, or 0..15 unsigned)."""
    lo, hi = int_range(dtype) if DTYPE_BYTES[dtype] == 1 else (0, 15) if dtype in UNSIGNED_DTYPES else (-8, 7)
    return rng.integers(lo, hi, size=dims, endpoint=True).astype(_INPUT_DTYPES[dtype])


def _reference(args: argparse.Namespace, prog: Any) -> Callable[..., Any] | None:
    spec = args.ref
    if spec is None:
        default = Path(args.file).with_name("reference.py")
        if not default.is_file():
            return None
        spec = f"{default}:{prog.name}"
    if ":" not in spec:
        raise UserError(f"--ref must be FILE.py:FUNCTION, got '{spec}'")
    path, func = spec.rsplit(":", 1)
    if not Path(path).is_file():
        raise UserError(f"--ref: cannot read '{path}'")
    mod_spec = importlib.util.spec_from_file_location("tdsl_reference", path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  (whatever the user's module raises is the user's to see)
        raise UserError(f"cannot load the reference '{path}': {type(e).__name__}: {e}" + _user_frames(e)) from None
    fn = getattr(module, func, None)
    if fn is None:
        if args.ref is None:
            return None
        raise UserError(f"--ref: '{path}' has no function '{func}'")
    return fn


def _user_frames(e: BaseException, limit: int = 5) -> str:
    """The last frames of ``e``'s traceback below tdslc's own (the user's code), formatted."""
    frames = traceback.extract_tb(e.__traceback__)
    here = os.path.abspath(__file__)
    mine = [f for f in frames if os.path.abspath(f.filename) != here and not f.filename.startswith("<frozen ")]
    if not mine:
        return ""
    return "\n" + "".join(traceback.format_list(mine[-limit:])).rstrip("\n")


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    out64, ref64 = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if out64.shape != ref64.shape:
        raise UserError(f"the reference returned shape {ref64.shape}, the kernel's output is {out64.shape}")
    if not np.all(np.isfinite(out64)):
        return float("inf")
    denom = np.linalg.norm(ref64)
    return float(np.linalg.norm(out64 - ref64) / (denom if denom > 0 else 1.0))


def compare_outputs(prog: Any, args: dict[str, Any], ref_fn: Callable[..., Any] | None,
                    tol: float | None) -> bool:
    """Print ‖out − ref‖/‖ref‖ per out tensor; True when all are within tolerance."""
    if ref_fn is None:
        print("no reference function: outputs not compared (give --ref FILE.py:FUNC)")
        return True
    inputs = {k: v for k, v in args.items() if k not in {p.name for p in prog.tensor_params if p.out}}
    try:
        ref = ref_fn(**inputs, **prog.params)
    except Exception as e:  # noqa: BLE001  (whatever the user's function raises is the user's to see)
        name = getattr(ref_fn, "__name__", "?")
        raise UserError(f"the reference function {name} raised: {type(e).__name__}: {e}" + _user_frames(e)) from None
    outs = [p for p in prog.tensor_params if p.out]
    if not isinstance(ref, dict):
        ref = {outs[0].name: ref}
    ok = True
    for p in outs:
        if p.name not in ref:
            raise UserError(f"the reference returned no value for '{p.name}'")
        try:
            want = np.asarray(ref[p.name], dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"the reference returned {type(ref[p.name]).__name__} for '{p.name}', "
                            f"not an array of numbers") from None
        err = rel_error(args[p.name], want)
        limit = tol if tol is not None else TOLERANCE[p.dtype]
        good = err <= limit
        ok &= good
        print(f"{p.name}: |out - ref| / |ref| = {err:.3e}  (tolerance {limit:.1e})  {'ok' if good else 'MISMATCH'}")
    return ok


def _program_for_shape(args: argparse.Namespace) -> Any:
    shape = args.shape or {}
    consts = {c.name for c in _load(args).ast.consts}
    return _load(args, {k: v for k, v in shape.items() if k in consts and k not in dict(args.defines)})


def _target_names(backend: str | None = "any") -> str:
    """The names of the targets of ``backend`` ("any": every target, "native": every one with a
    backend, "amdgpu"/"nvptx": that backend's), for help texts and messages."""
    from tiledsl.targets import TARGETS
    return ", ".join(n for n, t in TARGETS.items()
                     if backend == "any" or (backend == "native" and t.native) or t.backend == backend)


def _gpu_target(args: argparse.Namespace) -> str:
    from tiledsl.targets import TARGETS
    target = args.target or "sm_90"
    if target not in TARGETS or TARGETS[target].backend != "nvptx":
        raise UserError(f"--device cuda runs NVPTX targets ({_target_names('nvptx')}), not '{target}'")
    return target


_FP8_NUMPY = tuple(np.dtype(t) for t in FP8_TYPES.values())


def _to_gpu(inputs: dict[str, Any], prog: Any) -> dict[str, Any]:
    try:
        import cupy
    except ImportError:
        raise UserError("--device cuda needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)") from None
    host = device_layout(prog, inputs)
    return {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in host.items()}


def device_layout(prog: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The host arrays as the GPU is to hold them: a bf16 tensor's values (f32 arrays, from
    ``_random_inputs``) as their 16-bit patterns and fp8 arrays as their bytes, since CuPy has
    neither type."""
    bf16 = {p.name for p in prog.tensor_params if p.dtype == "bf16"}
    return {k: bf16_bits(v) if k in bf16 else v.view(np.uint8) if isinstance(v, np.ndarray) and v.dtype in _FP8_NUMPY
            else v for k, v in inputs.items()}


def bf16_bits(x: np.ndarray) -> np.ndarray:
    from tiledsl.interp.numerics import round_bf16
    return (round_bf16(x).view(np.uint32) >> 16).astype(np.uint16)


def bf16_values(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _run_on_gpu(args: argparse.Namespace, prog: Any, inputs: dict[str, Any]) -> None:
    from tiledsl.runtime.cuda import LaunchError
    kernel = prog.compile(target=_gpu_target(args)).launcher()
    gpu = _to_gpu(inputs, prog)
    try:
        kernel(**gpu)
    except LaunchError as e:
        raise UserError(str(e)) from None
    for p in prog.tensor_params:
        if p.out:
            out = gpu[p.name].get()
            inputs[p.name][...] = bf16_values(out) if p.dtype == "bf16" else out.view(inputs[p.name].dtype)
    print(f"ran '{prog.name}' on the GPU ({_gpu_target(args)})")


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    shape = args.shape or {}
    prog = _program_for_shape(args)
    rng = np.random.default_rng(args.seed)
    inputs = _random_inputs(prog, shape, rng, dict(args.arg))
    ref_fn = _reference(args, prog)
    if args.device == "cuda":
        if args.level != "block":
            raise UserError("--level applies to the interpreters, not to --device cuda")
        _run_on_gpu(args, prog, inputs)
        return 0 if compare_outputs(prog, inputs, ref_fn, args.tol) else 1
    target = _target_name(args.target) if args.target else None
    report = prog.interpret(level=args.level, target=target, shuffle_blocks=args.shuffle_blocks,
                            nan_fill=args.nan_fill, seed=args.seed, **inputs)
    print(report)
    ok = report.ok
    ok &= compare_outputs(prog, inputs, ref_fn, args.tol)
    return 0 if ok else 1


@command("tiles")
def cmd_tiles(args: argparse.Namespace) -> int:
    from tiledsl.viz.cli_tiles import cmd_tiles as run
    return run(args)


@command("bench")
def cmd_bench(args: argparse.Namespace) -> int:
    from tiledsl.runtime.cuda import LaunchError
    from tiledsl.tune import BATCH, time_launch
    prog = _program_for_shape(args)
    inputs = _random_inputs(prog, args.shape or {}, np.random.default_rng(args.seed), dict(args.arg))
    inputs = _to_gpu(inputs, prog)
    kernel = prog.compile(target=_gpu_target(args)).launcher()
    try:
        ms = time_launch(kernel, inputs, warmup=args.warmup, reps=args.reps)
    except LaunchError as e:
        raise UserError(str(e)) from None
    line = (f"{prog.name} on {_gpu_target(args)}: median {ms:.4f} ms a launch "
            f"({max(1, args.reps // BATCH) * BATCH} launches, timed in batches of {BATCH})")
    if args.flops:
        try:   # an arithmetic expression of the user's own dims and params
            flops = float(eval(args.flops, {"__builtins__": {}}, {**(args.shape or {}), **prog.params}))
        except (SyntaxError, NameError, TypeError, ValueError, ZeroDivisionError) as e:
            raise UserError(f"--flops: cannot evaluate '{args.flops}': {e}") from None
        line += f", {flops / ms / 1e9:.1f} TFLOP/s"
    print(line)
    return 0


@command("tune")
def cmd_tune(args: argparse.Namespace) -> int:
    from tiledsl.tune import cache_path, tune
    shape = args.shape or {}
    prog = _program_for_shape(args)
    space = dict(args.space)
    if not space:
        raise UserError("give the search space: --space BM=64,128 --space BN=32,64")
    inputs = _to_gpu(_random_inputs(prog, shape, np.random.default_rng(args.seed), dict(args.arg)), prog)
    # The dtype parameters' values are in the key whether given or defaults: f16 and bf16 differ.
    key = {**shape, **{k: v for k, v in prog.params.items() if k not in space}, **prog.dtypes}
    best, ms, results = tune(prog, space, inputs, key, target=_gpu_target(args))
    for params, t in results:
        print(f"  {params}: {t if isinstance(t, str) else f'{t:.4f} ms'}")
    print(f"best {best}: {ms:.4f} ms (cached in {cache_path()})")
    return 0


def _space(text: str) -> tuple[str, list[int]]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got '{text}'")
    name, values = text.split("=", 1)
    try:
        return name, [int(v) for v in values.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"values of {name} must be integers") from None


def _add_gpu_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    p.add_argument("--device", choices=["cuda"], default="cuda", help="where to run (an NVIDIA GPU through CuPy)")
    p.add_argument("--target", default=None, help=f"{_target_names('nvptx')} (default sm_90; sm_90a runs on "
                                                  "H100/H200 only: dots whose operands sit in LDS become wgmma)")
    p.add_argument("--shape", type=_shape, metavar="DIM=N,...", help="sizes of the tensor dims")
    p.add_argument("--arg", action="append", type=_number, default=[], metavar="NAME=VALUE",
                   help="value of a scalar parameter")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs")
    _add_defines(p)
    add_kernel_flag(p)


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdslc", description="tiledsl compiler driver: check, compile and run .tdsl tile programs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'tdslc COMMAND --help' for the flags of each command.\n\n"
               "exit codes:\n"
               f"  {EXIT_OK}  success\n"
               f"  {EXIT_ERROR}  an error in the program or its inputs (file:line:col), or a failed check or\n"
               "     comparison (tdslc run)\n"
               f"  {EXIT_USAGE}  a malformed command line\n"
               f"  {EXIT_INTERNAL}  an internal compiler error: a bug in tiledsl (please report it; --traceback\n"
               "     shows where)")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the versions of tiledsl, Python, llvmlite and LLVM, and the ld.lld and "
                             "ptxas found, then exit")
    parser.add_argument("--traceback", action="store_true",
                        help="on an internal compiler error, also print the full Python traceback "
                             "(for tiledsl's developers)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="parse and check a program; report errors as file:line:col",
                       description="Parse and check FILE (syntax, shapes, dtypes, levels), every kernel "
                                   "of it. Consts without a value are checked symbolically. Exit 0 when the "
                                   "program is valid, 1 otherwise.")
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    _add_defines(p)
    add_kernel_flag(p, "check only this kernel (default: every kernel of the file)")

    p = sub.add_parser("compile", help="print a program at a stage of the pipeline (AST, tile IR, ...)",
                       description="Compile FILE and print the result of one stage.")
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    from tiledsl.stages import EMITS
    p.add_argument("--emit", choices=list(EMITS), default="ir",
                   help="run the pipeline until this output and write it: "
                        + ", ".join(f"'{e.name}' = {e.doc}" for e in EMITS.values()) + " (default: ir)")
    p.add_argument("--target", default=None,
                   help=f"target (default gfx942): {_target_names()}; native code for {_target_names('native')}")
    p.add_argument("--no-matrix-cores", action="store_true",
                   help="AMDGPU: compute dot with FMAs instead of MFMA/WMMA")
    p.add_argument("-o", dest="output", metavar="OUT", type=_output_path,
                   help="write to OUT instead of stdout (atomically; '-' is stdout)")
    p.add_argument("--passes", metavar="P1,P2", default=None,
                   help=f"comma-separated tile IR passes to run (default: {','.join(_default_passes())}; "
                        "'' for none)")
    p.add_argument("--print-after-all", action="store_true",
                   help="print the IR after every pass of every stage that runs (tile IR, layout IR, thread IR, "
                        "LLVM) to stderr")
    _add_defines(p)
    add_kernel_flag(p)

    p = sub.add_parser("resources", help="compile and report registers, spills, scratch, LDS and occupancy",
                       description="Compile FILE for --target and print the resources read from the code "
                                   "object's metadata (AMDGPU) or from ptxas (NVPTX).")
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    p.add_argument("--target", default="gfx942", help=f"{_target_names('native')} (default gfx942)")
    p.add_argument("--no-matrix-cores", action="store_true", help="AMDGPU: FMAs instead of MFMA/WMMA")
    _add_defines(p)
    add_kernel_flag(p)

    p = sub.add_parser("run", help="interpret a program on random inputs and compare with a NumPy reference",
                       description="Make random inputs for the given shape, interpret FILE, check bounds, LDS "
                                   "and output coverage, and compare every out tensor with a reference "
                                   "(|out-ref|/|ref|). Exit 1 on a mismatch or a failed check.")
    p.add_argument("file", metavar="FILE", help="the .tdsl program")
    p.add_argument("--shape", type=_shape, metavar="DIM=N,...",
                   help="sizes of the tensor dims, e.g. Z=1,H=2,N=200,D=64 (consts among them are compile-time)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--ref", metavar="PY:FUNC",
                   help="reference function FILE.py:NAME taking the inputs and params by name and returning "
                        "the out tensor (or a dict of them); default: reference.py beside FILE, function "
                        "named like the kernel (the --kernel chosen, in a file of several)")
    p.add_argument("--arg", action="append", type=_number, default=[], metavar="NAME=VALUE",
                   help="value of a scalar parameter (default: random in [0.05, 0.5) for floats, 1 for ints)")
    p.add_argument("--tol", type=float, default=None,
                   help="relative error tolerance (default by dtype: f32 1e-4, f16 2e-3, bf16 1.6e-2, "
                        "f8e4m3 7e-2, f8e5m2 1.4e-1, integers exact)")
    p.add_argument("--level", choices=["block", "thread"], default="block",
                   help="interpreter level: 'block' (tile IR) or 'thread' (SIMT thread IR)")
    p.add_argument("--device", choices=["interp", "cuda"], default="interp",
                   help="'interp' (default): the NumPy interpreters; 'cuda': compile for --target "
                        "(sm_90 by default) and run on the GPU")
    p.add_argument("--target", default=None,
                   help=f"target for --level thread (default gfx942): {_target_names()}; for --device cuda "
                        f"(default sm_90): {_target_names('nvptx')}")
    p.add_argument("--shuffle-blocks", action="store_true",
                   help="thread level: run the blocks in a random order (seeded by --seed)")
    p.add_argument("--nan-fill", action="store_true",
                   help="thread level: fill uninitialised LDS with NaN so reads of it poison the result")
    _add_defines(p)
    add_kernel_flag(p)

    p = sub.add_parser("bench", help="time a kernel on the GPU (CUDA events, warm-up, median of many runs)",
                       description="Compile FILE for an NVIDIA target, launch it on random inputs of --shape "
                                   "and print the median time (and TFLOP/s with --flops).")
    _add_gpu_run_flags(p)
    p.add_argument("--warmup", type=int, default=10, help="untimed launches first (default 10)")
    from tiledsl.tune import BATCH
    p.add_argument("--reps", type=int, default=100,
                   help=f"timed launches, in batches of {BATCH} back-to-back launches between CUDA events; "
                        "the median batch is reported (default 100)")
    p.add_argument("--flops", metavar="EXPR",
                   help="FLOPs as an expression of the dims and params, e.g. '4*Z*H*N*N*D'")

    p = sub.add_parser("tune", help="pick tile parameters by timing them on the GPU; cache the best on disk",
                       description="Time every combination of --space values on the GPU, time the three "
                                   "fastest again in three round-robin rounds, and remember the best per "
                                   "kernel and shape in $XDG_CACHE_HOME/tiledsl/tune.json (used by "
                                   "tdslc bench and bench/attention_gpu.py).")
    _add_gpu_run_flags(p)
    p.add_argument("--space", action="append", type=_space, default=[], metavar="NAME=V1,V2",
                   help="values to try for a tile parameter (repeatable), e.g. --space BM=64,128")

    from tiledsl.viz.cli_tiles import add_tiles_parser
    add_tiles_parser(sub)
    for p in sub.choices.values():      # also after the command; SUPPRESS keeps the global value
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help="on an internal compiler error, also print the full Python traceback")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TdslError as e:
        prefix = "" if e.loc is not None else "tdslc: "
        sys.stderr.write(prefix + e.format() + "\n")
        return EXIT_ERROR
    except (UserError, ArgumentError) as e:
        sys.stderr.write(f"tdslc: error: {e}\n")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write("tdslc: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001  (anything else is our bug: reported as one, never a bare traceback)
        ice = e if isinstance(e, InternalCompilerError) else InternalCompilerError(
            args.command, e, target=getattr(args, "target", None))
        sys.stderr.write(("tdslc: " if ice.loc is None else "") + ice.format() + "\n")
        if args.traceback:
            sys.stderr.write("".join(traceback.format_exception(e)))
        else:
            sys.stderr.write("  note: run again with --traceback to see where it failed\n")
        return EXIT_INTERNAL


# ---------------------------------------------------------------- --version

class _VersionAction(argparse.Action):
    """``--version``: computed when asked (it imports llvmlite and runs the tools it finds)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from tiledsl.toolchain import version_report
        sys.stdout.write(version_report())
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
