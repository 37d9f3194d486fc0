"""Max pooling's argmax indices and max unpooling without ScatterND, Gather or comparisons, for 1-D, 2-D and
3-D windows of any kernel, stride, padding, dilation and ceil_mode (SegNet's and ENet's
``MaxPool2d(2, 2, return_indices=True)``, overlapping ``MaxPool2d(3, 2, 1)``). Pure integers.

**Argmax.** Each kernel tap ``j`` (per axis) is one plane: the input's cell ``i*s + j*d - p`` for every
window ``i``, reached by a contiguous Slice and a plain MaxPool of kernel 1 with the window stride (no
Reshape: onnx2tf guesses layouts at Reshapes). The index is a scan over the planes in torch's order
(row-major in the window) that keeps the first maximum: ``Clip((a - best) * 2^100 * 2^100, 0, 1)`` says
whether ``a`` beats the best so far, on values quartered and clipped to +-2^126 (so +-inf keep their order
and every difference stays finite) and padding cells at -2^127, below every real cell (torch never picks a
padding cell: an all -inf window gives its first real cell). The scan carries the tap's flat offset (a
scalar per plane); the windows' origins are added once. Indices are float32 (exact integers below 2^24):
ncnn has no comparison, no Cast and no int64. The values are the running Max of the raw planes (MNN's
MaxPool returns -2^24 for an all -inf window, measured).

**Unpooling.** Output cell ``q`` holds the value of the last window (row-major, as torch's CPU kernel
writes) whose index is ``q``, else 0. Every window that can hold ``q`` is one of the ``ceil(k/s)`` per
axis below ``floor((q + p) / s)``: the pooled planes, padded with sentinel windows (index -1), nearest-
upsampled by the stride (Resize) and sliced per candidate line up one candidate window per output cell.
A 0/1 mask ``Relu(1 - |idx - q|)`` says whether it holds ``q``, earlier candidates (later windows) take
precedence, and a Min/Max gate writes the value (a mask times inf would be NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from math import prod

from ..errors import PoolportError
from .divisor import pool_output

FLAT_LIMIT = 2 ** 24  # float32 holds every integer below it exactly


@dataclass(frozen=True)
class TapAxis:
    """One spatial axis of a max pooling: ``out`` windows of ``kernel`` taps ``i*stride + j*dilation -
    padding`` over ``length`` cells (torch's sizes, ceil_mode included)."""

    length: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    out: int

    @property
    def span(self) -> int:
        """The cells one tap's plane spans before the stride-``s`` pooling: ``(out - 1) * s + 1``."""
        return (self.out - 1) * self.stride + 1

    @property
    def reach(self) -> int:
        """The padded cells the windows reach, from the first padding cell."""
        return self.span + (self.kernel - 1) * self.dilation

    @property
    def after(self) -> int:
        """Padding cells after the input (the right padding and the ceil_mode overhang); negative: cells
        at the end no window reaches (cropped)."""
        return self.reach - self.padding - self.length

    def tap(self, i: int, j: int) -> int:
        return i * self.stride + j * self.dilation - self.padding

    def real(self, i: int, j: int) -> bool:
        return 0 <= self.tap(i, j) < self.length


def _flat_strides(sizes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(prod(sizes[i + 1:]) for i in range(len(sizes)))


def _rows(values: list[float], shape: tuple[int, ...]):
    """``values`` (row-major) as nested tuples of ``shape``."""
    if len(shape) == 1:
        return tuple(values)
    step = prod(shape[1:])
    return tuple(_rows(values[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0]))


@dataclass(frozen=True)
class ArgmaxPlan:
    """The planes of ``max_pool{d}d(..., return_indices=True)``: one ``TapAxis`` per spatial axis."""

    axes: tuple[TapAxis, ...]

    @property
    def in_size(self) -> tuple[int, ...]:
        return tuple(a.length for a in self.axes)

    @property
    def out_size(self) -> tuple[int, ...]:
        return tuple(a.out for a in self.axes)

    @property
    def padded(self) -> bool:
        """Whether some window reaches a padding (or ceil_mode overhang) cell."""
        return any(a.padding or a.after > 0 for a in self.axes)

    def taps(self) -> list[tuple[int, ...]]:
        """Every tap of the window, in torch's scan order (row-major)."""
        return list(product(*(range(a.kernel) for a in self.axes)))

    def offset(self, taps: tuple[int, ...]) -> float:
        """The flat offset of a tap from its window's origin (tap 0 of every axis)."""
        strides = _flat_strides(self.in_size)
        return float(sum(j * a.dilation * st for j, a, st in zip(taps, self.axes, strides)))

    def origins(self) -> tuple:
        """The flat index of every window's origin (its first tap, possibly a padding cell), nested tuples
        of ``out_size``: the argmax index is its origin plus the winning tap's ``offset``."""
        strides = _flat_strides(self.in_size)
        flat = [float(sum(a.tap(i, 0) * st for i, a, st in zip(ii, self.axes, strides)))
                for ii in product(*(range(a.out) for a in self.axes))]
        return _rows(flat, self.out_size)


@lru_cache(maxsize=1024)
def argmax_plan(in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> ArgmaxPlan:
    """The planes of ``max_pool{d}d(..., return_indices=True)`` on ``in_size`` with torch's arguments.

    Raises:
        PoolportError: arguments torch refuses (padding over half the kernel, no output), a window with no
            real cell, or an input of 2^24 cells or more per channel (float32 would not hold every index).
    """
    d = len(in_size)
    where = f"max_pool{d}d"
    outs = pool_output(where, in_size, kernel, stride, padding, dilation, ceil_mode)  # torch's checks
    return _argmax_plan(where, in_size, [TapAxis(n, k, s, p, dl, out) for n, k, s, p, dl, out in
                                         zip(in_size, kernel, stride, padding, dilation, outs)])


def _argmax_plan(where: str, in_size: tuple[int, ...], axes: list[TapAxis]) -> ArgmaxPlan:
    """The plan of ``axes``, refused where a window holds no real cell (the index is not defined there) or the
    input has 2^24 cells or more per plane (float32 indices hold no more)."""
    for a in axes:
        if a.out < 1 or not all(any(a.real(i, j) for j in range(a.kernel)) for i in range(a.out)):
            raise PoolportError(f"{where}: with kernel {a.kernel}, stride {a.stride}, padding {a.padding} before and "
                                f"dilation {a.dilation} on {a.length} cells there is no output or some window holds "
                                f"only padding; the index is not defined there.")
    if prod(in_size) >= FLAT_LIMIT:
        raise PoolportError(f"{where}: a {'x'.join(map(str, in_size))} input has more cells per channel than "
                            f"float32 indices hold (2^24); pool a smaller input or drop the indices.")
    return ArgmaxPlan(tuple(axes))


@dataclass(frozen=True)
class UnpoolAxis:
    """One axis of ``max_unpool``: ``length`` pooled cells, windows ``i*stride - padding`` of ``kernel``
    cells, ``out`` output cells. ``candidates`` windows can hold one output cell."""

    length: int
    kernel: int
    stride: int
    padding: int
    out: int

    @property
    def candidates(self) -> int:
        return -(-self.kernel // self.stride)

    @property
    def before(self) -> int:
        """Sentinel windows before the first (a candidate below window 0)."""
        return self.candidates - 1

    @property
    def after(self) -> int:
        """Sentinel windows after the last, so that every candidate slice lies inside the upsampled axis."""
        need = self.padding + self.before * self.stride + self.out
        return max(0, -(-need // self.stride) - self.length - self.before)

    def start(self, m: int) -> int:
        """Where candidate ``m`` (window ``floor((q + p) / s) - m`` of output cell ``q``) starts in the
        upsampled axis."""
        return self.padding + (self.before - m) * self.stride


@dataclass(frozen=True)
class UnpoolPlan:
    """``max_unpool{d}d``: one ``UnpoolAxis`` per spatial axis."""

    axes: tuple[UnpoolAxis, ...]

    @property
    def out_size(self) -> tuple[int, ...]:
        return tuple(a.out for a in self.axes)

    def candidates(self) -> list[tuple[int, ...]]:
        """The candidate windows of an output cell, the one torch writes last first."""
        return list(product(*(range(a.candidates) for a in self.axes)))

    def positions(self) -> tuple:
        """The flat index of every output cell, nested tuples of ``out_size``."""
        return _rows([float(i) for i in range(prod(self.out_size))], self.out_size)


@lru_cache(maxsize=1024)
def unpool_plan(in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], out_size: tuple[int, ...]) -> UnpoolPlan:
    """The form of ``max_unpool{d}d`` of ``in_size`` cells into ``out_size``, for indices that lie in their
    own window (what a max pooling with the same kernel, stride and padding, no dilation, of an
    ``out_size`` input gives).

    Raises:
        PoolportError: bad sizes, or an output of 2^24 cells or more per channel.
    """
    where = f"max_unpool{len(in_size)}d"
    if any(k < 1 or s < 1 or p < 0 for k, s, p in zip(kernel, stride, padding)) or min(out_size) < 1:
        raise PoolportError(f"{where}: kernel {tuple(kernel)}, stride {tuple(stride)}, padding {tuple(padding)}, "
                            f"output {tuple(out_size)}: sizes must be positive.")
    if prod(out_size) >= FLAT_LIMIT:
        raise PoolportError(f"{where}: a {'x'.join(map(str, out_size))} output has more cells per channel than "
                            f"float32 indices hold (2^24).")
    return UnpoolPlan(tuple(UnpoolAxis(n, k, s, p, o) for n, k, s, p, o in
                            zip(in_size, kernel, stride, padding, out_size)))


def onnx_argmax_plan(in_size: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                     pads_before: tuple[int, ...], pads_after: tuple[int, ...], dilations: tuple[int, ...],
                     ceil_mode: bool) -> ArgmaxPlan:
    """The planes of an ONNX MaxPool with its Indices output (pads per side, as ONNX has them): ONNX's output
    size per axis, floor or ceil of ``(n + before + after - extent) / s + 1``, less a last ceil_mode window
    that would start in the right padding (as torch, and ONNX Runtime, drop it).

    Raises:
        PoolportError: no output, a window with no real cell (the index is not defined there), or an input of
            2^24 cells or more per plane.
    """
    axes = []
    for n, k, s, b, e, dl in zip(in_size, kernel, strides, pads_before, pads_after, dilations):
        span = n + b + e - ((k - 1) * dl + 1)
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + b:
            out -= 1
        axes.append(TapAxis(n, k, s, b, dl, out))
    return _argmax_plan("MaxPool", in_size, axes)
