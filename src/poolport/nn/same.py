"""Modules for TensorFlow/Keras-style pooling: 'SAME'/'VALID' with TF's divisors, and global pooling
with Keras's ``keepdims``."""

from __future__ import annotations

from torch import nn

from ..functional.same import global_pool, pool_same


class _PoolSame(nn.Module):
    """TensorFlow/Keras pooling with 'SAME' or 'VALID' padding over ``_d`` channels-first axes; see
    ``poolport.functional.avg_pool2d_same`` for the definition."""

    _op: str
    _d: int

    def __init__(self, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None,
                 padding: str = "SAME"):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return pool_same(x, self.kernel_size, self.stride, self.padding, op=self._op, d=self._d)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class AvgPool1dSame(_PoolSame):
    """TF ``AveragePooling1D`` semantics, channels first: average (dividing by the real cells of each window) pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.avg_pool1d_same``."""

    _op, _d = "avg", 1


class AvgPool2dSame(_PoolSame):
    """TF ``AveragePooling2D`` semantics, channels first: average (dividing by the real cells of each window) pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.avg_pool2d_same``."""

    _op, _d = "avg", 2


class AvgPool3dSame(_PoolSame):
    """TF ``AveragePooling3D`` semantics, channels first: average (dividing by the real cells of each window) pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.avg_pool3d_same``."""

    _op, _d = "avg", 3


class MaxPool1dSame(_PoolSame):
    """TF ``MaxPooling1D`` semantics, channels first: max pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.max_pool1d_same``."""

    _op, _d = "max", 1


class MaxPool2dSame(_PoolSame):
    """TF ``MaxPooling2D`` semantics, channels first: max pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.max_pool2d_same``."""

    _op, _d = "max", 2


class MaxPool3dSame(_PoolSame):
    """TF ``MaxPooling3D`` semantics, channels first: max pooling with
    TF's 'SAME' or 'VALID' padding; ``poolport.functional.max_pool3d_same``."""

    _op, _d = "max", 3


class _GlobalPool(nn.Module):
    """Keras global pooling over every spatial axis; see ``poolport.functional.global_avg_pool``."""

    _op: str

    def __init__(self, keepdims: bool = False, data_format: str = "channels_first"):
        super().__init__()
        self.keepdims, self.data_format = keepdims, data_format

    def forward(self, x):
        return global_pool(x, self._op, self.keepdims, self.data_format)

    def extra_repr(self) -> str:
        return f"keepdims={self.keepdims}, data_format={self.data_format!r}"


class GlobalAvgPool(_GlobalPool):
    """Keras ``GlobalAveragePooling{1,2,3}D``: divides by the whole plane; (N, C) unless keepdims."""

    _op = "avg"


class GlobalMaxPool(_GlobalPool):
    """Keras ``GlobalMaxPooling{1,2,3}D``: max over the whole plane; (N, C) unless keepdims."""

    _op = "max"
