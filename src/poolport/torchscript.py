"""TorchScript files: load them, and know that their adaptive pooling is converted by custom ONNX
symbolics (``backend.onnx_symbolic``) during the TorchScript exporter, since Python cannot reach
inside a scripted graph."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import PoolportError
from .loaders import Loaded


def load_torchscript(path: Path) -> Loaded:
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise PoolportError(f"{path} is not a loadable TorchScript file: {type(e).__name__}: {e}") from None
    return Loaded(model.eval(), "torchscript", path.stem, notes=["TorchScript: pooling converted by ONNX symbolics"])


def is_scripted(model) -> bool:
    return isinstance(model, torch.jit.ScriptModule)
