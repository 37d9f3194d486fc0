"""``export_onnx``: make portable, export with torch.onnx, check, verify in ONNX Runtime, report.

The output is written only after every check passed: the model is staged in a hidden folder beside
``f``, checked and verified there, then renamed into place (see ``poolport.onnxfile.staging``); an
existing file is replaced only with ``overwrite=True``.

``export_onnx`` runs these stages in order, each a function of one ``ExportJob`` (the checked request
and what the stages before it produced), each with tests of its own (``tests/test_export_stages.py``)::

    validate_inputs          check the arguments and every path written (``onnxfile.paths.WritePlan``),
                             start the report
    make_portable_and_record the portable copy; every pooling site checked in PyTorch
    export_to_staging        torch.onnx into the staging folder
    legalize_staged          rewrite what ``target`` computes wrongly (only with ``target``)
    check_staged             the opset asked for, onnx.checker at the lowest IR version, the operators
    verify_staged            ONNX Runtime (and ``runtimes``) against PyTorch (unless ``verify=False``)
    publish_staged           rename into place
    finish_report            the report's last fields, written as JSON if asked (also on failure, never
                             on Ctrl-C)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backend.onnx_symbolic import portable_symbolics
from ..errors import PoolportError, VerificationError, is_interrupt
from ..functional.dispatch import emitting, size_generic
from ..functional.pools import deploying_to
from ..loading import is_scripted
from ..onnxfile.files import require_onnx
from ..onnxfile.graph import op_counts, opset_of
from ..onnxfile.ir import check_lowest_ir
from ..onnxfile.paths import WritePlan
from ..onnxfile.staging import Staged, publish, stage_proto, staging_folder, write_atomically
from ..routing.portable import make_portable
from ..routing.targets import style_for
from ..runtimes.registry import ALIASES, NAMES, available
from ..verify.compare import cloned, verify_in_runtimes
from ..verify.in_pytorch import as_args, model_rtol, run_recorded, site_problems
from ..verify.recorder import Site
from .dynamic import VERIFIED_SIZES, DynamicAxis, file_axes, parse_dynamic_shapes, verification_shapes
from .report import Report, versions
from .torch_onnx import DEFAULT_OPSET, EXPORTERS, torch_export

log = logging.getLogger("poolport")


def what_failed(failed: list, rtol: float) -> str:
    """The failed checks in a sentence: runtimes that could not run the model, those that differ, then
    those where nothing could be compared (no finite value on either side, or every output empty)."""
    parts = []
    refused = [c for c in failed if not c.ran]
    if refused:
        runtimes = ", ".join(sorted({c.runtime for c in refused}))
        reasons = "; ".join(dict.fromkeys(c.note.rstrip(".") for c in refused))
        parts.append(f"{runtimes} could not load, convert or run the model ({reasons})")
    for group, says in (([c for c in failed if c.ran and not c.unjudged],
                         f"differs from PyTorch beyond {rtol:g} x an output's own scale"),
                        ([c for c in failed if c.unjudged], "had nothing to compare, so nothing was verified")):
        if group:
            detail = "; ".join(f"{c.runtime} on {c.label}: {c.note}" for c in group)
            parts.append(f"{', '.join(sorted({c.runtime for c in group}))} {says} ({detail})")
    return "; ".join(parts)


@dataclass(frozen=True)
class ExportOptions:
    """``export_onnx``'s keyword arguments as the caller gave them; ``export_onnx`` documents each one
    and holds their defaults. ``validate_inputs`` checks them."""

    exporter: str
    opset: int | None
    input_names: list[str] | None
    output_names: list[str] | None
    verify: bool
    report: str | os.PathLike | None
    overwrite: bool
    target: str | None
    random_checks: int
    runtimes: tuple[str, ...] | list[str]
    dynamic_batch: bool
    dynamic_shapes: tuple | list | dict | None
    rtol: float | None
    external_data: bool | None
    name: str | None
    progress: Callable[[str], None] | None


@dataclass
class ExportJob:
    """One ``export_onnx`` call in progress: the request as ``validate_inputs`` checked it, then what
    each stage produced.

    ``make_portable_and_record`` sets ``scripted``, ``portable`` and ``reference``; ``export_to_staging``
    sets ``staged``, which ``legalize_staged`` replaces when it rewrites the graph; every stage writes
    what it did and measured into ``report``.
    """

    model: torch.nn.Module
    args: tuple  # the example inputs, as a tuple
    path: Path  # where the model goes, checked writable
    options: ExportOptions
    opset: int  # the opset asked for, or the exporter's default
    rtol: float  # the tolerance, relative to each output's own scale
    axes: list[DynamicAxis]  # the dynamic input axes
    report: Report
    started: float  # time.perf_counter() when the export began
    style: str = "default"  # how static plans are written for ``options.target`` (routing.targets)
    scripted: bool = False  # a TorchScript model (its sites are recorded as it is exported)
    portable: torch.nn.Module | None = None  # what is exported and verified against
    reference: object = None  # the portable model's output on ``args``, if computed while recording
    staged: Staged | None = None  # the model in the staging folder

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes to verify in (and, for ``target="auto"``, to probe) besides ONNX Runtime."""
        return tuple(self.options.runtimes)

    @property
    def deployed_to(self) -> tuple[str, ...]:
        """The runtimes the file is for: those verified in, and the target's (every runtime for "all",
        those verified in or else every installed one for "auto")."""
        target = self.options.target
        names = set(self.runtimes)
        if target == "all":
            names |= set(NAMES)
        elif target == "auto":
            names |= set(self.runtimes or (n for n in NAMES if available(n)))
        elif target is not None:
            names.add(ALIASES.get(target, target))
        return tuple(sorted(names))

    def say(self, msg: str) -> None:
        """Log ``msg`` to the ``poolport`` logger and pass it to the caller's ``progress``."""
        log.info(msg)
        if self.options.progress is not None:
            self.options.progress(msg)

    def elapsed(self) -> float:
        """Seconds since the export began."""
        return time.perf_counter() - self.started


