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

from ..errors import PoolportError
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
            f"{'them' if len(unknown) > 1 else 'it'} unconverted)."
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


class Ncnn(Runtime):
    """ncnn, reached through pnnx's ONNX converter."""

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` converted by pnnx (``fp16=0``) and run in ncnn on ``feeds``."""
        arrays = list(feeds.values())
        with as_file(model, self_contained=True) as source, tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.onnx"
            shutil.copyfile(source, path)
            shapes = ",".join("[" + ",".join(str(s) for s in a.shape) + "]" for a in arrays)
            cmd = [_pnnx_exe(), str(path), f"inputshape={shapes}", "fp16=0"]
            proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=300)
            param, binary = Path(d) / "m.ncnn.param", Path(d) / "m.ncnn.bin"
            if proc.returncode != 0 or not param.exists():
                raise PoolportError(f"pnnx could not convert the model: {(proc.stderr or proc.stdout)[-400:]}")
            return run_ncnn_files(param, binary, arrays)


RUNTIME = Ncnn("ncnn", label="ncnn", install="pip install 'poolport[runtimes]'",
               activity="converting with pnnx, running in ncnn", order=20, distributions=("pnnx", "ncnn"),
               modules=("ncnn", "pnnx"))
