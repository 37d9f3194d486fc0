"""The torch.onnx exporters, called the way poolport needs them: staged on disk, a dynamic batch on
request, and a failure told as its root cause."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch

from ..errors import PoolportError, one_line
from ..functional.dispatch import refusals
from ..onnxfile.files import require_onnx
from ..onnxfile.staging import Staged, stage_file
from ..verify.compare import flatten_outputs

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}


def torch_export(model, args, exporter: str, opset: int, folder: Path, name: str, input_names=None,
                 output_names=None, axes: list | None = None) -> tuple[Staged, dict]:
    """Run torch.onnx.export and stage the result in ``folder`` as ``name``: the dynamo exporter's
    weights go to ``name.data``, a TorchScript export stays the one file torch wrote (see
    ``staging``). ``axes`` (``export.dynamic.DynamicAxis``) are made dynamic: ``Dim``s for the dynamo
    exporter, ``dynamic_axes`` for the TorchScript exporter. Returns the staged model and the sizes the
    exporter accepted per dynamic axis (``export.dynamic.exporter_ranges``)."""
    from ..backend.onnx_translation import onnx_translations
    from ..backend.traced_op import onnx_translation
    from .dynamic import exporter_ranges, for_dynamo, for_torchscript

    require_onnx()
    axes = axes or []
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    exported = folder / name
    try:
        with torch.no_grad(), refusals() as refused:
            if exporter == "dynamo":
                # poolport's translation table writes adaptive pooling over symbolic sizes as the TorchScript
                # path does (fast and exact at every size), and any native adaptive op left in the model
                with onnx_translation():
                    program = torch.onnx.export(
                        model, args, dynamo=True, opset_version=opset, input_names=input_names, verbose=False,
                        output_names=output_names, dynamic_shapes=for_dynamo(axes, args) if axes else None,
                        custom_translation_table=onnx_translations(),
                    )
            else:
                program = None
                dynamic_axes = None
                if axes:
                    input_names = input_names or [f"input{i}" for i in range(len(tensors))]
                    dynamic_axes = for_torchscript(axes, input_names)
                    if any(a.name == "batch" for a in axes):
                        n_out = len(flatten_outputs(model(*args)))
                        output_names = output_names or [f"output{i}" for i in range(n_out)]
                        dynamic_axes.update({n: {0: "batch"} for n in output_names})
                torch.onnx.export(
                    model, args, str(exported), dynamo=False, opset_version=opset, input_names=input_names,
                    output_names=output_names, dynamic_axes=dynamic_axes,
                )
        if refused:  # poolport refused a call and a later capture strategy exported torch's op instead
            raise refused[0]
    except PoolportError:
        raise
    except Exception as e:
        refusal = poolport_cause(e)
        if refusal is not None:  # poolport's own refusal inside the exporter (a translation): its whole reason
            raise refusal from e
        raise PoolportError(
            f"torch.onnx.export ({exporter} exporter) failed on a part of the model poolport does not "
            f"rewrite: {exporter_failure(e)} Try --exporter {'torchscript' if exporter == 'dynamo' else 'dynamo'}."
        ) from e
    if program is not None:
        return stage_program(program, folder, name), exporter_ranges(program, axes)
    return stage_file(exported), {}


def stage_program(program, folder: Path, name: str) -> Staged:
    """Stage a torch.onnx ONNXProgram (dynamo exporter): its weights are written straight to the
    data file, with no protobuf copy of them."""
    import onnx

    path = folder / name
    program.save(str(path), external_data=True)
    return Staged(path, onnx.load(str(path), load_external_data=False))


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CAUSE = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>: (.*)$", re.MULTILINE)  # "<class 'pkg.Error'>: message"


def poolport_cause(e: BaseException) -> PoolportError | None:
    """The PoolportError among ``e``'s causes (``raise ... from``: the dynamo exporter wraps what a translation
    raises so), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, PoolportError):
            return e
        seen.add(id(e))
        e = e.__cause__
    return None


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
                          axes: list | None = None):
    """torch.onnx.export as a ModelProto with its weights inline (for models under 2 GB)."""
    import onnx

    with tempfile.TemporaryDirectory() as d:
        staged, _ = torch_export(model, args, exporter, opset, Path(d), "model.onnx", input_names, output_names,
                                 axes)
        return onnx.load(str(staged.path))
