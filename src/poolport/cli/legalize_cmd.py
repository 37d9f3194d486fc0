"""``poolport legalize in.onnx -o out.onnx --target T``: rewrite pooling nodes the target runtime
computes wrongly into explicit equivalent forms, verified against the original. The input file is
never modified."""

from __future__ import annotations

import contextlib

from ..errors import PoolportError
from ..legalizer.targets import TARGETS
from .args import add_runtimes_option, input_file, parse_runtimes
from .terminal import quiet


def add_parser(sub) -> None:
    """Register ``poolport legalize``."""
    p = sub.add_parser(
        "legalize",
        help="rewrite ONNX pooling attributes a runtime computes wrongly (auto_pad SAME, ceil_mode, asymmetric pads)",
        description="Rewrite AveragePool/MaxPool nodes whose attributes TARGET computes wrongly into explicit "
        "Pad + pooling (+ a constant correction) forms, check with onnx.checker, verify against the original "
        "with the ONNX reference evaluator and ONNX Runtime, and report what changed.",
    )
    p.add_argument("input", help="the ONNX model to read (never modified)")
    p.add_argument("-o", "--output", required=True, help="where to write the legalized model")
    p.add_argument("--target", choices=TARGETS, default="all",
                   help="the runtime to legalize for; auto: probe the installed runtimes (poolport probe) and rewrite "
                   "what they get wrong")
    add_runtimes_option(p, "with --target auto: the runtimes to probe (default: every installed one)")
    p.add_argument("--reprobe", action="store_true",
                   help="with --target auto: probe again instead of using the probe cached for each runtime's version "
                   "(in $XDG_CACHE_HOME/poolport, by default ~/.cache/poolport), and cache the new one")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--no-verify", action="store_true", help="skip the numerical comparison with the original")
    p.add_argument("--keep-unfixed", action="store_true",
                   help="write the model even where a node the target computes wrongly or refuses is left as it was "
                   "(its size is not static, its Indices output is used, or no form is right on every runtime "
                   "--target all/auto serves); without it such a node makes the command exit 1 and write nothing")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run ``poolport legalize``; returns the exit code."""
    from ..legalizer import legalize
    from ..legalizer.rules import rules_for
    from ..onnxfile.files import external_data_files
    from ..onnxfile.paths import WritePlan
    from ..onnxfile.staging import publish, stage_proto, staging_folder

    if args.runtimes and args.target != "auto":
        raise PoolportError("--runtimes goes with --target auto.")
    if args.reprobe and args.target != "auto":
        raise PoolportError("--reprobe goes with --target auto.")
    # weights that came in a data file leave in one (<output>.data); a self-contained input stays one file
    model_path = input_file(args.input, "the ONNX model")  # a folder or a missing file, named as such
    external = bool(external_data_files(model_path))
    plan = WritePlan(overwrite=args.force)
    src = plan.reads_model(model_path, "the input")
    dst = plan.writes(args.output, "-o", data=True if external else None)
    plan.check()
    # the runtimes a probe runs print from native code (ncnn's ParamDict lines): kept off the terminal
    with quiet() if args.target == "auto" else contextlib.nullcontext():
        result = legalize(src, args.target, verify=not args.no_verify, runtimes=parse_runtimes(args.runtimes),
                          keep_unfixed=args.keep_unfixed, reprobe=args.reprobe)
    with staging_folder(dst) as folder:
        staged = stage_proto(result.model, folder, dst.name)
        written = publish(staged, dst, args.force, external_data=True if external else None)
    rewritten = result.rewritten
    print(f"{src} -> {dst}{f' + {written.name}' if written else ''} (target {args.target}): "
          f"{len(rewritten)} pooling node(s) rewritten"
          + ("" if args.no_verify or not rewritten else ", verified against the original"))
    if result.probe is not None:
        report = result.probe
        for rt, (path, date) in report.cached.items():
            print(f"  using the probe cached at {path} ({rt} {report.versions[rt]}, {date}); --reprobe probes again")
        for rt, path in report.stored.items():
            print(f"  probed {rt} {report.versions[rt]} now, cached at {path}")
        probed = ", ".join(f"{rt} {v}" for rt, v in report.versions.items())
        print(f"  the probe of {probed}: rules {', '.join(result.rules) if result.rules else 'none needed'}")
    for c in result.changes:
        print(f"  {c}")
    if result.kept:
        print(f"  {len(result.kept)} pooling node(s) kept as they were (--keep-unfixed): the target computes them "
              f"wrongly or refuses them")
    if args.target != "auto" and not rules_for(args.target):
        print(f"  no rules for {args.target}: it computes every pooling pattern poolport has measured correctly "
              f"(docs/runtimes.md); the model was only checked and copied")
    return 0
