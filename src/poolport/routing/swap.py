"""Giving torch's adaptive pooling modules poolport's classes: the one swap that ``make_portable``
(permanently, on its copy) and ``patch(model)`` (for the duration of a block) share."""

from __future__ import annotations

from torch import nn

from .. import nn as pnn
from ..errors import PoolportError

SWAP = {
    nn.AdaptiveAvgPool1d: pnn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d: pnn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d: pnn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d: pnn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d: pnn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d: pnn.AdaptiveMaxPool3d,
}


def _dilated(m: nn.Module) -> bool:
    return any(d != 1 for d in (m.dilation if isinstance(m.dilation, (tuple, list)) else (m.dilation,)))


# torch's plain pooling: swapped only where some runtime needs poolport's form (the predicate says when)
NEEDED = {
    nn.AvgPool2d: lambda m: m.divisor_override is not None,
    nn.AvgPool3d: lambda m: m.divisor_override is not None,
    nn.MaxPool1d: _dilated,
    nn.MaxPool2d: _dilated,
    nn.MaxPool3d: _dilated,
    nn.LPPool1d: lambda m: True,
    nn.LPPool2d: lambda m: True,
    nn.LPPool3d: lambda m: True,
    nn.FractionalMaxPool2d: lambda m: True,  # its samples fixed: poolport writes their windows; random: refused
    nn.FractionalMaxPool3d: lambda m: True,
}
SWAP.update({cls: getattr(pnn, cls.__name__) for cls in NEEDED})


FRACTIONAL = {nn.FractionalMaxPool2d: pnn.FractionalMaxPool2d, nn.FractionalMaxPool3d: pnn.FractionalMaxPool3d}


def check_fractional_module(module: nn.Module, path: str) -> None:
    """Refuse a ``FractionalMaxPool`` whose windows are drawn at random (no ``_random_samples`` buffer):
    no graph can equal it, and a graph that fixed one draw would be silently wrong on every other call."""
    if module._random_samples is not None:
        return
    d = len(module.kernel_size)
    size = (f"output_size={tuple(module.output_size)}" if module.output_size is not None
            else f"output_ratio={tuple(module.output_ratio)}")
    raise PoolportError(
        f"layer {path or '<root>'!r} ({type(module).__name__}, kernel_size={tuple(module.kernel_size)}, {size}) draws its "
        f"windows at random on each call, so no graph can equal it. Fix them with "
        f"`_random_samples=torch.rand(N, C, {d})` (a buffer: poolport then writes their windows exactly), or use "
        f"AdaptiveMaxPool{d}d.")


def swap_modules(model: nn.Module, style: str | None = None) -> list[tuple[nn.Module, type, str]]:
    """Give every module of ``model`` whose class is exactly one of torch's adaptive pooling classes the
    poolport class of the same name (same state and repr), in place, and remember its path for reports
    and the ``style`` its plan is written in (``plan.pooling.STYLES``; None: the caller's context).
    Subclasses and ``return_indices=True`` stay (the function mode covers their calls).

    Returns ``(module, original class, path)`` for each swapped module (see ``restore_modules``).

    Raises:
        PoolportError: a ``FractionalMaxPool2d/3d`` without fixed samples (``check_fractional_module``),
            before anything is swapped."""
    for name, module in model.named_modules():  # before anything is swapped: a refusal leaves model as it was
        if type(module) in FRACTIONAL or type(module) in FRACTIONAL.values():
            check_fractional_module(module, name)
    swapped = []
    for name, module in model.named_modules():
        cls = SWAP.get(type(module))
        if cls is None or getattr(module, "return_indices", False):
            continue
        if type(module) in NEEDED and not NEEDED[type(module)](module):
            continue
        swapped.append((module, type(module), name))
        module.__class__ = cls
        module._poolport_site = name or "<root>"
        if style is not None:
            module._poolport_style = style
        if type(module) in FRACTIONAL.values():
            module._poolport_keep_samples()
    return swapped


def restore_modules(swapped: list[tuple[nn.Module, type, str]]) -> None:
    """Undo ``swap_modules``."""
    for module, cls, _ in swapped:
        module.__class__ = cls
        del module._poolport_site
        module.__dict__.pop("_poolport_style", None)
        module.__dict__.pop("_poolport_real_samples", None)
