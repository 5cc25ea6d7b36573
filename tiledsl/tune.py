"""Autotuning: time a kernel over a space of tile parameters on the GPU and keep the best per
(source, kernel, target, GPU, shape) in a JSON file that launchers and ``tdslc bench`` read.

The space is declared with the kernel, in its header::

    param BM = 128, BN = 64, WAVES = 4
    tune BM in (64, 128), BN in (32, 64, 128)

``tdslc tune FILE --shape ...`` tries every point of it (``--space BM=64,128`` replaces an axis),
``program.launcher(target, autotune=True)`` tunes on the first call for each new shape (as
``@triton.autotune``) and every launcher uses what is kept; ``TDSL_PRINT_AUTOTUNING=1`` prints each
choice. An entry is keyed by a hash of the source text (an edited kernel is tuned anew), the
kernel's name, the target, the GPU's name and the shape key: the run-time dims and every
compile-time value that is not tuned (consts such as D, fixed params, dtypes).

The file is ``$TDSL_CACHE_DIR/tune.json`` (``~/.cache/tiledsl/tune.json``); writers hold a file lock
(``filelock``) around read-modify-write, so concurrent tuners do not drop each other's entries.
The points are compiled first, in parallel (a process pool over all CPU cores), then timed one
after another with the L2 cache flushed before each launch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tiledsl.diagnostics import InternalCompilerError, TdslError

#: Set to 1 to print each configuration a launcher picks (and where it came from).
ENV_PRINT = "TDSL_PRINT_AUTOTUNING"


def cache_path() -> Path:
    from tiledsl.cache import cache_dir
    return cache_dir() / "tune.json"


def source_hash(program: Any) -> str:
    return hashlib.sha256(program.source.text.encode()).hexdigest()[:16]


def tune_key(program: Any, shape: Mapping[str, Any], target: str, device: str) -> str:
    """The key of an entry: kernel, target, GPU, source hash and shape key (sorted ``NAME=VALUE``)."""
    return (f"{program.name}@{target}@{device}@{source_hash(program)}:"
            + ",".join(f"{k}={shape[k]}" for k in sorted(shape)))


def shape_key(program: Any, dims: Mapping[str, int]) -> dict[str, Any]:
    """The shape key of a launch of ``program`` (already bound to its arguments): the run-time
    dims, the compile-time values it fixes (consts such as D, params given; never a tuned one,
    which :func:`space_of` leaves out of the space when fixed) and the dtypes."""
    return {**dims, **program.params, **program.dtypes}


def space_of(program: Any, overrides: Mapping[str, list[int]] | None = None) -> dict[str, list[int]]:
    """The tuning space: the kernel's ``tune`` declaration, axes replaced or added by ``overrides``,
    without the params the program fixes (``params=`` / ``-D``)."""
    space = {axis.name: list(axis.values) for axis in program.ast.tune_space}
    space.update(overrides or {})
    return {k: v for k, v in space.items() if k not in program.params}


def load_cache() -> dict[str, Any]:
    p = cache_path()
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def best_params(program: Any, shape: Mapping[str, Any], target: str, device: str) -> dict[str, int] | None:
    """The tuned tile parameters for ``program`` at ``shape`` on ``target`` and GPU ``device``, if any."""
    entry = load_cache().get(tune_key(program, shape, target, device))
    return dict(entry["params"]) if entry else None


def store(program: Any, shape: Mapping[str, Any], params: Mapping[str, int], ms: float, device: str,
          target: str) -> None:
    """Keep ``params`` as the best for this key; read-modify-write under the file's lock."""
    from filelock import FileLock
    p = cache_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(p) + ".lock"):
        cache = load_cache()
        cache[tune_key(program, shape, target, device)] = {
            "kernel": program.name, "target": target, "device": device, "shape": dict(shape),
            "params": dict(params), "ms": ms}
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, p)


def device_name() -> str:
    """The name of the current CUDA device (e.g. ``NVIDIA H200``)."""
    import cupy
    return cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()


