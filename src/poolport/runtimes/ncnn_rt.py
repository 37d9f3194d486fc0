"""ncnn via pnnx: the ONNX model converted by pnnx with ``fp16=0`` (pnnx stores fp16 weights by default),
then run in ncnn with every fp16/bf16 option off. Inputs and outputs use pnnx's generated names (in0,
in1, ... / out0, ...) and its batch convention (``batch_index=0``). ``ncnn.Mat(array)`` does not copy,
so the arrays are kept alive until extraction ends."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PoolportError, one_line
from ..onnxfile.files import Model, as_file
from .base import Feeds, Runtime

if TYPE_CHECKING:
    import numpy as np


def _pnnx_exe() -> str:
    import pnnx

    return pnnx.EXEC_PATH


def unknown_ncnn_layers(param_text: str) -> list[str]:
    """Layer types in an ncnn param file that this ncnn does not have (ncnn itself would only print
    "layer X not exists or registered" to the C++ standard error and fail)."""
    import ncnn

    lines = param_text.splitlines()[2:]  # magic number, then layer and blob counts
    types = dict.fromkeys(line.split()[0] for line in lines if line.split())
    return [t for t in types if ncnn.layer_to_index(t) == -1]


def run_ncnn_files(param: Path, binary: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Run a converted ncnn model (pnnx's naming: in0.. / out0..) on ``arrays`` (batch first)."""
    import ncnn
    import numpy as np

    text = Path(param).read_text()
    unknown = unknown_ncnn_layers(text)
    if unknown:
        raise PoolportError(
            f"ncnn cannot load the converted model: layer type{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} {'are' if len(unknown) > 1 else 'is'} not an ncnn layer (pnnx left "
            f"{'them' if len(unknown) > 1 else 'it'} unconverted){IF_HINT if 'If' in unknown else ''}."
        )
    n_out = sum(1 for line in text.splitlines() for tok in line.split() if tok.startswith("out") and tok[3:].isdigit())
    outputs = []
    with ncnn.Net() as net:
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_storage = False
        if net.load_param(str(param)) != 0 or net.load_model(str(binary)) != 0:
            raise PoolportError("ncnn could not load the converted model (its param or bin file was refused).")
        with net.create_extractor() as ex:
            keep = [np.ascontiguousarray(a) for a in arrays]  # ncnn.Mat does not copy
            for i, a in enumerate(keep):
                ex.input(f"in{i}", ncnn.Mat(a, batch_index=0).clone())
            for i in range(max(n_out, 1)):
                ret, out = ex.extract(f"out{i}")
                if ret != 0:
                    if i == 0:
                        raise PoolportError(f"ncnn could not compute out{i} (layer unsupported?):\n{text}")
                    break
                outputs.append(np.array(out.numpy(batch_index=0)))
    return outputs


def shapes_arg(shapes: list[tuple[int, ...]]) -> str:
    """Input shapes as pnnx's ``inputshape`` takes them: ``[1,3,64,64],[1,8]``."""
    return ",".join("[" + ",".join(str(s) for s in shape) + "]" for shape in shapes)


# ncnn has no If layer: poolport's size-generic graph for dynamic H/W cannot run there
IF_HINT = (" (ncnn has no If layer, which poolport's size-generic graph for dynamic H/W uses: for ncnn at every "
           "size convert the PyTorch model with pnnx and two input shapes, which keeps ncnn's own adaptive pooling, "
           "exact at every size; or export with static H/W)")


def convert_with_pnnx(path: Path, shapes: list[tuple[int, ...]],
                      shapes2: list[tuple[int, ...]] | None = None) -> tuple[Path, Path]:
    """Convert the ONNX file at ``path`` with pnnx (``fp16=0``) for inputs of ``shapes``, into ncnn's
    param and bin files beside it; with ``shapes2``, a second shape per input (pnnx's ``inputshape2``), pnnx
    writes a model for dynamic sizes, which ncnn runs at any size. Returns the two paths.

    Raises:
        PoolportError: pnnx refused the model (its own output's end says why).
    """
    cmd = [_pnnx_exe(), str(path), f"inputshape={shapes_arg(shapes)}"]
    if shapes2 is not None:
        cmd.append(f"inputshape2={shapes_arg(shapes2)}")
    proc = subprocess.run([*cmd, "fp16=0"], cwd=path.parent, capture_output=True, text=True, timeout=300)
    param, binary = path.with_suffix(".ncnn.param"), path.with_suffix(".ncnn.bin")
    if proc.returncode != 0 or not param.exists():
        hint = IF_HINT if _has_if(path) else ""
        raise PoolportError(f"pnnx could not convert the model{hint}: {(proc.stderr or proc.stdout)[-400:]}")
    return param, binary


