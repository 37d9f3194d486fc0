"""poolport: every PyTorch pooling layer, exactly, on every inference runtime.

The planning layer (``poolport.plan``) is pure Python and imports without torch; everything else is
loaded on first use.
"""

from __future__ import annotations

import importlib
import os
import sys

# No traffic at run time from what poolport drives (measured with strace, README "No network"):
# * ONNX Runtime (1.32) resolves a telemetry host about 9 s after its import unless this variable is set
#   before it; poolport imports it lazily, after this line, and so do the worker processes it starts (they
#   inherit the environment). A value the user set is kept.
# * OpenVINO sends a usage event to Google Analytics when `openvino` is imported (its `tools.ovc` imports
#   `openvino_telemetry`; it falls back to a silent stub when that import fails): block that module, unless
#   it was imported already.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]

from .errors import PoolportError  # noqa: E402  (after the environment is set)
from .version import __version__  # noqa: E402

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
