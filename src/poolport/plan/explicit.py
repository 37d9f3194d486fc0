"""The explicit form of a pooling with static sizes: ``Pad`` + a pooling op without padding + a constant
divisor correction (``ExplicitPool``), the form every runtime computes. Pure integers (and the correction's
floats). Every backend writes it by one walk over its steps, ``backend.execute.execute_explicit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .pads import Window, torch_windows
from .pooling import ONNX_POOL


@dataclass(frozen=True)
class ExplicitPool:
    """Any pooling with static sizes written as three plain steps, the form every runtime computes:

    ``Pad(before, after)`` (zeros for average, edge values for max: every window holds a real cell, so a
    replicated edge never changes a maximum) -> a pooling op with ``kernel``/``stride`` and no padding
    -> for average, a constant per-cell factor ``k / divisor`` (per axis; the factors multiply), which
    turns each window's sum / k into sum / divisor.

    ``after`` is chosen so that the plain pool yields exactly ``out_size`` cells.
    """

    op: str  # "avg" | "max"
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    out_size: tuple[int, ...]
    factors: tuple[tuple[float, ...], ...]  # per axis, per output cell: k / divisor (avg); () for max

    @property
    def padded(self) -> bool:
        """Whether a Pad step is needed."""
        return any(self.pads_before) or any(self.pads_after)

    @property
    def corrected(self) -> bool:
        """Whether the divisor correction is needed (some factor is not 1)."""
        return any(f != 1.0 for axis in self.factors for f in axis)

    @property
    def pad_mode(self) -> str:
        """The Pad step's mode, as ONNX names it: "constant" (zeros) for average, "edge" for max."""
        return "constant" if self.op == "avg" else "edge"

    def steps(self) -> list[str]:
        """The ONNX operators of this form, in order."""
        return (["Pad"] if self.padded else []) + [ONNX_POOL[self.op]] + (["Mul"] if self.corrected else [])


def explicit_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                  windows: tuple[tuple[Window, ...], ...]) -> ExplicitPool:
    """The explicit form of a pooling whose windows (per axis, as ``tf_windows``/``torch_windows`` give
    them) start at ``-before`` and step by the stride."""
    before, after, outs, factors = [], [], [], []
    for n, k, s, axis in zip(spatial, kernel, stride, windows):
        b, out = -axis[0].start, len(axis)
        before.append(b)
        outs.append(out)
        after.append(max((out - 1) * s + k - n - b, 0))
        if op == "avg":
            factors.append(tuple(k / w.divisor for w in axis))
    return ExplicitPool(op, tuple(kernel), tuple(stride), tuple(before), tuple(after), tuple(outs), tuple(factors))


@lru_cache(maxsize=4096)
def explicit_torch_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                        pads_before: tuple[int, ...], pads_after: tuple[int, ...], ceil_mode: bool,
                        count_include_pad: bool) -> ExplicitPool:
    """The explicit form of PyTorch/ONNX pooling with explicit pads and ``ceil_mode`` (divisors as
    ``torch_windows``: padding counted only with ``count_include_pad``, the overhang never)."""
    windows = tuple(
        torch_windows(n, k, s, b, e, ceil_mode, count_include_pad)
        for n, k, s, b, e in zip(spatial, kernel, stride, pads_before, pads_after)
    )
    return explicit_pool(op, spatial, kernel, stride, windows)