def validate_inputs(model: torch.nn.Module, args, f: str | os.PathLike, options: ExportOptions) -> ExportJob:
    """Check an export request before anything runs or is written, and start its report.

    Args:
        model: the model to export.
        args: its example inputs (a tensor, or a tuple or list of them).
        f: where the model goes.
        options: the other arguments of ``export_onnx``.

    Returns:
        An ``ExportJob`` with the inputs as a tuple, the destination as a Path, the tolerance (by default
        the inputs' dtype's), the dynamic axes, the opset (by default the exporter's) and a ``Report``
        holding the model's name, the input shapes and dtypes and the installed versions.

    Raises:
        PoolportError: an unknown exporter, a model that is not an ``nn.Module``, a bad
            ``random_checks`` or ``opset``, an unknown ``target``, onnx or onnxruntime missing, bad
            ``dynamic_shapes``, or a destination (model, its data file, report) that cannot be written
            without losing something, or two of them on one file.
    """
    started = time.perf_counter()
    exporter = options.exporter
    if exporter not in EXPORTERS:
        raise PoolportError(f"exporter must be one of {EXPORTERS}, got {exporter!r}.")
    if not isinstance(model, torch.nn.Module):
        raise PoolportError(f"export_onnx: expected a torch.nn.Module, got {type(model).__name__}.")
    style = style_for(options.target, options.runtimes or None)
    random_checks = options.random_checks
    if isinstance(random_checks, bool) or not isinstance(random_checks, int) or random_checks < 0:
        raise PoolportError(f"random_checks must be a whole number >= 0, got {random_checks!r}.")
    require_onnx()  # a clear error now if onnx or onnxruntime is missing
    args = as_args(args)
    rtol = model_rtol(args) if options.rtol is None else options.rtol
    axes = parse_dynamic_shapes(options.dynamic_shapes, args, model, options.dynamic_batch)
    plan = WritePlan(options.overwrite)
    path = plan.writes(f, "the model", data=options.external_data)
    if options.report is not None:
        plan.writes(options.report, "the report")
    plan.check()
    opset = options.opset
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise PoolportError(f"opset must be an ONNX opset number (7 or newer), got {opset!r}; leave it out for "
                            f"the exporter's default ({DEFAULT_OPSET[exporter]}).")
    opset = opset or DEFAULT_OPSET[exporter]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    report = Report(
        model=options.name or type(model).__name__,
        output=None,
        exporter=exporter,
        opset=opset,
        input_shapes=[list(a.shape) for a in tensors],
        input_dtypes=[str(a.dtype).removeprefix("torch.") for a in tensors],
        versions=versions(tuple(options.runtimes)),
        tolerance=rtol,
    )
    return ExportJob(model, args, path, options, opset, rtol, axes, report, started, style)


