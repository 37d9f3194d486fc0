"""``export_onnx``: make portable, export with torch.onnx, check, verify in ONNX Runtime, report.

The output is written only after every check passed: the model is staged in a hidden folder beside
``f``, checked and verified there, then renamed into place (see ``staging``); an existing file is
replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..backend.onnx_symbolic import portable_symbolics
from ..errors import PoolportError, VerificationError
from ..functional.dispatch import size_generic
from ..loading import is_scripted
from ..onnxfile.files import require_onnx
from ..onnxfile.graph import op_counts, opset_of
from ..onnxfile.ir import check_lowest_ir
from ..onnxfile.paths import check_destination
from ..onnxfile.staging import publish, stage_proto, staging_folder
from ..routing.portable import make_portable
from ..verify.compare import verify_in_runtimes
from ..verify.in_pytorch import as_args, model_rtol, run_recorded, site_problems
from ..verify.recorder import Site
from .dynamic import parse_dynamic_shapes, verification_shapes
from .report import Report, versions
from .torch_onnx import DEFAULT_OPSET, EXPORTERS, torch_export

log = logging.getLogger("poolport")


def what_failed(failed: list, rtol: float) -> str:
    """The failed checks in a sentence: runtimes that could not run the model, then those that differ."""
    parts = []
    refused = [c for c in failed if not c.ran]
    if refused:
        runtimes = ", ".join(sorted({c.runtime for c in refused}))
        reasons = "; ".join(dict.fromkeys(c.note.rstrip(".") for c in refused))
        parts.append(f"{runtimes} could not load or convert the model ({reasons})")
    differ = [c for c in failed if c.ran]
    if differ:
        detail = "; ".join(
            f"{c.runtime} on {c.label}: "
            + (c.note or f"max abs {c.max_abs_error:.3g}, relative {c.max_rel_error:.3g}")
            for c in differ
        )
        runtimes = ", ".join(sorted({c.runtime for c in differ}))
        parts.append(f"{runtimes} differs from PyTorch beyond {rtol:g} x the output scale ({detail})")
    return "; ".join(parts)


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
    the PyTorch model (max abs error <= ``rtol`` x the output scale; by default 1e-4 for float32 and
    float64 inputs, 1e-2 for float16, 2e-2 for bfloat16) and returns a Report. ``report``
    is an optional path for the report as JSON. ``runtimes`` ("openvino", "ncnn", "mnn", "litert") are also run on the
    example inputs and must agree as well (optional extras). ``target`` ("ncnn", "openvino", "litert", "mnn", ...,
    "all", or "auto": probe ``runtimes``, else every installed runtime, and rewrite what they get wrong)
    additionally legalizes pooling attributes that target computes wrongly (``poolport.legalize``).
    ``dynamic_batch`` makes dimension 0 of every input and output symbolic and adds a check at another
    batch size. ``dynamic_shapes`` (torch.onnx.export's format: per input ``{axis: torch.export.Dim or
    name}``, by position or by ``forward``'s parameter names) makes those axes dynamic for either
    exporter; adaptive pooling over a dynamic spatial size is written in the size-generic formulation
    (``poolport.plan.generic``), exact at every size, and verification also runs at other sizes inside the
    declared ranges (``export.dynamic.verification_shapes``). ``external_data``: write the weights
    to ``f`` + ".data" beside the graph (ONNX external data); by default (None) only for models over
    protobuf's 2 GB limit, otherwise ``f`` is one self-contained file.
    Raises PoolportError if anything fails; ``f`` is then left as it was.
    """

    def say(msg: str) -> None:
        log.info(msg)
        if progress is not None:
            progress(msg)

    t_start = time.perf_counter()
    if exporter not in EXPORTERS:
        raise PoolportError(f"exporter must be one of {EXPORTERS}, got {exporter!r}.")
    if not isinstance(model, torch.nn.Module):
        raise PoolportError(f"export_onnx: expected a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(random_checks, bool) or not isinstance(random_checks, int) or random_checks < 0:
        raise PoolportError(f"random_checks must be a whole number >= 0, got {random_checks!r}.")
    require_onnx()  # a clear error now if onnx or onnxruntime is missing
    args = as_args(args)
    rtol = model_rtol(args) if rtol is None else rtol
    axes = parse_dynamic_shapes(dynamic_shapes, args, model, dynamic_batch)
    spatial = any(a.spatial for a in axes)
    path = check_destination(f, overwrite, external_data)
    if report is not None:
        check_destination(report, overwrite)
        if Path(report).resolve() == path.resolve():
            raise PoolportError(f"the report and the model would both be {path}; give the report another name.")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise PoolportError(f"opset must be an ONNX opset number (7 or newer), got {opset!r}; leave it out for "
                            f"the exporter's default ({DEFAULT_OPSET[exporter]}).")
    asked = opset
    opset = opset or DEFAULT_OPSET[exporter]
    out = Report(
        model=name or type(model).__name__,
        output=None,
        exporter=exporter,
        opset=opset,
        input_shapes=[list(a.shape) for a in args if isinstance(a, torch.Tensor)],
        input_dtypes=[str(a.dtype).removeprefix("torch.") for a in args if isinstance(a, torch.Tensor)],
        versions=versions(tuple(runtimes)),
        tolerance=rtol,
    )

    try:
        scripted = is_scripted(model)
        reference = None
        if scripted:
            if exporter != "torchscript":
                raise PoolportError(
                    "a TorchScript model exports with the torchscript exporter only: pass exporter='torchscript' "
                    "(--exporter torchscript)."
                )
            # a scripted graph cannot be made portable in Python: custom ONNX symbolics convert it on export
            portable = copy.deepcopy(model).eval()
        else:
            portable = make_portable(model, share_weights=True).eval()
            say("checking every pooling site in PyTorch")
            t = time.perf_counter()
            with size_generic() if spatial else contextlib.nullcontext():  # what the graph will compute
                reference, out.sites = run_recorded(portable, args)
            problems = site_problems(out.sites)
            if problems:
                raise VerificationError("pooling sites failed verification:\n  " + "\n  ".join(problems))
            out.verify_seconds += time.perf_counter() - t

        with staging_folder(path) as folder:
            say(f"exporting with the {exporter} exporter (opset {opset})")
            t = time.perf_counter()
            with portable_symbolics() if exporter == "torchscript" else contextlib.nullcontext([]) as emitted:
                staged = torch_export(portable, args, exporter, opset, folder, path.name, input_names, output_names,
                                      axes)
            if scripted:  # an nn.Module's sites were recorded in PyTorch above
                out.sites += [
                    Site(f"{op_name} #{i + 1}", op_name, tuple(shape), tuple(size), plan, measured=False)
                    for i, (op_name, shape, size, plan) in enumerate(emitted)
                ]
            out.dynamic_axes = [f"input {a.input} axis {a.axis}: {a.name} in [{a.min}, {a.max}]" for a in axes]
            out.export_seconds = time.perf_counter() - t
            if target is not None:
                from ..legalizer import legalize

                say(f"legalizing pooling attributes for {target}"
                    + (f" (probing {', '.join(runtimes) or 'every installed runtime'})" if target == "auto" else ""))
                # checked below against PyTorch in ONNX Runtime, which is cheaper than the reference evaluator
                # by path: the staged graph's weights may be in its data file, which the checker must find.
                # auto probes the runtimes it verifies in, or every installed one
                result = legalize(staged.path, target=target, verify=False, runtimes=tuple(runtimes) or None)
                out.legalized = [str(c) for c in result.changes]
                if result.probe is not None:
                    out.legalized.insert(0, f"auto: rules {', '.join(result.rules) or 'none'} from probing "
                                            + ", ".join(f"{k} {v}" for k, v in result.probe.versions.items()))
                if result.rewritten:
                    staged = stage_proto(result.model, folder, path.name)
            written_opset = opset_of(staged.proto, opset)
            if asked is not None and written_opset != asked:  # torch's dynamo exporter raises low requests
                raise PoolportError(
                    f"opset {asked} was asked for, but the {exporter} exporter wrote opset {written_opset}; ask for "
                    f"{written_opset} or newer" + (", or use exporter='torchscript' for older opsets"
                                                   if exporter == "dynamo" else "") + "."
                )
            check_lowest_ir(staged)
            proto = staged.proto
            out.ir_version = proto.ir_version
            out.opset = opset_of(proto, opset)
            out.onnx_ops = dict(op_counts(proto))

            if verify:
                say(f"verifying in ONNX Runtime ({1 + random_checks} input sets){''.join(', ' + r for r in runtimes)}")
                t = time.perf_counter()
                sizes = verification_shapes(axes, args, out.sites) if axes else None
                out.checks = verify_in_runtimes(
                    staged.path, portable, args, random_checks, rtol, tuple(runtimes), reference, sizes, say
                )
                out.sizes_verified = list(dict.fromkeys(c.inputs.removeprefix("random inputs at ")
                                                        for c in out.checks if c.shapes is not None))
                if axes and (not sizes or len(out.sizes_verified) < min(3, len(sizes))):  # fail closed
                    raise VerificationError(
                        f"verification failed, nothing written to {path}: the model ran at only "
                        f"{len(out.sizes_verified)} of {len(sizes or ())} other sizes inside the dynamic ranges "
                        f"({', '.join(out.dynamic_axes)}); declare ranges the model accepts (torch.export.Dim with "
                        f"min/max) so that it can be checked at sizes other than the example."
                    )
                out.verify_seconds += time.perf_counter() - t
                failed = [c for c in out.checks if not c.passed]
                if failed:
                    out.total_seconds = time.perf_counter() - t_start
                    raise VerificationError(
                        f"verification failed, nothing written to {path}: {what_failed(failed, rtol)}.\n{out.table()}"
                    )
            written = publish(staged, path, overwrite, external_data)
            out.external_data = str(written) if written else None
    except PoolportError as e:
        out.error = str(e).split("\n")[0]
        out.total_seconds = time.perf_counter() - t_start
        if report is not None:  # what was done and measured, and why it stopped
            Path(report).write_text(out.to_json() + "\n")
        raise
    out.output = str(path)
    out.total_seconds = time.perf_counter() - t_start
    if report is not None:
        Path(report).write_text(out.to_json() + "\n")
    say(f"wrote {path}")
    return out
