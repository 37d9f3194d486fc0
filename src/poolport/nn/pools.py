"""Drop-in modules for torch's plain pooling where some runtime has no exact form of its own: subclasses
of ``nn.AvgPool{2,3}d``, ``nn.MaxPool{1,2,3}d`` and ``nn.LPPool{1,2,3}d`` (same constructor, state and
repr) whose forward is poolport's (``poolport.functional.pools``): torch's native op in plain eager mode,
the portable form when traced, exported or compiled. ``make_portable``/``patch`` give a model's modules
these classes only where the portable form is needed (``divisor_override``, dilation, every LPPool).

No ``from __future__ import annotations`` here: TorchScript reads these annotations at run time."""

import torch
import torch.nn.functional as F
from torch import nn

from ..functional import pools


class AvgPool2d(nn.AvgPool2d):
    """Drop-in ``torch.nn.AvgPool2d``; see ``poolport.functional.avg_pool2d`` (``divisor_override``
    exact and portable)."""

    # the module's path in its model, set by make_portable (the reports' site name)
    _poolport_site = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override)
        return self._portable(input)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        return pools.avg_pool(input, 2, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override, site=self._poolport_site)


class AvgPool3d(nn.AvgPool3d):
    """Drop-in ``torch.nn.AvgPool3d``; see ``poolport.functional.avg_pool3d`` (``divisor_override``
    exact and portable)."""

    _poolport_site = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override)
        return self._portable(input)

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        return pools.avg_pool(input, 3, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override, site=self._poolport_site)


class _MaxPool:
    _poolport_site = None
    _d: int

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        return pools.max_pool(input, self._d, self.kernel_size, self.stride, self.padding, self.dilation,
                              self.ceil_mode, self.return_indices, site=self._poolport_site)


class MaxPool1d(_MaxPool, nn.MaxPool1d):
    """Drop-in ``torch.nn.MaxPool1d``; see ``poolport.functional.max_pool1d`` (dilation exact and
    portable)."""

    _d = 1

    def forward(self, input: torch.Tensor):
        if torch.jit.is_scripting():
            return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)
        return self._portable(input)


class MaxPool2d(_MaxPool, nn.MaxPool2d):
    """Drop-in ``torch.nn.MaxPool2d``; see ``poolport.functional.max_pool2d`` (dilation exact and
    portable)."""

    _d = 2

    def forward(self, input: torch.Tensor):
        if torch.jit.is_scripting():
            return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)
        return self._portable(input)


class MaxPool3d(_MaxPool, nn.MaxPool3d):
    """Drop-in ``torch.nn.MaxPool3d``; see ``poolport.functional.max_pool3d`` (dilation exact and
    portable)."""

    _d = 3

    def forward(self, input: torch.Tensor):
        if torch.jit.is_scripting():
            return F.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)
        return self._portable(input)


class _LPPool:
    _poolport_site = None
    _d: int

    @torch.jit.unused
    def _portable(self, input: torch.Tensor) -> torch.Tensor:
        return pools.lp_pool(input, self._d, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode,
                             site=self._poolport_site)


class LPPool1d(_LPPool, nn.LPPool1d):
    """Drop-in ``torch.nn.LPPool1d``; see ``poolport.functional.lp_pool1d``."""

    _d = 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.lp_pool1d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)
        return self._portable(input)


class LPPool2d(_LPPool, nn.LPPool2d):
    """Drop-in ``torch.nn.LPPool2d``; see ``poolport.functional.lp_pool2d``."""

    _d = 2

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.lp_pool2d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)
        return self._portable(input)


class LPPool3d(_LPPool, nn.LPPool3d):
    """Drop-in ``torch.nn.LPPool3d``; see ``poolport.functional.lp_pool3d``."""

    _d = 3

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.lp_pool3d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)
        return self._portable(input)


class _FractionalMaxPool:
    """Fractional max pooling: keeps the real ``_random_samples`` tensor in ``_poolport_real_samples``
    (while a graph is recorded with fake tensors, as torch.export does, the buffer is a fake whose values
    are unknown; the plan needs them)."""

    _poolport_site = None
    _d: int

    def _poolport_keep_samples(self) -> None:
        samples = self._buffers.get("_random_samples")
        if type(samples) is torch.Tensor:
            self.__dict__["_poolport_real_samples"] = samples

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "_random_samples" and value is None:
            self.__dict__.pop("_poolport_real_samples", None)
        elif name == "_random_samples" and type(value) is torch.Tensor:  # not a fake while a graph is recorded
            self.__dict__["_poolport_real_samples"] = value

    @torch.jit.unused
    def _portable(self, input: torch.Tensor):
        samples = self._random_samples
        if type(samples) is torch.Tensor:
            self.__dict__["_poolport_real_samples"] = samples
        return pools.fractional_max_pool(input, self._d, self.kernel_size, self.output_size, self.output_ratio,
                                         self.return_indices, samples, site=self._poolport_site,
                                         real_samples=self.__dict__.get("_poolport_real_samples"))


class FractionalMaxPool2d(_FractionalMaxPool, nn.FractionalMaxPool2d):
    """Drop-in ``torch.nn.FractionalMaxPool2d``; see ``poolport.functional.fractional_max_pool2d`` (exact and
    portable with fixed ``_random_samples``; refused loudly when traced or exported without them)."""

    _d = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._poolport_keep_samples()

    def forward(self, input: torch.Tensor):
        if torch.jit.is_scripting():
            return F.fractional_max_pool2d(input, self.kernel_size, self.output_size, self.output_ratio,
                                           self.return_indices, _random_samples=self._random_samples)
        return self._portable(input)


class FractionalMaxPool3d(_FractionalMaxPool, nn.FractionalMaxPool3d):
    """Drop-in ``torch.nn.FractionalMaxPool3d``; see ``poolport.functional.fractional_max_pool3d``."""

    _d = 3

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._poolport_keep_samples()

    def forward(self, input: torch.Tensor):
        if torch.jit.is_scripting():
            return F.fractional_max_pool3d(input, self.kernel_size, self.output_size, self.output_ratio,
                                           self.return_indices, _random_samples=self._random_samples)
        return self._portable(input)