def make_portable_and_record(job: ExportJob) -> None:
    """Set ``job.portable``, the model to export, and check its pooling sites in PyTorch.

    An ``nn.Module`` is made portable (``make_portable``, weights shared) and run once on the example
    inputs with every pooling site recorded against torch's native op (in the size-generic formulation
    when a spatial axis is dynamic: what the graph will compute); the sites go to ``job.report.sites``
    and the output to ``job.reference``. A TorchScript model cannot be rewritten in Python: it is
    copied as it is, and its sites are recorded as the exporter converts them (``export_to_staging``).

    Raises:
        PoolportError: a TorchScript model with another exporter than ``"torchscript"``.
        VerificationError: a pooling site whose portable path differs from torch's native op.
    """
    job.scripted = is_scripted(job.model)
    if job.scripted:
        if job.options.exporter != "torchscript":
            raise PoolportError(
                "a TorchScript model exports with the torchscript exporter only: pass exporter='torchscript' "
                "(--exporter torchscript)."
            )
        # a scripted graph cannot be made portable in Python: custom ONNX symbolics convert it on export
        job.portable = copy.deepcopy(job.model).eval()
        return
    job.portable = make_portable(job.model, share_weights=True, target=job.style).eval()
    job.say("checking every pooling site in PyTorch")
    t = time.perf_counter()
    spatial = any(a.spatial for a in job.axes)
    with size_generic() if spatial else contextlib.nullcontext(), deploying_to(job.deployed_to):
        job.reference, job.report.sites = run_recorded(job.portable, job.args)  # what the graph computes
    problems = site_problems(job.report.sites)
    if problems:
        raise VerificationError("pooling sites failed verification:\n  " + "\n  ".join(problems))
    job.report.verify_seconds += time.perf_counter() - t


def export_to_staging(job: ExportJob, folder: Path) -> None:
    """Export ``job.portable`` with torch.onnx into ``folder`` (named like the destination) and set
    ``job.staged``. The TorchScript exporter writes pooling sites with poolport's ONNX symbolics; for a
    TorchScript model those are the sites the report lists. The dynamic axes become the file's: named as
    its inputs name them, within the sizes the exporter accepted (``export.dynamic.file_axes``); the report
    states them. Records the time taken.

    Raises:
        PoolportError: torch.onnx.export failed (its root cause, and the other exporter to try).
    """
    exporter = job.options.exporter
    job.say(f"exporting with the {exporter} exporter (opset {job.opset})")
    t = time.perf_counter()
    symbolics = portable_symbolics(job.style) if exporter == "torchscript" else contextlib.nullcontext([])
    with symbolics as emitted, emitting(job.style), deploying_to(job.deployed_to):
        job.staged, ranges = torch_export(job.portable, cloned(job.args), exporter, job.opset, folder,
                                          job.path.name, job.options.input_names, job.options.output_names,
                                          job.axes)
    if job.scripted:  # an nn.Module's sites were recorded in PyTorch before
        job.report.sites += [
            Site(f"{op_name} #{i + 1}", op_name, tuple(shape), tuple(size), plan, measured=False)
            for i, (op_name, shape, size, plan) in enumerate(emitted)
        ]
    job.axes = file_axes(job.axes, job.staged.proto, ranges)  # the file's names, the sizes it accepts
    job.report.dynamic_axes = [str(a) for a in job.axes]
    job.report.export_seconds = time.perf_counter() - t


def legalize_staged(job: ExportJob, folder: Path) -> None:
    """With a ``target``, rewrite the pooling attributes that target computes wrongly
    (``poolport.legalize``, unverified here: ``verify_staged`` checks the result against PyTorch in ONNX
    Runtime, which is cheaper than the reference evaluator). A rewritten model replaces ``job.staged``
    in ``folder``; the changes (and for ``"auto"`` the rules the probe chose) go to
    ``job.report.legalized``. Without a target, nothing happens.

    Raises:
        PoolportError: an unknown target, or a graph the legalizer cannot read.
        VerificationError: a pooling node the target computes wrongly that the legalizer keeps as it was
            (``legalize``'s ``KeptNodesError``).
    """
    target = job.options.target
    if target is None:
        return
    # imported here, not at the top: the legalizer imports onnx, and without onnx installed export_onnx
    # must still fail with validate_inputs' message saying how to install it
    from ..legalizer import legalize
    from ..legalizer.run import KeptNodesError

    runtimes = job.runtimes
    job.say(f"legalizing pooling attributes for {target}"
            + (f" (probing {', '.join(runtimes) or 'every installed runtime'})" if target == "auto" else ""))
    # by path: the staged graph's weights may be in its data file, which the checker must find.
    # auto probes the runtimes it verifies in, or every installed one
    try:
        result = legalize(job.staged.path, target=target, verify=False, runtimes=runtimes or None)
    except KeptNodesError as e:  # fail closed: a node the target computes wrongly is not written in silence
        raise VerificationError(f"{e} From export_onnx / convert: export without a target, then run `poolport "
                                f"legalize` on the file.") from None
    job.report.legalized = [str(c) for c in result.changes]
    if result.probe is not None:
        job.report.legalized.insert(0, f"auto: rules {', '.join(result.rules) or 'none'} from probing "
                                       + ", ".join(f"{k} {v}" for k, v in result.probe.versions.items()))
    if result.rewritten:
        job.staged = stage_proto(result.model, folder, job.path.name)


