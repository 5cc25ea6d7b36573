"""A small autotuner: time a kernel over a space of tile parameters on the GPU and
remember the best per (kernel, target, GPU, shape) in a JSON cache on disk.

    tdslc tune examples/attention.tdsl --shape Z=8,H=16,N=4096,D=128 --space BM=64,128 --space BN=32,64,128

The cache lives in ``$XDG_CACHE_HOME/tiledsl/tune.json`` (``~/.cache/...`` by default).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from tiledsl.diagnostics import TdslError


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tiledsl" / "tune.json"


def _key(kernel: str, shape: dict[str, Any], target: str) -> str:
    return f"{kernel}@{target}:" + ",".join(f"{k}={shape[k]}" for k in sorted(shape))


def load_cache() -> dict[str, Any]:
    p = cache_path()
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def best_params(kernel: str, shape: dict[str, Any], target: str = "sm_90") -> dict[str, int] | None:
    """The tuned tile parameters for ``kernel`` at ``shape`` (dims and consts) on ``target``, if any."""
    entry = load_cache().get(_key(kernel, shape, target))
    return dict(entry["params"]) if entry else None


def store(kernel: str, shape: dict[str, Any], params: dict[str, int], ms: float, device: str,
          target: str = "sm_90") -> None:
    cache = load_cache()
    cache[_key(kernel, shape, target)] = {"params": params, "ms": ms, "device": device}
    p = cache_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp, p)


#: Launches between two CUDA events in ``time_launch``.
BATCH = 5


def time_launch(kernel: Any, args: dict[str, Any], warmup: int = 5, reps: int = 30, batch: int = BATCH) -> float:
    """Median milliseconds of a launch, timed with CUDA events over batches of ``batch``
    back-to-back launches (``reps`` launches in all, at least one batch).

    Events around one launch followed by a synchronisation would time the host's work of the
    next launch too (the GPU idles while Python prepares it): a kernel of half a millisecond
    measured a third slower that way. Within a batch the launches queue ahead of the GPU.
    """
    import cupy
    for _ in range(warmup):
        kernel(**args)
    times = []
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
            times[k].append(time_launch(kern, args, reps=CONFIRM_REPS))
    medians = {k: sorted(t)[len(t) // 2] for k, t in times.items()}
    best = min(medians, key=medians.__getitem__)
    return best, medians[best]


def tune(program: Any, space: dict[str, list[int]], args: dict[str, Any], shape_key: dict[str, Any],
         target: str = "sm_90") -> tuple[dict[str, int], float, list[tuple[dict[str, int], float | str]]]:
    """Time every point of ``space``, then the ``FINALISTS`` fastest again (``confirm``); store
    and return the best params, its time and every point's first time."""
    import cupy
    results: list[tuple[dict[str, int], float | str]] = []
    launchers: dict[tuple[tuple[str, int], ...], Any] = {}
    first: list[tuple[float, tuple[tuple[str, int], ...]]] = []
    names = sorted(space)
    for values in itertools.product(*(space[n] for n in names)):
        params = dict(zip(names, values))
        try:
            kern = program.specialize(**params).compile(target=target).launcher()
            ms = time_launch(kern, args)
        except (TdslError, ValueError, RuntimeError) as e:  # an unfit point (too much LDS, ...) is skipped
            results.append((params, f"skipped: {str(e).splitlines()[0][:80]}"))
            continue
        results.append((params, ms))
        launchers[tuple(params.items())] = kern
        first.append((ms, tuple(params.items())))
    if not launchers:
        raise ValueError("no point of the search space compiled and ran")
    finalists = {key: launchers[key] for _, key in sorted(first)[:FINALISTS]}
    key, ms = confirm(finalists, args)
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    store(program.name, shape_key, dict(key), ms, device, target)
    return dict(key), ms, results
