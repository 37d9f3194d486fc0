"""Where a command may write: the one place that decides whether a path can be written without losing
anything (the model, its external data file, a report, a plot)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PoolportError
from .files import data_file


def check_destination(f, overwrite: bool, external_data: bool | None = False) -> Path:
    """``f`` as a Path, or a PoolportError if it cannot be written without losing something: a folder, an existing file (unless ``overwrite``), a missing or read-only folder."""
    path = Path(f)
    if path.is_dir():
        raise PoolportError(f"{path} is a folder; give a file name such as {path / 'model.onnx'}.")
    if path.exists() and not overwrite:
        raise PoolportError(f"{path} already exists; pass overwrite=True (--force) to replace it.")
    if external_data and data_file(path).exists() and not overwrite:
        raise PoolportError(f"{data_file(path)} already exists; pass overwrite=True (--force) to replace it.")
    if not path.parent.exists():
        raise PoolportError(f"folder {path.parent} does not exist.")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PoolportError(f"cannot write to folder {path.parent}; choose another output path.")
    return path