def check_staged(job: ExportJob) -> None:
    """Check the staged graph: the opset it imports is the one asked for (torch's dynamo exporter
    raises low requests), and onnx.checker accepts it at the oldest IR version that carries its opset
    (``poolport.onnxfile.ir``), which it is then published at. Records the IR version, the opset and the
    operator counts.

    Raises:
        PoolportError: another opset than the one asked for, or a graph onnx.checker refuses.
    """
    exporter, asked = job.options.exporter, job.options.opset
    written_opset = opset_of(job.staged.proto, job.opset)
    if asked is not None and written_opset != asked:
        raise PoolportError(
            f"opset {asked} was asked for, but the {exporter} exporter wrote opset {written_opset}; ask for "
            f"{written_opset} or newer" + (", or use exporter='torchscript' for older opsets"
                                           if exporter == "dynamo" else "") + "."
        )
    check_lowest_ir(job.staged)
    proto = job.staged.proto
    job.report.ir_version = proto.ir_version
    job.report.opset = opset_of(proto, job.opset)
    job.report.onnx_ops = dict(op_counts(proto))


def verify_staged(job: ExportJob) -> None:
    """Run the staged model in ONNX Runtime on the example inputs and ``random_checks`` random ones (and
    in each of ``runtimes`` on the example inputs), and for dynamic axes at other sizes inside their
    ranges, against the portable model in PyTorch; the checks and the sizes verified go to the report.
    With ``verify=False``, nothing happens.

    Raises:
        VerificationError: a runtime could not run the model or differs beyond the tolerance (the
            message holds the report's tables), or a dynamic model could be checked at fewer than three
            other sizes (fails closed).
        PoolportError: an unknown or missing runtime, or inputs that do not match the graph's.
    """
    if not job.options.verify:
        return
    out, runtimes, random_checks = job.report, job.runtimes, job.options.random_checks
    job.say(f"verifying in ONNX Runtime ({1 + random_checks} input sets){''.join(', ' + r for r in runtimes)}")
    t = time.perf_counter()
    sizes = verification_shapes(job.axes, job.args, out.sites) if job.axes else None
    refused: list = []
    out.checks = verify_in_runtimes(
        job.staged.path, job.portable, job.args, random_checks, job.rtol, runtimes, job.reference, sizes, job.say,
        refused, VERIFIED_SIZES,
    )
    out.sizes_verified = list(dict.fromkeys(c.inputs.removeprefix("random inputs at ")
                                            for c in out.checks if c.shapes is not None))
    if job.axes and (not sizes or len(out.sizes_verified) < min(3, len(sizes))):  # fail closed
        sizes = sizes[:len(out.sizes_verified) + len(refused)]  # those tried
        tried = ", ".join("x".join(map(str, s)) for shapes in sizes or () for s in shapes)
        why = f"; {refused[0]}" if refused else ""
        raise VerificationError(
            f"verification failed, nothing written to {job.path}: the model ran at only "
            f"{len(out.sizes_verified)} of the {len(sizes or ())} other sizes tried inside the dynamic ranges "
            f"({', '.join(out.dynamic_axes)})" + (f" (tried {tried}{why})" if sizes else "") + "; declare the "
            "sizes the model accepts: torch.export.Dim with min/max, and a multiple where it needs one (e.g. "
            "{2: 32 * h}; on the command line --dynamic-spatial MIN:MAX:STEP), so that it can be checked at "
            "sizes other than the example."
        )
    out.verify_seconds += time.perf_counter() - t
    failed = [c for c in out.checks if not c.passed]
    if failed:
        out.total_seconds = job.elapsed()
        raise VerificationError(
            f"verification failed, nothing written to {job.path}: {what_failed(failed, job.rtol)}.\n{out.table()}"
        )


def publish_staged(job: ExportJob) -> None:
    """Move the staged model to ``job.path`` (``poolport.onnxfile.staging.publish``): one self-contained
    file, or with ``external_data`` (and by default for models over 2 GB) the graph plus its data file,
    which the report then names.

    Raises:
        PoolportError: the destination appeared meanwhile (without ``overwrite``), or a model over 2 GB
            was asked for as one file.
    """
    written = publish(job.staged, job.path, job.options.overwrite, job.options.external_data)
    job.report.external_data = str(written) if written else None


