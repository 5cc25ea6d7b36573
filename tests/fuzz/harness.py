"""One program, every stage, one verdict: what the generated tests, the mutation tests and
``python -m tests.fuzz.explore`` share."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, settings

import tiledsl

from .features import ir_features
from .programs import Generated
from .stages import COMPILE_TARGETS, THREAD_TARGETS, Outcome, run_stages
from .triage import KnownBug, known_bug, signature


@dataclass
class Verdict:
    """The outcomes of one program's stages and, for each failure, the known bug it is."""

    source: str
    params: dict[str, int]
    dims: dict[str, int]
    seed: int
    features: set[str]
    outcomes: list[Outcome]
    failures: list[tuple[Outcome, KnownBug | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.failures = [(o, known_bug(o, self.features)) for o in self.outcomes if o.status == "fail"]

    @property
    def new(self) -> list[Outcome]:
        """Failures that are no known bug."""
        return [o for o, bug in self.failures if bug is None]

    @property
    def known(self) -> list[KnownBug]:
        return [bug for _, bug in self.failures if bug is not None]

    def report(self) -> str:
        lines = [self.source, f"params={self.params} dims={self.dims} seed={self.seed}",
                 f"features: {', '.join(sorted(self.features)) or '-'}"]
        for o in self.outcomes:
            bug = known_bug(o, self.features) if o.status == "fail" else None
            lines.append(f"  {o}" + (f"   [known: {bug.key}, {bug.branch}]" if bug else ""))
        return "\n".join(lines)


def evaluate(g: Generated, thread_targets: tuple[str, ...] = THREAD_TARGETS,
             compile_targets: tuple[str, ...] = COMPILE_TARGETS) -> Verdict:
    """Run a generated program through every stage against its oracle. A generated program is
    legal, so ``load`` refusing it is a failure too (of sema or of the generator)."""
    arrays, scalars = g.arguments()
    oracle = g.oracle(arrays, scalars)
    variants = {"min-as-sum": g.oracle(arrays, scalars, min_reduce_as_sum=True)} if "min_reduce" in g.features \
        else None
    outcomes = run_stages(g.source, g.params, arrays, scalars, g.outputs, oracle, variants,
                          thread_targets, compile_targets)
    if outcomes[0].status == "rejected":
        outcomes[0].status, outcomes[0].kind = "fail", "refused"
    return Verdict(g.source, g.params, g.dims, g.seed, g.features, outcomes)


# ---------------------------------------------------------------- programs given as text

def random_arguments(prog: tiledsl.Program, dims: dict[str, int], seed: int
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, str]]:
    """Inputs for any program: normal floats, small non-negative integers, NaN-filled outputs.
    ``dims`` gives run-time sizes; missing ones are drawn from 1..70 for a tensor's last two
    dims, from 1..2 for its leading ones and from 1..3 for one that is a grid extent by itself
    (batch and heads: a few blocks, not thousands);
    compile-time dims come from the program's parameters."""
    rng = np.random.default_rng(seed)
    sizes = dict(dims)
    grid = re.search(r"^\s*grid\s*\((.*)\)\s*as", prog.source.text, re.MULTILINE)
    for extent in grid.group(1).split(",") if grid else ():
        if re.fullmatch(r"\s*[A-Za-z_]\w*\s*", extent):      # a dim that is a grid extent: a few blocks
            sizes.setdefault(extent.strip(), int(rng.integers(1, 4)))
    known = {**prog.tile_ir().attrs["params"]}
    arrays: dict[str, np.ndarray] = {}
    outputs: dict[str, str] = {}
    for p in prog.tensor_params:
        shape = []
        for axis, d in enumerate(p.dims):
            if isinstance(d, int):
                shape.append(d)
            elif d in known:
                shape.append(int(known[d]))
            else:
                leading = axis < len(p.dims) - 2
                shape.append(sizes.setdefault(d, int(rng.integers(1, 3 if leading else 71))))
        np_dtype = {"f16": np.float16, **INT_NUMPY}.get(p.dtype, np.float32)
        if p.out:
            sentinel = np.nan if p.dtype not in INT_NUMPY else -7777 if p.dtype == "i32" else np.iinfo(np_dtype).max
            arrays[p.name] = np.full(shape, sentinel, np_dtype)
            outputs[p.name] = p.dtype
        elif p.dtype in INT_NUMPY:
            arrays[p.name] = rng.integers(0, 5, size=shape).astype(np_dtype)
        else:
            arrays[p.name] = rng.standard_normal(shape).astype(np_dtype)
    scalars: dict[str, Any] = {}
    for p in prog.scalar_params:
        scalars[p.name] = int(rng.integers(1, 5)) if p.dtype in INT_NUMPY else float(rng.uniform(0.1, 1.0))
    return arrays, scalars, outputs


def evaluate_source(source: str, params: dict[str, int] | None = None, dims: dict[str, int] | None = None,
                    seed: int = 0, thread_targets: tuple[str, ...] = THREAD_TARGETS,
                    compile_targets: tuple[str, ...] = COMPILE_TARGETS, lenient: bool = False) -> Verdict:
    """Run a program given as text through every stage (no oracle: the thread level is compared
    with the block level). A program ``load`` refuses ends there, as the language allows;
    ``lenient``: the program may be wrong (see run_stages)."""
    params = dict(params or {})
    try:
        prog = tiledsl.load(source, params=params)
    except tiledsl.TdslError:
        prog = None
    if prog is not None and prog.unbound_consts:
        params.update({c: 16 for c in prog.unbound_consts})
        prog = tiledsl.load(source, params=params)
    if prog is None:
        outcomes = run_stages(source, params, {}, {}, {}, None, None, (), ())
        return Verdict(source, params, dict(dims or {}), seed, set(), outcomes)
    arrays, scalars, outputs = random_arguments(prog, dict(dims or {}), seed)
    outcomes = run_stages(source, params, arrays, scalars, outputs, None, None, thread_targets, compile_targets,
                          lenient)
    shapes = {d: n for p in prog.tensor_params for d, n in zip(p.dims, arrays[p.name].shape) if isinstance(d, str)}
    return Verdict(source, params, shapes, seed, ir_features(prog), outcomes)


MUTANT_TARGETS = ("gfx942", "sm_90")
INT_NUMPY = {"i32": np.int32, "i8": np.int8, "u8": np.uint8, "i16": np.int16, "u32": np.uint32, "i64": np.int64}


def evaluate_mutant(text: str, seed: int) -> Verdict:
    """A mutated example through layout assignment, thread IR and the thread interpreter on
    gfx942 and sm_90, at small shapes; the mutant may be wrong (``lenient``)."""
    return evaluate_source(text, seed=seed, thread_targets=MUTANT_TARGETS, compile_targets=(), lenient=True)


# ---------------------------------------------------------------- repro files

HEADER = re.compile(r"^# (params|dims|seed|known|targets): (.*)$", re.MULTILINE)


def repro_header(title: str, v: Verdict, bug: str, failure: Outcome) -> str:
    """The comment block that makes a .tdsl file a reproducer (read back by read_repro)."""
    path = "tests/fuzz/repros/NAME.tdsl"
    return "\n".join([
        f"# {title}",
        f"# run: python -m tests.fuzz.explore run {path}",
        f"# error: {failure.stage}: {failure.detail}",
        f"# known: {bug}",
        f"# params: {json.dumps(v.params)}",
        f"# dims: {json.dumps(v.dims)}",
        f"# seed: {v.seed}",
    ]) + "\n"


def read_repro(text: str) -> dict[str, Any]:
    """The header fields of a reproducer: params, dims, seed, known (the bug key or NEW)."""
    fields: dict[str, Any] = {"params": {}, "dims": {}, "seed": 0, "known": "", "targets": ""}
    for key, value in HEADER.findall(text):
        fields[key] = json.loads(value) if key in ("params", "dims", "seed") else value.strip()
    return fields


def stage_table(verdicts: list[Verdict]) -> str:
    """How each stage ended over all the verdicts: ok / rejected (located error) / fail, and the
    time it took in all."""
    counts: dict[str, Counter[str]] = {}
    seconds: Counter[str] = Counter()
    for v in verdicts:
        for o in v.outcomes:
            counts.setdefault(o.stage, Counter())[o.status] += 1
            seconds[o.stage] += o.seconds
    lines = [f"  {'stage':<16}{'ok':>7}{'rejected':>10}{'fail':>7}{'seconds':>10}"]
    for stage, c in counts.items():
        lines.append(f"  {stage:<16}{c['ok']:>7}{c['rejected']:>10}{c['fail']:>7}{seconds[stage]:>10.0f}")
    return "\n".join(lines)


def summarize(verdicts: list[Verdict]) -> str:
    """Failures grouped by signature, most frequent first, with the known bug each is."""
    groups: dict[str, list[tuple[int, Outcome, KnownBug | None]]] = {}
    for i, v in enumerate(verdicts):
        for o, bug in v.failures:
            groups.setdefault(signature(o), []).append((i, o, bug))
    lines = []
    for sig, hits in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        bugs = {b.key if b else "NEW" for _, _, b in hits}
        targets = sorted({o.stage.split(":")[-1] for _, o, _ in hits})
        programs = sorted({i for i, _, _ in hits})
        lines.append(f"{len(hits):4d} [{'/'.join(sorted(bugs))}] {sig}\n"
                     f"       targets {','.join(targets)}; programs {programs[:8]}")
    return "\n".join(lines)


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` fixed examples (the same every run, so that CI does not flake on a program
    it never saw; not shrunk: ``python -m tests.fuzz.explore gen --shrink TEXT`` does that) unless the ``long`` profile is loaded (tests/conftest.py), whose count and
    randomness then apply."""
    if settings.get_current_profile_name() == "long":
        return settings(deadline=None, suppress_health_check=list(HealthCheck))
    return settings(max_examples=ci_examples, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],        # no shrinking: minutes per failure
                    suppress_health_check=list(HealthCheck))
