"""Explore the compiler with generated programs, outside pytest.

    python -m tests.fuzz.explore gen -n 300 --seed 7                 # failures grouped, known bugs marked
    python -m tests.fuzz.explore gen -n 300 --avoid known            # only what no known bug covers
    python -m tests.fuzz.explore gen --shrink "used before it is defined" --targets sm_90
    python -m tests.fuzz.explore run tests/fuzz/repros/dot-transposed-operand.tdsl

``gen --shrink TEXT`` lets hypothesis minimise the first program whose failure signature
contains TEXT and prints it with a reproducer header (``--save FILE`` writes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from .harness import Verdict, evaluate, evaluate_source, read_repro, repro_header, summarize
from .programs import FEATURES, Generated, programs
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


def draw_programs(n: int, at: int, avoid: frozenset[str]) -> list[Generated]:
    drawn: list[Generated] = []

    @seed(at)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(programs(avoid=avoid))
    def collect(g: Generated) -> None:
        drawn.append(g)

    collect()
    return drawn


class _Found(Exception):
    pass


def shrink(text: str, n: int, at: int, avoid: frozenset[str], targets: tuple[str, ...],
           compile_targets: tuple[str, ...]) -> Verdict | None:
    """The smallest program hypothesis finds whose failure signature contains ``text``."""
    last: list[Verdict] = []

    @seed(at)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False)
    @given(programs(avoid=avoid))
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.explore", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="generate programs and group their failures")
    g.add_argument("-n", type=int, default=100)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--avoid", default="none",
                   help="'none' or a list of features ('known' for those of the known bugs): " + ", ".join(FEATURES))
    g.add_argument("--targets", default=",".join(THREAD_TARGETS))
    g.add_argument("--compile", default=",".join(COMPILE_TARGETS))
    g.add_argument("--show", default="", help="print every program whose failure signature contains this")
    g.add_argument("--shrink", default="", help="minimise a program whose failure signature contains this")
    g.add_argument("--save", default="", help="with --shrink: write the reproducer here")
    r = sub.add_parser("run", help="run a .tdsl file (a reproducer) through every stage")
    r.add_argument("file")
    r.add_argument("--targets", default=",".join(THREAD_TARGETS))
    r.add_argument("--compile", default=",".join(COMPILE_TARGETS))
    args = ap.parse_args(argv)
    targets = tuple(t for t in args.targets.split(",") if t)
    compile_targets = tuple(t for t in args.compile.split(",") if t)

    if args.cmd == "run":
        text = Path(args.file).read_text()
        fields = read_repro(text)
        v = evaluate_source(text, fields["params"], fields["dims"], fields["seed"], targets, compile_targets)
        print(v.report())
        return 1 if v.failures else 0

    avoid = parse_avoid(args.avoid)
    if args.shrink:
        v = shrink(args.shrink, args.n, args.seed, avoid, targets, compile_targets)
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
    verdicts = [evaluate(p, targets, compile_targets) for p in draw_programs(args.n, args.seed, avoid)]
    took = time.perf_counter() - start
    stages = sum(len(v.outcomes) for v in verdicts)
    failed = sum(1 for v in verdicts if v.failures)
    new = sum(1 for v in verdicts if v.new)
    rejected = sum(1 for v in verdicts for o in v.outcomes if o.status == "rejected")
    print(f"{len(verdicts)} programs, {stages} stages in {took:.0f} s: {failed} programs fail "
          f"({new} with a failure no known bug explains), {rejected} stages rejected with a located error")
    print(summarize(verdicts))
    if args.show:
        for v in verdicts:
            if any(args.show in signature(o) for o, _ in v.failures):
                print("\n" + v.report())
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