def report(kernel: str, target: str, shape: Mapping[str, Any], params: Mapping[str, int], how: str) -> None:
    """``TDSL_PRINT_AUTOTUNING=1``: one line per choice, on stderr."""
    if os.environ.get(ENV_PRINT, "0") not in ("", "0"):
        where = ", ".join(f"{k}={v}" for k, v in sorted(shape.items()))
        chosen = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "the kernel's defaults"
        print(f"tiledsl autotune: {kernel} on {target} at {where}: {chosen} ({how})", file=sys.stderr)


# ------------------------------------------------------------------------------------------ timing

#: Launches between two CUDA events in ``time_launch``'s batches.
BATCH = 5
#: Bytes written before each timed launch when flushing L2 (H100/H200 have 50/60 MiB of L2).
FLUSH_BYTES = 256 * 2**20


def time_launch(kernel: Any, args: dict[str, Any], warmup: int = 5, reps: int = 30, batch: int = BATCH,
                flush_l2: bool = False) -> float:
    """Median milliseconds of a launch.

    Without ``flush_l2``: timed with CUDA events over batches of ``batch`` back-to-back launches
    (``reps`` in all, at least one batch). Events around one launch followed by a synchronisation
    would time the host's work of the next launch too (the GPU idles while Python prepares it):
    a kernel of half a millisecond measured a third slower that way. Within a batch the launches
    queue ahead of the GPU.

    With ``flush_l2``: each launch is timed alone, after a ``FLUSH_BYTES`` memset that evicts the
    inputs from L2 (as ``triton.testing.do_bench``), so that every point of a sweep starts cold;
    the memset keeps the GPU busy while the host prepares the launch.
    """
    import cupy
    for _ in range(warmup):
        kernel(**args)
    times = []
    if flush_l2:
        scratch = cupy.empty(FLUSH_BYTES, dtype=cupy.uint8)
        events = []
        for _ in range(max(1, reps)):
            scratch.fill(0)
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            kernel(**args)
            end.record()
            events.append((start, end))
        events[-1][1].synchronize()
        times = sorted(cupy.cuda.get_elapsed_time(s, e) for s, e in events)
        return times[len(times) // 2]
    for _ in range(max(1, reps // batch)):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(batch):
            kernel(**args)
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / batch)
    times.sort()
    return times[len(times) // 2]


#: The fastest points of a sweep that are timed again, round-robin, before one is chosen: points
#: timed minutes apart see different GPU clocks, and a few percent decide between them.
FINALISTS = 3
ROUNDS = 3


#: Launches a finalist is timed with in each round: a few percent decide, so more than a sweep's.
CONFIRM_REPS = 100


def confirm(kernels: dict[Any, Any], args: dict[str, Any], rounds: int = ROUNDS) -> tuple[Any, float]:
    """The key of the fastest of ``kernels`` (key -> launcher) and its median time, each kernel
    timed once per round, ``rounds`` rounds, so that all of them see the same clock drift."""
    times: dict[Any, list[float]] = {k: [] for k in kernels}
    for _ in range(rounds):
        for k, kern in kernels.items():
            times[k].append(time_launch(kern, args, reps=CONFIRM_REPS, flush_l2=True))
    medians = {k: sorted(t)[len(t) // 2] for k, t in times.items()}
    best = min(medians, key=medians.__getitem__)
    return best, medians[best]


# ------------------------------------------------------------------------------------------ compiling

def _compile_point(source: str, kernel: str | None, params: dict[str, Any], target: str
                   ) -> Any:
    """One point of the space, compiled in a worker process: the Artifact (without what does not
    travel between processes: the thread IR and the target record), or the reason it does not
    compile (a point may not fit: too much LDS, too many registers)."""
    from tiledsl.program import Module, load
    try:
        prog = load(source, kernel=kernel)       # the text the tuner read, even if the file changed since
        if isinstance(prog, Module):
            raise prog.pick_one()
        art = prog.specialize(**params).compile(target=target)
    except (TdslError, InternalCompilerError, ValueError, RuntimeError) as e:
        return f"skipped: {str(e).splitlines()[0][:80]}"
    return dataclasses.replace(art, thread_kernel=None, record=None)


def compile_points(program: Any, points: list[dict[str, int]], target: str, jobs: int | None = None
                   ) -> list[Any]:
    """Each point's Artifact (or the reason it was skipped), compiled in a pool of ``jobs``
    processes (default: every CPU core). Workers are spawned, not forked: the tuner's process
    holds a CUDA context, which a forked child must not touch. They share the compile cache, so
    a point compiled before (by a launcher, an earlier tune) is read, not compiled."""
    jobs = jobs or os.cpu_count() or 1
    kernel = program.name if len(program.kernels) > 1 else None
    base = {**program.params}
    calls = [(program.source.text, kernel, {**base, **p}, target) for p in points]
    if jobs == 1 or len(points) == 1:
        return [_compile_point(*c) for c in calls]
    import multiprocessing
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_compile_point, *zip(*calls)))


def points_of(space: Mapping[str, list[int]]) -> list[dict[str, int]]:
    names = sorted(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]


def tune(program: Any, space: dict[str, list[int]], args: dict[str, Any], shape: dict[str, Any],
         target: str = "sm_90", jobs: int | None = None
         ) -> tuple[dict[str, int], float, list[tuple[dict[str, int], float | str]]]:
    """Compile every point of ``space`` in parallel, time each (L2 flushed), then the
    ``FINALISTS`` fastest again (``confirm``); store and return the best params, its time and
    every point's first time (or why it was skipped)."""
    from tiledsl.runtime.cuda import CudaKernel, LaunchError
    points = points_of(space)
    results: list[tuple[dict[str, int], float | str]] = []
    launchers: dict[tuple[tuple[str, int], ...], Any] = {}
    first: list[tuple[float, tuple[tuple[str, int], ...]]] = []
    for params, art in zip(points, compile_points(program, points, target, jobs)):
        if isinstance(art, str):
            results.append((params, art))
            continue
        kern = CudaKernel(art)
        try:
            ms = time_launch(kern, args, flush_l2=True)
        except (LaunchError, ValueError, RuntimeError) as e:     # e.g. too much shared memory to launch
            results.append((params, f"skipped: {str(e).splitlines()[0][:80]}"))
            continue
        results.append((params, ms))
        launchers[tuple(params.items())] = kern
        first.append((ms, tuple(params.items())))
    if not launchers:
        raise ValueError("no point of the search space compiled and ran")
    finalists = {key: launchers[key] for _, key in sorted(first)[:FINALISTS]}
    key, ms = confirm(finalists, args)
    store(program, shape, dict(key), ms, device_name(), target)
    return dict(key), ms, results


# ------------------------------------------------------------------------------------------ launchers

#: What launchers of this process chose: (id of the bound program, dims, target, autotune) ->
#: (that program, the program to run). Decided once per program, shape and target in a process.
_CHOSEN: dict[tuple, tuple[Any, Any]] = {}


def choose(program: Any, dims: Mapping[str, int], target: str, args: dict[str, Any], autotune: bool) -> Any:
    """The program a launcher runs for a launch of ``program`` (bound to the arguments, run-time
    ``dims``): specialised with the kept tuning of its key if there is one; else, with
    ``autotune`` and a tuning space, tuned now on ``args`` (the out tensors that the kernel updates
    atomically are restored afterwards); else ``program`` itself."""
    memo = (id(program), tuple(sorted(dims.items())), target, autotune)
    hit = _CHOSEN.get(memo)
    if hit is not None and hit[0] is program:
        return hit[1]
    chosen = program
    space = space_of(program)
    if (autotune and space) or cache_path().is_file():
        shape = shape_key(program, dims)
        device = device_name()
        best = best_params(program, shape, target, device)
        how = "kept from an earlier tuning"
        if best is None and autotune and space:
            saved = {name: _copy(args[name]) for name in program.accumulators()}
            best, ms, _ = tune(program, space, args, shape, target)
            for name, value in saved.items():
                _restore(args[name], value)
            how = f"tuned now on {device}: {ms:.4f} ms"
        elif best is None:
            how = "not tuned" + ("" if space else ": no tune space")
        best = {k: v for k, v in (best or {}).items() if k not in program.params}
        report(program.name, target, shape, best, how)
        chosen = program.specialize(**best) if best else program
    _CHOSEN[memo] = (program, chosen)
    return chosen


def _copy(x: Any) -> Any:
    return x.clone() if hasattr(x, "clone") else x.copy()


def _restore(x: Any, saved: Any) -> None:
    if hasattr(x, "copy_"):
        x.copy_(saved)
    else:
        x[...] = saved
