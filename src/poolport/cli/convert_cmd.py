"""``poolport convert MODEL --input 1x3x256x256 -o out.onnx``: export any PyTorch model to ONNX with
exact, portable adaptive pooling, verified in ONNX Runtime."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import PoolportError, out_of_memory
from ..legalizer.targets import TARGETS
from .args import add_rtol_option, parse_runtimes, parse_size
from .progress import Progress
from .terminal import quiet

DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "float64": "float64", "int64": "int64", "long": "int64", "int32": "int32",
          "bool": "bool"}


def parse_input(text: str):
    """``1x3x256x256`` or ``1x128:int64``: a random example tensor of that shape and dtype."""
    import torch

    shape_text, _, dtype_text = text.partition(":")
    shape = parse_size(shape_text, "--input")
    dtype_name = DTYPES.get(dtype_text or "float32")
    if dtype_name is None:
        raise PoolportError(f"--input {text!r}: unknown dtype {dtype_text!r}; one of {sorted(DTYPES)}.")
    dtype = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(0)
    try:
        if dtype.is_floating_point:
            return torch.randn(shape, generator=g).to(dtype)
        if dtype == torch.bool:
            return torch.rand(shape, generator=g) > 0.5
        return torch.randint(0, 2, shape, generator=g, dtype=dtype)
    except (MemoryError, RuntimeError) as e:
        if not out_of_memory(e):
            raise
        values = math.prod(shape)
        raise PoolportError(
            f"--input {text}: {values:,} values ({values * dtype.itemsize / 2**30:,.1f} GiB of {dtype_name}) do not fit in memory; "
            f"give a smaller size."
        ) from None


SPATIAL_NAMES = {1: "l", 2: "hw", 3: "dhw"}  # names of the spatial axes' Dims, by how many there are


def parse_spatial_ranges(text: str) -> list[tuple[int, int | None, int]]:
    """``--dynamic-spatial``'s value: ``MIN:MAX[:STEP]`` for every spatial axis, or one such range per axis,
    comma-separated (``64:1024:32,64:512:32`` for H and W). ``MIN`` empty: ``STEP`` (1 without one);
    ``MAX`` empty: unbounded. Returns ``(min, max or None, step)`` per range given.

    Raises:
        PoolportError: a range that is not of this form, or empty.
    """
    out = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            step = int(fields[2]) if len(fields) == 3 and fields[2].strip() else 1
            lo = int(fields[0]) if fields[0].strip() else step
            hi = int(fields[1]) if fields[1].strip() else None
        except ValueError:
            raise PoolportError(
                f"--dynamic-spatial {text!r}: {part.strip()!r} is not a range MIN:MAX or MIN:MAX:STEP (e.g. "
                f"64:1024:32: the sizes 64, 96, ..., 1024), one for every spatial axis or one per axis, "
                f"comma-separated."
            ) from None
        if step < 1 or lo < 1 or (hi is not None and hi < lo):
            raise PoolportError(
                f"--dynamic-spatial {text!r}: in {part.strip()!r} MIN and STEP must be >= 1 and MAX >= MIN."
            )
        out.append((lo, hi, step))
    return out


def _spatial_dim(name: str, lo: int, hi: int | None, step: int):
    """The ``torch.export.Dim`` for the sizes ``lo, lo + step, ...`` up to ``hi``: a plain ``Dim`` for step 1,
    else ``step * k + offset`` derived from a root ``Dim`` ``k`` (torch.export's own way to say it)."""
    import torch

    Dim = torch.export.Dim
    if step == 1:
        return Dim(name, min=lo, max=hi) if hi is not None else Dim(name, min=lo)
    offset = lo % step
    k_lo = (lo - offset) // step
    root = Dim(name, min=k_lo, max=(hi - offset) // step) if hi is not None else Dim(name, min=k_lo)
    return step * root + offset if offset else step * root


def spatial_dynamic_shapes(inputs: tuple, ranges: str | None = None) -> tuple[tuple, list[str]]:
    """``--dynamic-spatial [RANGES]``: every axis from 2 on of every tensor input with spatial axes is
    dynamic. Without ``RANGES`` its range is inferred by the exporter (``Dim.DYNAMIC``: torch.export finds
    what the model accepts); with them (``parse_spatial_ranges``) each axis takes the sizes its range
    allows, which verification then picks from. Returns the dynamic shapes and a note per input left
    static for having no spatial axis.

    Raises:
        PoolportError: no input has a spatial axis (nothing would be dynamic), ranges that do not match
            the spatial axes, or an example input whose size the ranges leave out.
    """
    import torch

    def spatial(t) -> bool:
        return isinstance(t, torch.Tensor) and t.dim() >= 3

    def shape(t) -> str:
        return "x".join(map(str, t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__

    flat = [f"input {i} ({shape(t)})" for i, t in enumerate(inputs) if not spatial(t)]
    if len(flat) == len(inputs):
        raise PoolportError(f"--dynamic-spatial: {', '.join(flat)} {'has' if len(flat) == 1 else 'have'} no "
                            f"spatial axis (axis 2 on of N x C x ...): nothing would be dynamic. Leave it out "
                            f"(--dynamic-batch makes the batch dynamic).")
    notes = [f"--dynamic-spatial: {f} has no spatial axis; it stays static" for f in flat]
    if not ranges:
        return tuple({axis: torch.export.Dim.DYNAMIC for axis in range(2, t.dim())} if spatial(t) else None
                     for t in inputs), notes
    given = parse_spatial_ranges(ranges)
    shapes: list = []
    for i, t in enumerate(inputs):
        if not spatial(t):
            shapes.append(None)
            continue
        n = t.dim() - 2
        if len(given) not in (1, n):
            raise PoolportError(f"--dynamic-spatial {ranges}: {len(given)} ranges for input {i} ({shape(t)}), which "
                                f"has {n} spatial axes: give one range for all, or one per axis.")
        letters = SPATIAL_NAMES.get(n) or [f"s{j}" for j in range(n)]
        dims = {}
        for j in range(n):
            lo, hi, step = given[0] if len(given) == 1 else given[j]
            size = t.shape[2 + j]
            if size < lo or (hi is not None and size > hi) or (size - lo) % step:
                sizes = f"{lo}, {lo + step}, ..." + (f", {hi - (hi - lo) % step}" if hi is not None else "")
                raise PoolportError(
                    f"--dynamic-spatial {ranges}: input {i} ({shape(t)}) is {size} on axis {2 + j}, not one of the "
                    f"sizes its range allows ({sizes}): give an example input (--input) of such a size."
                )
            dims[2 + j] = _spatial_dim(f"{letters[j]}{i if i else ''}", lo, hi, step)
        shapes.append(dims)
    return tuple(shapes), notes


def add_parser(sub) -> None:
    """Register ``poolport convert``."""
    from ..runtimes.registry import NAMES

    p = sub.add_parser(
        "convert",
        help="export a PyTorch model to ONNX with exact portable pooling, verified",
        description="Export MODEL to ONNX with every adaptive pooling site made exact and portable, check it "
        "with onnx.checker, verify it in ONNX Runtime against PyTorch and print a per-site report. MODEL is a "
        "factory (package.module:callable or file.py:callable), a torch.export archive (.pt2) or a "
        "TorchScript file.",
    )
    # optional for argparse only: `--dynamic-spatial MODEL ...` gives the model to --dynamic-spatial (its
    # value is optional), which run() hands back (model_argument)
    p.add_argument("model", metavar="MODEL", nargs="?")
    p.add_argument("--input", action="append", metavar="SHAPE[:DTYPE]",
                   help="example input shape, e.g. 1x3x256x256 (repeat for several inputs; :int64 etc. for dtype)")
    p.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default=None,
                   help="torch.onnx exporter (default dynamo; torchscript for TorchScript files)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18 dynamo, 17 torchscript)")
    p.add_argument("--external-data", action="store_true",
                   help="write the weights to OUTPUT.data beside the graph (automatic for models over 2 GB)")
    p.add_argument("--report", metavar="JSON", help="also write the report as JSON")
    p.add_argument("--force", action="store_true", help="replace existing output/report files")
    p.add_argument("--kwargs", metavar="JSON", help="keyword arguments for a factory, e.g. '{\"num_classes\": 10}'")
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="also legalize pooling attributes this runtime computes wrongly, and write the plans in "
                   "the form it takes: litert/tflite, all and auto with LiteRT get the edge form (at most 5 inputs "
                   "per Concat), every other target and none the default form (fewest nodes)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="make the batch dimension symbolic (verified at a second batch size too)")
    p.add_argument("--dynamic-spatial", nargs="?", const="", default=None, metavar="MIN:MAX[:STEP]",
                   help="make every spatial axis (axis 2 on) of every input symbolic: adaptive pooling is then "
                   "written to be exact at every size, and verified at several other sizes. Optionally the sizes "
                   "the model accepts: MIN:MAX[:STEP] for every axis (e.g. 64:1024:32: multiples of 32 from 64 "
                   "to 1024) or one range per axis, comma-separated (64:1024:32,64:512:32); without, the "
                   "exporter infers the range")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime verification (not recommended)")
    add_rtol_option(p, "tolerance of the model-level check: max abs error <= R x the output scale (default by "
                    "input dtype: 1e-4 float32/float64, 1e-2 float16, 2e-2 bfloat16)")
    p.add_argument("--random-checks", type=int, default=1, metavar="N",
                   help="fresh random input sets verified besides the example inputs (default 1)")
    p.add_argument("--verify-in", metavar="RUNTIMES", default="",
                   help=f"also verify in these runtimes, comma-separated: {','.join(n for n in NAMES if n != 'onnxruntime')} "
                   "(poolport[runtimes]; LiteRT: make litert)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled nn.Module (runs arbitrary code from the file)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def write_failure_report(args, runtimes: tuple[str, ...], error: PoolportError) -> None:
    """``--report`` for a conversion that stopped before the export began (the model or the inputs could
    not be loaded): what was asked for and why it stopped, status "failed"."""
    from ..export.report import Report, versions

    report = Report(model=args.model, output=None, exporter=args.exporter or "dynamo", opset=args.opset,
                    versions=versions(runtimes), error=str(error).split("\n")[0])
    if args.rtol is not None:
        report.tolerance = args.rtol
    Path(args.report).write_text(report.to_json() + "\n")


RANGES = re.compile(r"[\d:,\s]*")  # what --dynamic-spatial takes; a MODEL always has a letter


def model_argument(args) -> None:
    """``args.model``, given; where argparse gave it to a ``--dynamic-spatial`` written before it (that
    option's value is optional), it is taken back.

    Raises:
        PoolportError: no MODEL was given.
    """
    if args.model is None and args.dynamic_spatial and not RANGES.fullmatch(args.dynamic_spatial):
        args.model, args.dynamic_spatial = args.dynamic_spatial, ""
    if args.model is None:
        raise PoolportError("give the MODEL to convert (a factory package.module:callable or "
                            "file.py:callable, a .pt2 archive or a TorchScript file).")


def run(args) -> int:
    """Run ``poolport convert``; returns the exit code."""
    from ..export.onnx_export import export_onnx
    from ..loading import is_scripted, load_model, model_files, parse_kwargs
    from ..onnxfile.paths import WritePlan

    model_argument(args)

    runtimes = parse_runtimes(args.verify_in) or ()
    plan = WritePlan(overwrite=args.force)
    for f in model_files(args.model):
        plan.reads(f, "MODEL")
    out_path = plan.writes(args.output, "-o", data=args.external_data or None)
    if args.report:
        plan.writes(args.report, "--report")
    plan.check()
    with Progress(enabled=not args.quiet) as progress, quiet():
        progress(f"loading {args.model}")
        try:
            loaded = load_model(args.model, parse_kwargs(args.kwargs), allow_pickle=args.trust_pickle)
            if args.input:
                inputs = tuple(parse_input(s) for s in args.input)
            elif loaded.example_inputs:
                inputs = loaded.example_inputs
            else:
                raise PoolportError("give the example input shape(s) with --input, e.g. --input 1x3x224x224.")
            dynamic_shapes = None
            if args.dynamic_spatial is not None:
                dynamic_shapes, notes = spatial_dynamic_shapes(inputs, args.dynamic_spatial)
                loaded.notes += notes
        except PoolportError as e:  # from here on export_onnx writes the report of a failure
            if args.report:
                write_failure_report(args, runtimes, e)
            raise
        exporter = args.exporter or ("torchscript" if is_scripted(loaded.model) else "dynamo")
        report = export_onnx(
            loaded.model,
            inputs,
            out_path,
            exporter=exporter,
            opset=args.opset,
            verify=not args.no_verify,
            report=args.report,
            overwrite=args.force,
            target=args.target,
            runtimes=runtimes,
            dynamic_batch=args.dynamic_batch,
            dynamic_shapes=dynamic_shapes,
            external_data=args.external_data or None,
            random_checks=args.random_checks,
            rtol=args.rtol,
            name=loaded.name,
            progress=progress,
        )
    for note in loaded.notes:
        print(f"note: {note}")
    print(report.table())
    if args.report:
        print(f"report written to {Path(args.report)}")
    return 0
