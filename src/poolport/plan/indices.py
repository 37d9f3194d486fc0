"""Max pooling's argmax indices and max unpooling without ScatterND or Gather, for non-overlapping windows
(kernel == stride, no padding, no dilation: SegNet's and ENet's ``MaxPool2d(2, 2, return_indices=True)``).
Pure integers.

Each window position ``(dh, dw)`` is one plane ``x[..., dh::kh, dw::kw]``, reached by Reshape and
contiguous Slice. The index is a scan over the planes in torch's order (row-major in the window) that
keeps the first maximum (``Clip((a - best) * 2^100 * 2^100, 0, 1)`` says whether a beats the best so far,
on values halved and clipped to finite so that infinities keep their order), carried as float32 (exact
integers below 2^24): ncnn has no comparison and no int64. Unpooling writes each plane back with a 0/1
mask ``Relu(1 - |idx - pos|)`` and a Min/Max gate (a mask times inf would be NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError

FLAT_LIMIT = 2 ** 24  # float32 holds every integer below it exactly


@dataclass(frozen=True)
class WindowPlanes:
    """Non-overlapping ``kernel`` windows over ``in_size`` (H, W): ``out_size`` windows per axis covering
    the first ``out * kernel`` cells; flat positions are ``h * width + w`` (``width``: the plane the
    indices index, the pooled input's for max pooling, the output's for unpooling)."""

    kernel: tuple[int, int]
    out_size: tuple[int, int]
    width: int

    def positions(self, dh: int, dw: int) -> tuple[tuple[float, ...], ...]:
        """The flat position of window position ``(dh, dw)`` for every window, (Ho, Wo) row-major."""
        (kh, kw), (ho, wo) = self.kernel, self.out_size
        return tuple(tuple(float((i * kh + dh) * self.width + j * kw + dw) for j in range(wo)) for i in range(ho))


def _check(where: str, kernel, stride, padding, dilation, ceil_mode, in_size) -> tuple[int, int]:
    if tuple(stride) != tuple(kernel) or any(padding) or any(d != 1 for d in dilation):
        raise PoolportError(
            f"{where}: argmax indices have a portable form for non-overlapping windows only (stride == kernel, no "
            f"padding, no dilation); got kernel {tuple(kernel)}, stride {tuple(stride)}, padding {tuple(padding)}, "
            f"dilation {tuple(dilation)}. ncnn has no ScatterND, Gather or comparison to compute them otherwise.")
    out = tuple(n // k for n, k in zip(in_size, kernel))
    if ceil_mode and any(n % k for n, k in zip(in_size, kernel)):
        raise PoolportError(f"{where}: ceil_mode with {tuple(in_size)} not divisible by the kernel {tuple(kernel)} "
                            f"makes partial windows, which the portable argmax form does not cover.")
    if min(out) < 1:
        raise PoolportError(f"{where}: input {tuple(in_size)} is smaller than the kernel {tuple(kernel)}.")
    return out


@lru_cache(maxsize=1024)
def argmax_plan(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int], ceil_mode: bool, in_size: tuple[int, int]) -> WindowPlanes:
    """The planes of ``max_pool2d(..., return_indices=True)`` on ``in_size``.

    Raises:
        PoolportError: overlapping windows, padding, dilation, partial ceil_mode windows, or a plane of
            2^24 cells or more (float32 would not hold every index).
    """
    out = _check("max_pool2d", kernel, stride, padding, dilation, ceil_mode, in_size)
    if in_size[0] * in_size[1] >= FLAT_LIMIT:
        raise PoolportError(f"max_pool2d: a {in_size[0]}x{in_size[1]} plane has more cells than float32 indices hold.")
    return WindowPlanes(tuple(kernel), out, in_size[1])


@lru_cache(maxsize=1024)
def unpool_plan(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                in_size: tuple[int, int], out_size: tuple[int, int]) -> WindowPlanes:
    """The planes of ``max_unpool2d`` of ``in_size`` cells into ``out_size``: each index must lie in its own
    window (what a non-overlapping max pooling of an ``out_size`` input gives).

    Raises:
        PoolportError: overlapping windows or padding, or an output smaller than the windows.
    """
    _check("max_unpool2d", kernel, stride, padding, (1, 1), False, out_size)
    if any(o < i * k for o, i, k in zip(out_size, in_size, kernel)):
        raise PoolportError(f"max_unpool2d: output {tuple(out_size)} is smaller than {tuple(in_size)} windows of "
                            f"{tuple(kernel)}.")
    if out_size[0] * out_size[1] >= FLAT_LIMIT:
        raise PoolportError(f"max_unpool2d: a {out_size[0]}x{out_size[1]} plane has more cells than float32 "
                            f"indices hold.")
    return WindowPlanes(tuple(kernel), tuple(in_size), out_size[1])
