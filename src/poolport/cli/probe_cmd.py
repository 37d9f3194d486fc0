"""``poolport probe``: run poolport's conformance suite of small pooling graphs on the installed runtimes
and print which cases each gets wrong or refuses, with versions. Exit 0 either way (the probe reports;
``legalize --target auto`` acts on it); 1 only when no runtime could be probed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .args import add_runtimes_option, parse_runtimes
from .progress import Progress
from .terminal import quiet


def add_parser(sub) -> None:
    """Register ``poolport probe``."""
    p = sub.add_parser(
        "probe",
        help="run small pooling graphs on the installed runtimes and show what each gets wrong",
        description="Run poolport's pooling conformance cases (ceil_mode windows starting in the padding, "
        "SAME_UPPER/SAME_LOWER, asymmetric pads with each count_include_pad, dilations, global pooling, a kernel "
        "larger than the input, 1d/2d/3d) in each selected runtime that is installed, compare with the ONNX "
        "reference evaluator, and print per runtime the cases it gets wrong or refuses, and the legalizer rules "
        "that rewrite them (what `legalize --target auto` applies); the probe is cached per runtime version for "
        "`legalize --target auto`.",
    )
    add_runtimes_option(p)
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON (- for standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run ``poolport probe``; returns the exit code."""
    from ..legalizer.probe_cache import cached_probe
    from ..onnxfile.paths import WritePlan
    from ..onnxfile.staging import write_atomically

    runtimes = parse_runtimes(args.runtimes)
    if args.json and args.json != "-":
        plan = WritePlan(overwrite=args.force)
        plan.writes(args.json, "--json")
        plan.check()
    with Progress(enabled=not args.quiet) as progress, quiet():
        # probed now (reprobe), and cached: legalize --target auto then reuses it (legalizer.probe_cache)
        report = cached_probe(runtimes, progress=progress, reprobe=True)
    data = report.to_dict()
    if args.json == "-":
        print(json.dumps(data, indent=2))
    else:
        print(report.text())
        for rt in report.results:
            names = data["rules"][rt]
            print(f"{rt}: legalize --target auto applies {', '.join(names) if names else 'no rule'}")
        for u in data["unfixed"]:
            print(f"not fixed by legalize: {u}")
        for rt, path in report.stored.items():
            print(f"{rt}: cached at {path} (legalize --target auto reuses it)")
        if args.json:
            write_atomically((json.dumps(data, indent=2) + "\n").encode(), Path(args.json), args.force)
    if not report.results:
        print("nothing was probed: no selected runtime is installed", file=sys.stderr)
        return 1
    return 0