def finish_report(job: ExportJob, error: PoolportError | None = None) -> None:
    """Close ``job.report``: the output path, or after a failure the first line of ``error``; the total
    time. With a ``report`` path the report is written there as JSON (whole or not at all), after a
    failure too (what was done and measured, and why it stopped)."""
    if error is None:
        job.report.output = str(job.path)
    else:
        job.report.error = str(error).split("\n")[0]
    job.report.total_seconds = job.elapsed()
    if job.options.report is not None:
        write_atomically((job.report.to_json() + "\n").encode(), Path(job.options.report), job.options.overwrite)


def export_onnx(
    model: torch.nn.Module,
    args: torch.Tensor | tuple | list,
    f: str | os.PathLike,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    verify: bool = True,
    report: str | os.PathLike | None = None,
    overwrite: bool = False,
    target: str | None = None,
    random_checks: int = 1,
    runtimes: tuple[str, ...] | list[str] = (),
    dynamic_batch: bool = False,
    dynamic_shapes: tuple | list | dict | None = None,
    rtol: float | None = None,
    external_data: bool | None = None,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Export ``model`` to ONNX at ``f`` with every adaptive pooling site made exact and portable.

    Verifies each pooling site in PyTorch, checks the graph with onnx.checker, runs it in ONNX
    Runtime on ``args`` and on ``random_checks`` fresh random inputs of the same shapes, compares with
    the PyTorch model output by output (each output's max abs error <= ``rtol`` x its own scale, with
    PyTorch's shape, dtype and NaN/inf cells, and something compared: ``verify.compare.compare_arrays``;
    ``rtol`` by default 1e-4 for float32 and float64 inputs, 1e-2 for float16, 2e-2 for bfloat16; PyTorch
    runs on copies of ``args``, which the call leaves as they were) and returns a Report. ``report``
    is an optional path for the report as JSON. ``runtimes`` ("openvino", "ncnn", "mnn", "litert") are also run on the
    example inputs and must agree as well (optional extras). ``target`` ("ncnn", "openvino", "litert", "mnn", ...,
    "all", or "auto": probe ``runtimes``, else every installed runtime, and rewrite what they get wrong)
    additionally legalizes pooling attributes that target computes wrongly (``poolport.legalize``), and
    chooses how the plans are written (``poolport.routing.targets``): the edge style (at most 5 inputs per
    Concat, repeated windows copied through 1x1 pools) for "litert"/"tflite", "all", and "auto" where LiteRT
    is among the runtimes; without a target, and for every other one, the default form with the fewest
    nodes. The report names each site's style. ``dynamic_batch`` makes dimension 0 of every input and output symbolic and adds a check at another
    batch size. ``dynamic_shapes`` (torch.onnx.export's format: per input ``{axis: torch.export.Dim or
    name}``, by position or by ``forward``'s parameter names) makes those axes dynamic for either
    exporter; adaptive pooling over a dynamic spatial size is written in the size-generic formulation
    (``poolport.plan.generic``), exact at every size, and verification also runs at other sizes inside the
    declared ranges (``export.dynamic.verification_shapes``). ``external_data``: write the weights
    to ``f`` + ".data" beside the graph (ONNX external data); by default (None) only for models over
    protobuf's 2 GB limit, otherwise ``f`` is one self-contained file.
    ``f``, its data file and ``report`` are checked together before any work: two of them on one file,
    or an existing one without ``overwrite``, is refused.
    Raises PoolportError if anything fails; ``f`` is then left as it was. Ctrl-C raises KeyboardInterrupt
    (also where a library turned it into an error of its own), leaving nothing behind and no report.
    """
    job = validate_inputs(model, args, f, ExportOptions(
        exporter=exporter, opset=opset, input_names=input_names, output_names=output_names, verify=verify,
        report=report, overwrite=overwrite, target=target, random_checks=random_checks, runtimes=runtimes,
        dynamic_batch=dynamic_batch, dynamic_shapes=dynamic_shapes, rtol=rtol, external_data=external_data,
        name=name, progress=progress,
    ))
    try:
        make_portable_and_record(job)
        with staging_folder(job.path) as folder:
            export_to_staging(job, folder)
            legalize_staged(job, folder)
            check_staged(job)
            verify_staged(job)
            publish_staged(job)
    except Exception as e:
        if is_interrupt(e):  # Ctrl-C that a library turned into an error of its own: not the model's failure
            raise KeyboardInterrupt from None
        if isinstance(e, PoolportError):
            finish_report(job, e)
        raise
    finish_report(job)
    job.say(f"wrote {job.path}")
    return job.report
