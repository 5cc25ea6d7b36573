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


def _key(kernel: str, shape: dict[str, Any]) -> str:
    return kernel + ":" + ",".join(f"{k}={shape[k]}" for k in sorted(shape))


def load_cache() -> dict[str, Any]:
    p = cache_path()
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def best_params(kernel: str, shape: dict[str, Any]) -> dict[str, int] | None:
    """The tuned tile parameters for ``kernel`` at ``shape`` (dims and consts), if any.
    An exact shape match wins; otherwise the entry with the same consts and nearest N."""
    entry = load_cache().get(_key(kernel, shape))
    return dict(entry["params"]) if entry else None


def store(kernel: str, shape: dict[str, Any], params: dict[str, int], ms: float, device: str) -> None:
    cache = load_cache()
    cache[_key(kernel, shape)] = {"params": params, "ms": ms, "device": device}
    p = cache_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp, p)


def time_launch(kernel: Any, args: dict[str, Any], warmup: int = 5, reps: int = 30, batch: int = 5) -> float:
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


def tune(program: Any, space: dict[str, list[int]], args: dict[str, Any], shape_key: dict[str, Any],
         target: str = "sm_90") -> tuple[dict[str, int], float, list[tuple[dict[str, int], float | str]]]:
    """Try every point of ``space``; return the best params, its time and all results."""
    import cupy
    results: list[tuple[dict[str, int], float | str]] = []
    best: tuple[dict[str, int], float] | None = None
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
        if best is None or ms < best[1]:
            best = (params, ms)
    if best is None:
        raise ValueError("no point of the search space compiled and ran")
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    store(program.name, shape_key, best[0], best[1], device)
    return best[0], best[1], results
