"""Explore the compiler with generated programs, outside pytest.

    python -m tests.fuzz.explore gen -n 300 --seed 7                 # failures grouped, known bugs marked
    python -m tests.fuzz.explore gen -n 1000 --minutes 25 --seed 11      # the long run of tests/fuzz/README.md
    python -m tests.fuzz.explore gen --shrink "used before it is defined" --targets sm_90
    python -m tests.fuzz.explore run tests/fuzz/repros/dot-transposed-operand.tdsl
    python -m tests.fuzz.explore mutants -n 200 --seed 3          # mutated examples, thread level
    python -m tests.fuzz.explore reduce repro.tdsl --match "lds-race" --targets sm_90   # drop lines

``gen --shrink TEXT`` lets hypothesis minimise the first program whose failure signature
contains TEXT and prints it with a reproducer header (``--save FILE`` writes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from .features import FEATURES
from .harness import (
    Verdict,
    evaluate,
    evaluate_mutant,
    evaluate_source,
    read_repro,
    repro_header,
    stage_table,
    summarize,
)
from .mutants import EXAMPLE_TEXT, mutants
from .programs import Generated, programs
from .stages import COMPILE_TARGETS, THREAD_TARGETS
from .triage import AVOID_KNOWN, signature


def parse_avoid(text: str) -> frozenset[str]:
    if text in ("", "none"):
        return frozenset()
    names = frozenset(text.split(","))
    if "known" in names:
        names = (names - {"known"}) | AVOID_KNOWN
    unknown = names - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown features {sorted(unknown)}; known: {', '.join(FEATURES)}")
    return names


def draw_programs(n: int, at: int, avoid: frozenset[str], relax: float = 0.0) -> list[Generated]:
    drawn: list[Generated] = []

    @seed(at)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(programs(avoid=avoid, relax=relax))
    def collect(g: Generated) -> None:
        drawn.append(g)

    collect()
    return drawn


def draw_mutants(name: str, n: int, at: int) -> list[str]:
    drawn: list[str] = []

    @seed(at)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutants(name))
    def collect(text: str) -> None:
        drawn.append(text)

    collect()
    return drawn


class _Found(Exception):
    pass


def shrink(text: str, n: int, at: int, avoid: frozenset[str], relax: float, targets: tuple[str, ...],
           compile_targets: tuple[str, ...]) -> Verdict | None:
    """The smallest program hypothesis finds whose failure signature contains ``text``."""
    last: list[Verdict] = []

    @seed(at)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False)
    @given(programs(avoid=avoid, relax=relax))
    def probe(g: Generated) -> None:
        v = evaluate(g, targets, compile_targets)
        if any(text in signature(o) for o, _ in v.failures):
            last.append(v)
            raise _Found

    try:
        probe()
    except _Found:
        return last[-1]
    return None


def run_mutants(n: int, at: int, names: list[str], show: str) -> int:
    verdicts: list[Verdict] = []
    for name in names:
        verdicts += [evaluate_mutant(text, i) for i, text in enumerate(draw_mutants(name, n, at))]
    statuses = Counter(v.outcomes[-1].stage if v.outcomes[-1].status == "ok" else v.outcomes[-1].status
                       for v in verdicts)
    checked = sum(1 for v in verdicts if v.outcomes[0].status == "ok")
    print(f"{len(verdicts)} mutants, {checked} pass check; last stage reached: {dict(statuses)}")
    print(stage_table(verdicts))
    print(summarize(verdicts))
    for v in verdicts:
        if show and any(show in signature(o) for o, _ in v.failures):
            print("\n" + v.report())
    return 1 if any(v.new for v in verdicts) else 0


def reduce_lines(text: str, match: str, targets: tuple[str, ...], compile_targets: tuple[str, ...]) -> str:
    """Greedily drop the lines of a reproducer (its header and its syncs kept) while a failure
    whose signature contains ``match`` stays; rounds until no line can go."""
    fields = read_repro(text)

    def fails(candidate: str) -> bool:
        v = evaluate_source(candidate, fields["params"], fields["dims"], fields["seed"], targets, compile_targets)
        return any(match in signature(o) for o, _ in v.failures)

    if not fails(text):
        raise SystemExit(f"the program does not fail with '{match}'")
    lines = text.split("\n")
    changed = True
    while changed:
        changed = False
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith("#") or lines[i].strip() in ("", "sync"):
                continue                    # a sync kept: dropping one can make a real race
            candidate = lines[:i] + lines[i + 1:]
            if fails("\n".join(candidate)):
                lines, changed = candidate, True
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.explore", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate programs and group their failures")
    g.add_argument("-n", type=int, default=100)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--minutes", type=float, default=0, help="stop after this long (with a large -n)")
    g.add_argument("--avoid", default="none",
                   help="'none' or a list of features ('known' for those of the known bugs): " + ", ".join(FEATURES))
    g.add_argument("--relax", type=float, default=0.0,
                   help="let each avoided feature back in with this probability, per program")
    g.add_argument("--targets", default=",".join(THREAD_TARGETS))
    g.add_argument("--compile", default=",".join(COMPILE_TARGETS))
    g.add_argument("--show", default="", help="print every program whose failure signature contains this")
    g.add_argument("--shrink", default="", help="minimise a program whose failure signature contains this")
    g.add_argument("--save", default="", help="with --shrink: write the reproducer here")
    r = sub.add_parser("run", help="run a .tdsl file (a reproducer) through every stage")
    r.add_argument("file")
    r.add_argument("--targets", default=",".join(THREAD_TARGETS))
    r.add_argument("--compile", default=",".join(COMPILE_TARGETS))
    m = sub.add_parser("mutants", help="mutate the examples and run the mutants through the thread level")
    m.add_argument("-n", type=int, default=100, help="mutants per example")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--example", default="", help="one example (default: all)")
    m.add_argument("--show", default="", help="print every mutant whose failure signature contains this")
    d = sub.add_parser("reduce", help="drop lines of a .tdsl file while its failure stays (in place)")
    d.add_argument("file")
    d.add_argument("--match", required=True, help="text of the failure signature to keep")
    d.add_argument("--targets", default=",".join(THREAD_TARGETS))
    d.add_argument("--compile", default="")
    args = ap.parse_args(argv)
    if args.cmd == "mutants":
        return run_mutants(args.n, args.seed, [args.example] if args.example else sorted(EXAMPLE_TEXT), args.show)
    targets = tuple(t for t in args.targets.split(",") if t)
    compile_targets = tuple(t for t in args.compile.split(",") if t)
    if args.cmd == "reduce":
        path = Path(args.file)
        text = reduce_lines(path.read_text(), args.match, targets, compile_targets)
        path.write_text(text)
        print(text)
        return 0
    if args.cmd == "run":
        text = Path(args.file).read_text()
        fields = read_repro(text)
        v = evaluate_source(text, fields["params"], fields["dims"], fields["seed"], targets, compile_targets)
        print(v.report())
        return 1 if v.failures else 0

    avoid = parse_avoid(args.avoid)
    if args.shrink:
        v = shrink(args.shrink, args.n, args.seed, avoid, args.relax, targets, compile_targets)
        if v is None:
            print(f"no program in {args.n} fails with '{args.shrink}'")
            return 1
        failure = next(o for o, _ in v.failures if args.shrink in signature(o))
        bug = next((b.key for o, b in v.failures if o is failure and b), "NEW")
        text = repro_header("TITLE", v, bug, failure) + v.source
        print(text)
        print("\n".join(str(o) for o in v.outcomes))
        if args.save:
            Path(args.save).write_text(text)
        return 0
    start = time.perf_counter()
    verdicts = []
    for g in draw_programs(args.n, args.seed, avoid, args.relax):
        verdicts.append(evaluate(g, targets, compile_targets))
        if len(verdicts) % 25 == 0:
            print(f"... {len(verdicts)} programs, {sum(1 for v in verdicts if v.new)} with new failures, "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        if args.minutes and time.perf_counter() - start > 60 * args.minutes:
            break
    took = time.perf_counter() - start
    stages = sum(len(v.outcomes) for v in verdicts)
    failed = sum(1 for v in verdicts if v.failures)
    new = sum(1 for v in verdicts if v.new)
    rejected = sum(1 for v in verdicts for o in v.outcomes if o.status == "rejected")
    print(f"{len(verdicts)} programs, {stages} stages in {took:.0f} s: {failed} programs fail "
          f"({new} with a failure no known bug explains), {rejected} stages rejected with a located error")
    print(stage_table(verdicts))
    print(summarize(verdicts))
    if args.show:
        for v in verdicts:
            if any(args.show in signature(o) for o, _ in v.failures):
                print("\n" + v.report())
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
