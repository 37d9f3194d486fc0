"""``poolport check MODEL.onnx``: run an ONNX file in every installed runtime (ONNX Runtime, OpenVINO,
ncnn, MNN, LiteRT), compare each with a reference, print a table (and JSON), and exit 1 when any
selected runtime is wrong or refuses the model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .args import add_rtol_option, add_runtimes_option, input_file, parse_runtimes, parse_size
from .progress import Progress
from .terminal import quiet


def parse_inputs(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``NAME=1x3x224x224`` (or a bare ``1x3x224x224`` for a model with one input) per --input."""
    shapes = {}
    for item in items or ():
        name, _, size = item.rpartition("=")
        shapes[name] = parse_size(size, "--input")
    return shapes


def add_parser(sub) -> None:
    """Register ``poolport check``."""
    p = sub.add_parser(
        "check",
        help="run an ONNX file in every installed runtime and compare each with a reference",
        description="Run MODEL in each selected runtime that is installed (LiteRT through onnx2tf, MNN through "
        "its converter's Python binding, ncnn through pnnx), compare with a reference (the ONNX reference "
        "evaluator for small graphs, else ONNX Runtime) on random inputs, and print per runtime: version, "
        "whether it converted, max abs / relative error and a verdict with the runtime's own reason when it "
        "refuses. Exit 1 when any selected, installed runtime is wrong or refuses, or none ran. The model file "
        "is never modified.",
    )
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--input", action="append", metavar="[NAME=]SHAPE",
                   help="input size, e.g. x=1x3x224x224 (needed for dynamic dimensions; repeat per input)")
    add_runtimes_option(p)
    p.add_argument("--reference", choices=["auto", "evaluator", "onnxruntime"], default="auto",
                   help="what the runtimes are compared with (auto: the ONNX reference evaluator for small graphs)")
    add_rtol_option(p, "a runtime passes if max abs error <= R x the output scale (default 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON (- for standard output, "
                   "instead of the table)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run ``poolport check``; returns the exit code (0 every runtime agrees, 1 one is wrong or refuses)."""
    from ..onnxfile.paths import WritePlan
    from ..onnxfile.staging import write_atomically
    from ..verify.check import DEFAULT_RTOL, check_model

    plan = WritePlan(overwrite=args.force)
    plan.reads_model(args.model, "MODEL.onnx")
    if args.json and args.json != "-":
        plan.writes(args.json, "--json")
    plan.check()
    rtol = DEFAULT_RTOL if args.rtol is None else args.rtol
    input_file(args.model, "the ONNX model")
    inputs, runtimes = parse_inputs(args.input), parse_runtimes(args.runtimes)
    with Progress(enabled=not args.quiet) as progress, quiet():
        report = check_model(args.model, inputs, runtimes, args.reference, rtol, args.seed, progress=progress)
    data = json.dumps(report.to_dict(), indent=2)
    if args.json == "-":
        print(data)
    else:
        sizes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in report.inputs.items())
        print(f"{report.model}: inputs {sizes}; "
              f"reference: {report.reference}; pass: every output's max abs error <= {rtol:g} x its own scale")
        if report.reference_note:
            print(f"  {report.reference} is the reference: {report.reference_note}")
        print(report.table())
        if args.json:
            write_atomically((data + "\n").encode(), Path(args.json), args.force)
    failure = report.failure()  # what happened, each runtime with its reason
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0
