"""Drop-in modules: subclasses of torch's adaptive pooling modules (same constructor, state and repr)
whose forward is poolport's exact, portable implementation.

``torch.jit.script`` compiles them to torch's native op (TorchScript cannot hold poolport's Python); a
scripted model then exports portably through poolport's ONNX symbolics (``poolport convert``). No
``from __future__ import annotations`` here: TorchScript reads these annotations at run time."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PoolportError
from ..functional.adaptive import NATIVE, adaptive_pool, no_indices_error
from ..functional.dispatch import active_observer, use_portable


def check_output_size(output_size, d: int, cls: str) -> None:
    """Validate at construction, so that plain eager calls can go straight to the native op."""
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * d
    if len(sizes) != d or not all(o is None or (isinstance(o, int) and not isinstance(o, bool) and o > 0) for o in sizes):
        raise PoolportError(f"{cls}: output_size must be a positive int or {d} positive ints / None, got {output_size!r}.")


def plain_eager(x) -> bool:
    """True for a plain eager call with nothing recording or observing: the native op answers it."""
    return type(x) is torch.Tensor and not use_portable(x) and active_observer() is None


class _Site:
    """Shared by the drop-in modules: checks ``output_size`` at construction and carries the site name."""

    # the module's path in its model, set by poolport.make_portable; names the site in reports
    _poolport_site: Optional[str] = None
    # how its plan is written (plan.pooling.STYLES), set by make_portable/patch for their target;
    # None: poolport.functional.dispatch.emitting's
    _poolport_style: Optional[str] = None
    _d: int

    def __init__(self, output_size, *args) -> None:
        check_output_size(output_size, self._d, type(self).__name__)
        super().__init__(output_size, *args)


class AdaptiveAvgPool1d(_Site, nn.AdaptiveAvgPool1d):
    """Drop-in ``torch.nn.AdaptiveAvgPool1d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_avg_pool1d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_avg_pool1d(input, self.output_size)
        return self._portable(input)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        if plain_eager(input):
            return NATIVE["avg", 1](input, self.output_size)
        return adaptive_pool(input, self.output_size, "avg", 1, site=self._poolport_site,
                             style=self._poolport_style)


class AdaptiveAvgPool2d(_Site, nn.AdaptiveAvgPool2d):
    """Drop-in ``torch.nn.AdaptiveAvgPool2d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_avg_pool2d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 2

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_avg_pool2d(input, self.output_size)
        return self._portable(input)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        if plain_eager(input):
            return NATIVE["avg", 2](input, self.output_size)
        return adaptive_pool(input, self.output_size, "avg", 2, site=self._poolport_site,
                             style=self._poolport_style)


class AdaptiveAvgPool3d(_Site, nn.AdaptiveAvgPool3d):
    """Drop-in ``torch.nn.AdaptiveAvgPool3d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_avg_pool3d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 3

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_avg_pool3d(input, self.output_size)
        return self._portable(input)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        if plain_eager(input):
            return NATIVE["avg", 3](input, self.output_size)
        return adaptive_pool(input, self.output_size, "avg", 3, site=self._poolport_site,
                             style=self._poolport_style)


class _PortableMaxMixin(_Site):
    def __init__(self, output_size, return_indices: bool = False) -> None:
        if return_indices:
            raise no_indices_error(self._d)
        super().__init__(output_size, return_indices)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        if plain_eager(input):
            return NATIVE["max", self._d](input, self.output_size)
        return adaptive_pool(input, self.output_size, "max", self._d, site=self._poolport_site,
                             style=self._poolport_style)


class AdaptiveMaxPool1d(_PortableMaxMixin, nn.AdaptiveMaxPool1d):
    """Drop-in ``torch.nn.AdaptiveMaxPool1d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_max_pool1d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_max_pool1d(input, self.output_size)
        return self._portable(input)


class AdaptiveMaxPool2d(_PortableMaxMixin, nn.AdaptiveMaxPool2d):
    """Drop-in ``torch.nn.AdaptiveMaxPool2d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_max_pool2d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 2

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_max_pool2d(input, self.output_size)
        return self._portable(input)


class AdaptiveMaxPool3d(_PortableMaxMixin, nn.AdaptiveMaxPool3d):
    """Drop-in ``torch.nn.AdaptiveMaxPool3d`` (same constructor, state and repr): see
    ``poolport.functional.adaptive_max_pool3d`` for what it computes and raises. Plain eager calls run torch's
    native op; traced, exported or compiled, it is poolport's exact portable formulation."""

    _d = 3

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_max_pool3d(input, self.output_size)
        return self._portable(input)
