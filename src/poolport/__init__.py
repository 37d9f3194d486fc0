"""poolport: every PyTorch pooling layer, exactly, on every inference runtime.

The planning layer (``poolport.plan``) is pure Python and imports without torch; everything else is
loaded on first use.
"""

from __future__ import annotations

import importlib

from .errors import PoolportError
from .version import __version__

_LAZY = {
    "functional": ("poolport.functional", None),
    "nn": ("poolport.nn", None),
    "plan": ("poolport.plan", None),
    "always_portable": ("poolport.functional.dispatch", "always_portable"),
    "make_portable": ("poolport.routing.portable", "make_portable"),
    "patch": ("poolport.routing.intercept", "patch"),
    "export_onnx": ("poolport.export.onnx_export", "export_onnx"),
    "onnx_translations": ("poolport.backend.onnx_translation", "onnx_translations"),
    "Report": ("poolport.export.report", "Report"),
    "verify_sites": ("poolport.verify.in_pytorch", "verify_sites"),
    "legalize": ("poolport.legalizer", "legalize"),
}

__all__ = ["PoolportError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'poolport' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