def _has_if(path: Path) -> bool:
    """Whether the ONNX file at ``path`` has an ``If`` node in its main graph."""
    import onnx

    return any(n.op_type == "If" for n in onnx.load(str(path), load_external_data=False).graph.node)


def symbolic_inputs(path: Path) -> bool:
    """Whether an input of the ONNX file at ``path`` has a dimension that is not a fixed number."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {w.name for w in graph.initializer}
    return any(not d.HasField("dim_value") for i in graph.input if i.name not in weights
               for d in i.type.tensor_type.shape.dim)


def _size(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


class Ncnn(Runtime):
    """ncnn, reached through pnnx's ONNX converter."""

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` converted by pnnx (``fp16=0``) and run in ncnn on ``feeds``."""
        arrays = list(feeds.values())
        with as_file(model, self_contained=True) as source, tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.onnx"
            shutil.copyfile(source, path)
            param, binary = convert_with_pnnx(path, [a.shape for a in arrays])
            return run_ncnn_files(param, binary, arrays)

    def run_sizes(self, model: Model, feeds: list[Feeds]) -> tuple[list[list[np.ndarray] | Exception], str]:
        """``model`` on each of ``feeds``. Where the file's inputs have symbolic sizes and the sets differ
        only in their spatial axes (axis 2 on), pnnx converts it once, with the first set's shapes and a
        second set's (``inputshape2``: a model for dynamic sizes), and ncnn runs that at every size. Where
        pnnx refuses that conversion, or ncnn cannot run its result at a size, those sizes are converted one
        by one, as ``run`` does, and the note says so; once pnnx refuses the model at a size too, the sizes
        after it are not tried (each answers with that refusal: the check has failed already)."""
        shapes = [[tuple(a.shape) for a in f.values()] for f in feeds]
        other = next((s for s in shapes[1:] if s != shapes[0]), None)
        spatial_only = other is not None and all(
            len(s) == len(shapes[0]) and all(len(a) == len(b) and a[:2] == b[:2] for a, b in zip(s, shapes[0]))
            for s in shapes)
        if not spatial_only:
            return super().run_sizes(model, feeds)
        answers: list[list[np.ndarray] | Exception | None] = [None] * len(feeds)
        with as_file(model, self_contained=True) as source, tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.onnx"
            shutil.copyfile(source, path)
            if not symbolic_inputs(path):
                return super().run_sizes(model, feeds)
            try:
                param, binary = convert_with_pnnx(path, shapes[0], other)
            except Exception as e:  # pnnx refused, or ran past its time
                note = (f"pnnx could not convert the model for dynamic sizes ({one_line(e, 200).rstrip('.')}); "
                        f"it was converted at each size instead")
            else:
                failed = []
                for k, f in enumerate(feeds):
                    try:
                        answers[k] = run_ncnn_files(param, binary, list(f.values()))
                    except Exception as e:  # the dynamic model refused here: this size on its own, below
                        failed.append((k, e))
                if not failed:
                    return answers, ""
                e = failed[0][1]
                note = (f"ncnn could not run pnnx's conversion for dynamic sizes at "
                        f"{'; '.join(_size(shapes[k]) for k, _ in failed)} ({one_line(e, 200).rstrip('.')}); "
                        f"converted at each of those sizes instead")
            refused = ""
            for k, f in enumerate(feeds):
                if answers[k] is not None:
                    continue
                if refused:
                    answers[k] = PoolportError(f"not converted: pnnx refused the model at {refused}.")
                    continue
                folder = Path(d) / f"size{k}"
                folder.mkdir()
                shutil.copyfile(path, folder / path.name)
                try:
                    param, binary = convert_with_pnnx(folder / path.name, shapes[k])
                except Exception as e:  # the model itself, not its sizes: the sizes after it are not tried
                    answers[k], refused = e, _size(shapes[k])
                    continue
                try:
                    answers[k] = run_ncnn_files(param, binary, list(f.values()))
                except Exception as e:  # a refusal, reported per size
                    answers[k] = e
        return answers, note


RUNTIME = Ncnn("ncnn", label="ncnn", install="pip install 'poolport[runtimes]'",
               activity="converting with pnnx, running in ncnn", order=20, distributions=("pnnx", "ncnn"),
               modules=("ncnn", "pnnx"))
