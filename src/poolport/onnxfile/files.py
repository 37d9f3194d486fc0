"""ONNX model files as the runtimes read them: whether onnx and onnxruntime are there, where a model's
external data lives, and a path to any model (a file, or a temporary copy of a ModelProto)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import PoolportError


def require_onnx():
    """``(onnx, onnxruntime)``, or a PoolportError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise PoolportError(
            f"ONNX export needs onnx and onnxruntime ({e.name} is missing): pip install 'poolport[onnx]'."
        ) from None
    return onnx, onnxruntime


def data_file(path: Path) -> Path:
    """Where the external data of the model at ``path`` lives (torch.onnx's own naming)."""
    return path.with_name(path.name + ".data")


def has_external_data(proto) -> bool:
    """Whether any initializer of ``proto`` keeps its data in an external file."""
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def _tensors(graph):
    """Every TensorProto of ``graph``: initializers, and tensors in node attributes (subgraphs too)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def external_data_files(path: str | os.PathLike) -> list[Path]:
    """The external data files the ONNX model at ``path`` names (its weights, by their ``location``
    relative to the model's folder), in order, each once; none for a self-contained model or a file
    onnx cannot read."""
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not an ONNX model: whoever reads it says so
        return []
    files = {}
    for t in _tensors(proto.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in t.external_data if e.key == "location"), None)
            if location:
                files.setdefault(path.parent / location, None)
    return list(files)


Model = "onnx.ModelProto | str | os.PathLike"


@contextlib.contextmanager
def as_file(model: Model, self_contained: bool = False):
    """A path to ``model``: the file itself, or a temporary copy of a ModelProto. With
    ``self_contained``, a model whose weights are external data is copied into one file (for tools
    that read only the graph file)."""
    import onnx

    if isinstance(model, (str, os.PathLike)):
        if not self_contained or not has_external_data(onnx.load(str(model), load_external_data=False)):
            yield Path(model)
            return
        model = onnx.load(str(model))
        from onnx.external_data_helper import convert_model_from_external_data

        convert_model_from_external_data(model)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.onnx"
        onnx.save(model, str(path))
        yield path
