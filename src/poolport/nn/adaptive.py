"""Drop-in modules: subclasses of torch's adaptive pooling modules (same constructor, state and repr)
whose forward is poolport's exact, portable implementation."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.adaptive import adaptive_pool, no_indices_error


class _Site:
    # the module's path in its model, set by poolport.make_portable; names the site in reports
    _poolport_site: str | None = None


class AdaptiveAvgPool1d(_Site, nn.AdaptiveAvgPool1d):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_pool(input, self.output_size, "avg", 1, site=self._poolport_site)


class AdaptiveAvgPool2d(_Site, nn.AdaptiveAvgPool2d):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_pool(input, self.output_size, "avg", 2, site=self._poolport_site)


class AdaptiveAvgPool3d(_Site, nn.AdaptiveAvgPool3d):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_pool(input, self.output_size, "avg", 3, site=self._poolport_site)


class _PortableMaxMixin(_Site):
    _d: int

    def __init__(self, output_size, return_indices: bool = False) -> None:
        if return_indices:
            raise no_indices_error(self._d)
        super().__init__(output_size, return_indices)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_pool(input, self.output_size, "max", self._d, site=self._poolport_site)


class AdaptiveMaxPool1d(_PortableMaxMixin, nn.AdaptiveMaxPool1d):
    _d = 1


class AdaptiveMaxPool2d(_PortableMaxMixin, nn.AdaptiveMaxPool2d):
    _d = 2


class AdaptiveMaxPool3d(_PortableMaxMixin, nn.AdaptiveMaxPool3d):
    _d = 3
