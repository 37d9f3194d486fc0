"""``poolport.legalize``: rewrite ONNX pooling nodes a target runtime computes wrongly into explicit,
equivalent forms, and verify the result against the original.

Loaded on first use (like the package root): ``poolport.legalizer.targets`` is plain data the command line
reads at start-up, and importing it must not import onnx and torch through ``legalize``. The function lives
in ``run.py``: a submodule named ``legalize`` would replace the function ``legalize`` on this package as soon
as it is imported."""

import importlib

__all__ = ["Kept", "LegalizeResult", "PoolRewrite", "legalize"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".run", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
