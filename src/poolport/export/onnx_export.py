"""``export_onnx``: make portable, export with torch.onnx, check, verify in ONNX Runtime, report.

The output is written only after every check passed: the model is staged in a hidden folder beside
``f``, checked and verified there, then renamed into place (see ``staging``); an existing file is
replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..backend.onnx_symbolic import portable_symbolics
from ..errors import PoolportError, one_line
from ..portable import make_portable
from ..sites import Site
from ..torchscript import is_scripted
from ..verify import as_args, run_recorded, site_problems
from .graph import op_counts
from .report import Check, Report
from .staging import (
    Staged,
    check,
    check_destination,
    publish,
    stage_file,
    stage_program,
    staging_folder,
)

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}


def _lazy_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise PoolportError(
            f"ONNX export needs onnx and onnxruntime ({e.name} is missing): pip install 'poolport[onnx]'."
        ) from None
    return onnx, onnxruntime


def flatten_outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    if out is None:
        return []
    raise PoolportError(f"cannot verify a model output of type {type(out).__name__}; return tensors.")


def random_like(args: tuple, seed: int, batch: int | None = None) -> tuple:
    """Fresh inputs with the shapes and dtypes of ``args`` (integers stay within the examples' range);
    ``batch`` replaces dimension 0 of every tensor."""
    g = torch.Generator().manual_seed(seed)
    fresh = []
    for a in args:
        if not isinstance(a, torch.Tensor):
            fresh.append(a)
            continue
        shape = a.shape if batch is None or a.dim() == 0 else (batch, *a.shape[1:])
        if a.dtype.is_floating_point:
            fresh.append(torch.randn(shape, generator=g, dtype=torch.float32).to(a.dtype))
        elif a.dtype == torch.bool:
            fresh.append(torch.rand(shape, generator=g) > 0.5)
        else:
            lo, hi = (int(a.min()), int(a.max())) if a.numel() else (0, 1)
            fresh.append(torch.randint(lo, hi + 1, shape, generator=g, dtype=a.dtype))
    return tuple(fresh)


def minimal_ir_version(opset: int) -> int:
    """The oldest ONNX IR version that carries ``opset``: what the most runtimes load."""
    import onnx

    return min(ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset)


def check_lowest_ir(staged: Staged) -> None:
    """onnx.checker on the staged model, at the oldest IR version that carries its opset (what the
    most runtimes load: pnnx's ONNX Runtime takes IR <= 13) when the model allows, else at the
    exporter's own version."""
    original = staged.proto.ir_version
    opset = next((o.version for o in staged.proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and minimal_ir_version(opset) < original:
        staged.set_ir_version(minimal_ir_version(opset))
        try:
            check(staged)
            return
        except PoolportError:  # a newer-IR feature is in use: keep the exporter's version
            staged.set_ir_version(original)
    check(staged)


@contextlib.contextmanager
def quiet():
    """torch.onnx prints progress, warnings and (from C++, straight to the file descriptors) whole IR
    graphs of its own; keep them off the terminal. Yields a buffer with what Python printed."""
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    saved = []
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
                    warnings.simplefilter("ignore")
                    yield buf
            finally:
                for fd, copy in saved:
                    os.dup2(copy, fd)
                    os.close(copy)
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def torch_export(model, args, exporter: str, opset: int, folder: Path, name: str, input_names=None,
                 output_names=None, dynamic_batch: bool = False) -> Staged:
    """Run torch.onnx.export and stage the result in ``folder`` as ``name``: the dynamo exporter's
    weights go to ``name.data``, a TorchScript export stays the one file torch wrote (see
    ``staging``). With ``dynamic_batch``, dimension 0 of every tensor input and output is a symbol
    ("batch")."""
    _lazy_onnx()
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    exported = folder / name
    try:
        with quiet(), torch.no_grad():
            if exporter == "dynamo":
                dynamic_shapes = None
                if dynamic_batch:
                    batch = torch.export.Dim("batch", min=1, max=1 << 16)
                    dynamic_shapes = tuple({0: batch} if isinstance(a, torch.Tensor) else None for a in args)
                program = torch.onnx.export(
                    model, args, dynamo=True, opset_version=opset, input_names=input_names,
                    output_names=output_names, dynamic_shapes=dynamic_shapes,
                )
            else:
                program = None
                dynamic_axes = None
                if dynamic_batch:
                    input_names = input_names or [f"input{i}" for i in range(len(tensors))]
                    n_out = len(flatten_outputs(model(*args)))
                    output_names = output_names or [f"output{i}" for i in range(n_out)]
                    dynamic_axes = {n: {0: "batch"} for n in [*input_names, *output_names]}
                torch.onnx.export(
                    model, args, str(exported), dynamo=False, opset_version=opset, input_names=input_names,
                    output_names=output_names, dynamic_axes=dynamic_axes,
                )
    except PoolportError:
        raise
    except Exception as e:
        raise PoolportError(
            f"torch.onnx.export ({exporter} exporter) failed on a part of the model poolport does not "
            f"rewrite: {exporter_failure(e)} Try --exporter {'torchscript' if exporter == 'dynamo' else 'dynamo'}."
        ) from e
    if program is not None:
        return stage_program(program, folder, name)
    return stage_file(exported)


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CAUSE = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>: (.*)$", re.MULTILINE)  # "<class 'pkg.Error'>: message"


def exporter_failure(e: BaseException) -> str:
    """What went wrong in torch.onnx.export, in one sentence. The dynamo exporter's ConversionError
    opens with generic advice (in terminal colours) and lists its chain of causes as
    "<class 'X'>: message" lines, the root cause first: report that one."""
    text = ANSI_COLOUR.sub("", str(e)).strip()
    cause = CAUSE.search(text)
    if cause:
        what = f"{cause[1]}: {cause[2]}"
    else:
        what = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
    return one_line(what)


def torch_export_to_proto(model, args, exporter: str, opset: int, input_names=None, output_names=None,
                          dynamic_batch: bool = False):
    """torch.onnx.export as a ModelProto with its weights inline (for models under 2 GB)."""
    import onnx

    with tempfile.TemporaryDirectory() as d:
        staged = torch_export(model, args, exporter, opset, Path(d), "model.onnx", input_names, output_names,
                              dynamic_batch)
        return onnx.load(str(staged.path))


def compare(reference: list[torch.Tensor], got: list, rtol: float, inputs: str, runtime: str) -> Check:
    if len(reference) != len(got):
        return Check(inputs, runtime, float("inf"), float("inf"), False)
    max_abs, scale = 0.0, 0.0
    for r, g in zip(reference, got):
        r = r.detach().double().numpy()
        g = np.asarray(g, dtype=np.float64)
        if r.shape != g.shape:
            return Check(inputs, runtime, float("inf"), float("inf"), False)
        if r.size:
            max_abs = max(max_abs, float(np.abs(r - g).max()))
            scale = max(scale, float(np.abs(r).max()))
    rel = max_abs / scale if scale > 0 else max_abs
    return Check(inputs, runtime, max_abs, rel, bool(rel <= rtol))


def verify_in_runtimes(model_path: Path, model, args: tuple, random_checks: int, rtol: float,
                       runtimes: tuple[str, ...] = (), example_output=None, other_batch: int | None = None) -> list[Check]:
    """ONNX Runtime on the example inputs and ``random_checks`` random ones; each runtime in
    ``runtimes`` (openvino, ncnn: see ``poolport.runtimes``) on the example inputs.
    ``example_output``: PyTorch's output for the example inputs, if already computed.
    ``other_batch``: the last random set uses this batch size (checks a dynamic batch dimension)."""
    from ..runtimes import RUNNERS, available

    _, ort = _lazy_onnx()
    unknown = [r for r in runtimes if r not in RUNNERS or r == "onnxruntime"]
    if unknown:
        raise PoolportError(f"cannot verify in {unknown}: choose from {sorted(set(RUNNERS) - {'onnxruntime'})}.")
    missing = [r for r in runtimes if not available(r)]
    if missing:
        raise PoolportError(f"{', '.join(missing)} not installed: pip install 'poolport[runtimes]'.")
    sess = ort.InferenceSession(str(model_path), verification_session_options(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    checks = []
    sets = [("example inputs", args)] + [(f"random inputs #{i + 1}", random_like(args, i)) for i in range(random_checks)]
    if other_batch is not None:
        sets.append((f"random inputs, batch {other_batch}", random_like(args, random_checks, other_batch)))
    for label, inputs in sets:
        tensors = [a for a in inputs if isinstance(a, torch.Tensor)]
        if len(tensors) != len(names):
            raise PoolportError(
                f"the exported model takes {len(names)} inputs ({', '.join(names)}) but {len(tensors)} "
                f"tensors were given; pass every model input as a tensor."
            )
        if label == "example inputs" and example_output is not None:
            reference = flatten_outputs(example_output)
        else:
            with torch.no_grad():
                reference = flatten_outputs(model(*inputs))
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
        checks.append(compare(reference, sess.run(None, feeds), rtol, label, "onnxruntime"))
        if label != "example inputs":
            continue
        for runtime in runtimes:
            try:
                got = RUNNERS[runtime](model_path, feeds)
            except Exception as e:  # a runtime that refuses the model fails the check, with the reason
                note = f"{type(e).__name__}: {str(e)[:80]}"
                checks.append(Check(label, runtime, float("inf"), float("inf"), False, note))
                continue
            got = [np.asarray(g).reshape(r.shape) if np.asarray(g).size == r.numel() else g for g, r in zip(got, reference)]
            checks.append(compare(reference, got, rtol, label, runtime))
    return checks


def verification_session_options():
    """ONNX Runtime's defaults (graph optimisations on, as deployments run it), without weight
    prepacking: a session that runs a few times does not repay copying every weight into packed form."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts


def export_onnx(
    model: torch.nn.Module,
    args,
    f,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    verify: bool = True,
    report=None,
    overwrite: bool = False,
    target: str | None = None,
    random_checks: int = 1,
    runtimes: tuple[str, ...] | list[str] = (),
    dynamic_batch: bool = False,
    rtol: float = 1e-4,
    external_data: bool | None = None,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Export ``model`` to ONNX at ``f`` with every adaptive pooling site made exact and portable.

    Verifies each pooling site in PyTorch, checks the graph with onnx.checker, runs it in ONNX
    Runtime on ``args`` and on ``random_checks`` fresh random inputs of the same shapes, compares with
    the PyTorch model (max abs error <= ``rtol`` x the output scale) and returns a Report. ``report``
    is an optional path for the report as JSON. ``runtimes`` ("openvino", "ncnn") are also run on the
    example inputs and must agree as well (optional extras). ``target`` ("ncnn", "openvino", ... or "all")
    additionally legalizes pooling attributes that target computes wrongly (``poolport.legalize``).
    ``dynamic_batch`` makes dimension 0 of every input and output symbolic (pooling plans depend on the
    spatial sizes only) and adds a check at another batch size. ``external_data``: write the weights
    to ``f`` + ".data" beside the graph (ONNX external data); by default (None) only for models over
    protobuf's 2 GB limit, otherwise ``f`` is one self-contained file.
    Raises PoolportError if anything fails; ``f`` is then left as it was.
    """
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    if exporter not in EXPORTERS:
        raise PoolportError(f"exporter must be one of {EXPORTERS}, got {exporter!r}.")
    if not isinstance(model, torch.nn.Module):
        raise PoolportError(f"export_onnx: expected a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(random_checks, bool) or not isinstance(random_checks, int) or random_checks < 0:
        raise PoolportError(f"random_checks must be a whole number >= 0, got {random_checks!r}.")
    _lazy_onnx()  # a clear error now if onnx or onnxruntime is missing
    args = as_args(args)
    path = check_destination(f, overwrite, external_data)
    if report is not None:
        check_destination(report, overwrite)
    opset = opset or DEFAULT_OPSET[exporter]
    out = Report(
        model=name or type(model).__name__,
        output=None,
        exporter=exporter,
        opset=opset,
        input_shapes=[list(a.shape) for a in args if isinstance(a, torch.Tensor)],
        tolerance=rtol,
    )

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
        reference, out.sites = run_recorded(portable, args)
        problems = site_problems(out.sites)
        if problems:
            raise PoolportError("pooling sites failed verification:\n  " + "\n  ".join(problems))
        out.verify_seconds += time.perf_counter() - t

    with staging_folder(path) as folder:
        say(f"exporting with the {exporter} exporter (opset {opset})")
        t = time.perf_counter()
        with portable_symbolics(opset) if scripted else contextlib.nullcontext([]) as emitted:
            staged = torch_export(portable, args, exporter, opset, folder, path.name, input_names, output_names,
                                  dynamic_batch)
        out.sites += [
            Site(f"{op_name} #{i + 1}", op_name, shape, size, plan, measured=False)
            for i, (op_name, shape, size, plan) in enumerate(emitted)
        ]
        out.export_seconds = time.perf_counter() - t
        if target is not None:
            from ..legalizer import legalize

            say(f"legalizing pooling attributes for {target}")
            # checked below against PyTorch in ONNX Runtime, which is cheaper than the reference evaluator
            proto, changes = legalize(staged.proto, target=target, verify=False, return_changes=True)
            out.legalized = [str(c) for c in changes]
            if changes:
                staged.proto = proto
                staged.save_graph()
        check_lowest_ir(staged)
        proto = staged.proto
        out.ir_version = proto.ir_version
        out.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
        out.onnx_ops = dict(op_counts(proto))

        if verify:
            say(f"verifying in ONNX Runtime ({1 + random_checks} input sets){''.join(', ' + r for r in runtimes)}")
            t = time.perf_counter()
            other_batch = None
            if dynamic_batch:
                first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0), None)
                other_batch = 3 if first is None or first.shape[0] != 3 else 2
            out.checks = verify_in_runtimes(
                staged.path, portable, args, random_checks, rtol, tuple(runtimes), reference, other_batch
            )
            out.verify_seconds += time.perf_counter() - t
            failed = [c for c in out.checks if not c.passed]
            if failed:
                out.total_seconds = time.perf_counter() - t_start
                detail = "; ".join(
                    f"{c.runtime} on {c.inputs}: max abs {c.max_abs_error:.3g}, relative {c.max_rel_error:.3g}"
                    for c in failed
                )
                where = ", ".join(sorted({c.runtime for c in failed}))
                raise PoolportError(
                    f"verification failed, nothing written to {path}: {where} differs from PyTorch beyond "
                    f"{rtol:g} x the output scale ({detail}).\n{out.table()}"
                )
        written = publish(staged, path, overwrite, external_data)
        out.external_data = str(written) if written else None
    out.output = str(path)
    out.total_seconds = time.perf_counter() - t_start
    if report is not None:
        Path(report).write_text(out.to_json() + "\n")
    say(f"wrote {path}")
    return out
