"""Run an ONNX model in other runtimes, for verification (optional extras: ``poolport[runtimes]``).

* OpenVINO: compiled with ``INFERENCE_PRECISION_HINT=f32`` (its default is bf16 on some CPUs).
* ncnn via pnnx: converted with ``fp16=0`` (pnnx stores fp16 weights by default); inputs and outputs
  use pnnx's generated names (in0, in1, ... / out0, ...) and its batch convention (``batch_index=0``).
  ``ncnn.Mat(array)`` does not copy, so the arrays are kept alive until extraction ends.
* MNN (converter binding, CPU, fp32) and LiteRT (onnx2tf, in its own environment): in a separate
  process, see ``poolport.verify.isolated``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import PoolportError
from ..onnxfile.files import Model, as_file

NAMES = ("onnxruntime", "openvino", "ncnn", "mnn", "litert")
INSTALL = {
    "onnxruntime": "pip install 'poolport[onnx]'",
    "openvino": "pip install 'poolport[runtimes]'",
    "ncnn": "pip install 'poolport[runtimes]'",
    "mnn": "pip install 'poolport[runtimes]'",
    "litert": "make litert, or set POOLPORT_LITERT_PYTHON to a Python with onnx2tf and ai-edge-litert",
}


def available(name: str) -> bool:
    """Whether the runtime ``name`` (one of ``NAMES``) is installed here."""
    from .isolated import litert_python, mnn_available

    if name == "mnn":
        return mnn_available()
    if name == "litert":
        return litert_python() is not None
    try:
        if name == "openvino":
            import openvino  # noqa: F401
        elif name == "ncnn":
            import ncnn  # noqa: F401
            import pnnx  # noqa: F401
        elif name == "onnxruntime":
            import onnxruntime  # noqa: F401
        else:
            return False
        return True
    except ImportError:
        return False


def run_onnxruntime(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``model`` in ONNX Runtime (CPU) on ``feeds``."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_openvino(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``model`` in OpenVINO (CPU, f32 precision hint) on ``feeds``."""
    import openvino as ov

    core = ov.Core()
    with as_file(model) as path:
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled(feeds)
        return [np.asarray(result[out]) for out in compiled.outputs]


def _pnnx_exe() -> str:
    import pnnx

    return pnnx.EXEC_PATH


def run_ncnn(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
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


def version(name: str) -> str:
    """The installed version of runtime ``name`` ('' if not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from .isolated import litert_python, worker_version

    if name == "litert":
        python = litert_python()
        return worker_version("litert_worker", python) if python else ""
    dists = {"onnxruntime": ["onnxruntime"], "openvino": ["openvino"], "ncnn": ["pnnx", "ncnn"], "mnn": ["MNN"]}
    parts = []
    for dist in dists.get(name, []):
        try:
            parts.append(f"{dist} {dist_version(dist)}" if name == "ncnn" else dist_version(dist))
        except PackageNotFoundError:
            return ""
    return " -> ".join(parts)


def _run_mnn(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from .isolated import run_mnn

    return run_mnn(model, feeds)


def _run_litert(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from .isolated import run_litert

    return run_litert(model, feeds)


RUNNERS = {"onnxruntime": run_onnxruntime, "openvino": run_openvino, "ncnn": run_ncnn, "mnn": _run_mnn,
           "litert": _run_litert}


def run_batch(name: str, items: list) -> list:
    """Each ``(model, feeds)`` of ``items`` in runtime ``name``: its outputs, or the exception that says why
    the runtime refused it. MNN and LiteRT run the whole batch in one worker process."""
    from .isolated import litert_python, run_many

    if name == "mnn":
        import sys

        return run_many("mnn_worker", sys.executable, items, "MNN")
    if name == "litert":
        return run_many("litert_worker", litert_python(), items, "LiteRT (onnx2tf)")
    answers = []
    for model, feeds in items:
        try:
            answers.append(RUNNERS[name](model, feeds))
        except Exception as e:  # a refusal, reported per model
            answers.append(e)
    return answers
