"""PyTorch / ONNX pooling with explicit pads and ``ceil_mode``, per axis: output sizes and windows. Pure integers.

The common currency of ``plan.same``, ``plan.explicit`` and ``plan.taps`` is the list of *windows* an op
computes (``Window``): for each output cell, the half-open range of positions it covers (negative or >= n
inside padding) and its *divisor* for average pooling.

With explicit pads (before, after) and ``ceil_mode``: the last window exists only if it starts inside the
input or the left padding, its overhang past the padded end is never counted; ``count_include_pad``
counts padding cells (not the overhang) in the divisor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError


@dataclass(frozen=True)
class Window:
    """One output cell's window: positions ``[start, stop)`` (possibly in padding) and its average's divisor."""

    start: int  # may be negative (in the padding before)
    stop: int  # may exceed n (in the padding after, or the ceil_mode overhang)
    divisor: int  # what an average divides the window's sum by

    def real(self, n: int) -> tuple[int, int]:
        """The part of the window inside the input."""
        return max(self.start, 0), min(self.stop, n)


def check_pool_args(n: int, k: int, s: int, where: str, d: int = 1) -> None:
    """Raise a PoolportError unless kernel, stride and dilation are positive ints and ``n`` is not empty."""
    for name, v in (("kernel size", k), ("stride", s), ("dilation", d)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise PoolportError(f"{where}: {name} must be a positive int, got {v!r}.")
    if n <= 0:
        raise PoolportError(f"{where}: input size {n} is empty.")


@lru_cache(maxsize=4096)
def torch_output(n: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    """Output size of PyTorch/ONNX pooling with explicit pads (ONNX allows before != after)."""
    check_pool_args(n, k, s, "pooling")
    span = n + before + after - k
    if span < 0:
        raise PoolportError(f"pooling: kernel {k} is larger than the padded input {n + before + after}.")
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + before:
        out -= 1  # the last window must start inside the input or the left padding
    return out


@lru_cache(maxsize=4096)
def ceil_window_in_padding(n: int, k: int, s: int, before: int, after: int) -> bool:
    """Does ``ceil_mode`` reach a last window that starts in the right padding (or past it)? ONNX, ONNX
    Runtime and PyTorch drop that window; ncnn and OpenVINO return it as an extra output cell (measured)."""
    check_pool_args(n, k, s, "pooling")
    span = n + before + after - k
    if span < 0:
        return False
    return -(-span // s) + 1 > torch_output(n, k, s, before, after, True)


@lru_cache(maxsize=4096)
def torch_windows(
    n: int, k: int, s: int, before: int, after: int, ceil_mode: bool, count_include_pad: bool
) -> tuple[Window, ...]:
    """PyTorch's (and ONNX Runtime's) windows: the overhang past the padded end is never counted;
    padding cells are counted only with ``count_include_pad``."""
    out = torch_output(n, k, s, before, after, ceil_mode)
    windows = []
    for i in range(out):
        a = i * s - before
        b = a + k
        if count_include_pad:
            divisor = min(b, n + after) - a
        else:
            divisor = min(b, n) - max(a, 0)
        windows.append(Window(a, b, divisor))
    return tuple(windows)
