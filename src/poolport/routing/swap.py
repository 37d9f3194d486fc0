"""Giving torch's adaptive pooling modules poolport's classes: the one swap that ``make_portable``
(permanently, on its copy) and ``patch(model)`` (for the duration of a block) share."""

from __future__ import annotations

from torch import nn

from .. import nn as pnn

SWAP = {
    nn.AdaptiveAvgPool1d: pnn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d: pnn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d: pnn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d: pnn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d: pnn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d: pnn.AdaptiveMaxPool3d,
}


def swap_modules(model: nn.Module, style: str | None = None) -> list[tuple[nn.Module, type, str]]:
    """Give every module of ``model`` whose class is exactly one of torch's adaptive pooling classes the
    poolport class of the same name (same state and repr), in place, and remember its path for reports
    and the ``style`` its plan is written in (``plan.pooling.STYLES``; None: the caller's context).
    Subclasses and ``return_indices=True`` stay (the function mode covers their calls).

    Returns ``(module, original class, path)`` for each swapped module (see ``restore_modules``)."""
    swapped = []
    for name, module in model.named_modules():
        cls = SWAP.get(type(module))
        if cls is None or getattr(module, "return_indices", False):
            continue
        swapped.append((module, type(module), name))
        module.__class__ = cls
        module._poolport_site = name or "<root>"
        if style is not None:
            module._poolport_style = style
    return swapped


def restore_modules(swapped: list[tuple[nn.Module, type, str]]) -> None:
    """Undo ``swap_modules``."""
    for module, cls, _ in swapped:
        module.__class__ = cls
        del module._poolport_site
        module.__dict__.pop("_poolport_style", None)
