"""The tap form of a pooling (dilated pooling above all): its kernel taps as Slices, combined, subsampled
and corrected (``TapPool``). Pure integers (and the correction's floats).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError
from .pads import check_pool_args, torch_output


@dataclass(frozen=True)
class TapPool:
    """Pooling with dilations (or any pooling) written as its kernel taps, for runtimes that refuse or
    miscompute dilated pooling: ``Pad(before, after)`` (zeros for average; -inf for max, since a dilated
    window need not hold the edge cell a replicated edge would copy, and a window of -inf is -inf), then per kernel tap
    one contiguous ``Slice`` (start ``j * dilation`` per axis), combined by ``Max`` or ``Sum``, subsampled
    by a 1-wide ``MaxPool`` with the stride (where a stride is not 1), and for average a constant per-cell
    factor ``1 / divisor`` (per axis; the factors multiply).

    The taps of output cell i on an axis are ``i * s - before + j * d`` for j < k; the divisor counts the
    real taps, or with ``count_include_pad`` the taps inside the padded extent (never the ceil overhang).
    """

    op: str  # "avg" | "max"
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    out_size: tuple[int, ...]
    factors: tuple[tuple[float, ...], ...]  # per axis, per output cell: 1 / divisor (avg); () for max

    def taps(self) -> list[tuple[int, ...]]:
        """Each tap's start per axis in the padded input, in row-major order."""
        starts = [()]
        for k, d in zip(self.kernel, self.dilation):
            starts = [t + (j * d,) for t in starts for j in range(k)]
        return starts

    @property
    def padded(self) -> bool:
        """Whether a Pad step is needed."""
        return any(self.pads_before) or any(self.pads_after)

    def steps(self) -> list[str]:
        """The ONNX operators of this form."""
        n = len(self.taps())
        pad = ["Pad"] if self.padded else []
        combine = [] if n == 1 else ["Max" if self.op == "max" else "Sum"]
        subsample = ["MaxPool (1-wide, strided)"] if any(s != 1 for s in self.stride) else []
        return pad + [f"Slice x{n}"] + combine + subsample + (["Mul"] if self.op == "avg" else [])


@lru_cache(maxsize=4096)
def tap_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...], pads_before: tuple[int, ...], pads_after: tuple[int, ...], ceil_mode: bool,
             count_include_pad: bool) -> TapPool:
    """The tap form of ONNX pooling with dilations, explicit pads and ``ceil_mode``; see ``TapPool``."""
    outs, afters, factors = [], [], []
    for n, k, s, d, b, e in zip(spatial, kernel, stride, dilation, pads_before, pads_after):
        check_pool_args(n, k, s, "pooling", d)
        extent = (k - 1) * d + 1
        out = torch_output(n, extent, s, b, e, ceil_mode)
        outs.append(out)
        afters.append(max((out - 1) * s + extent - n - b, 0))
        if op == "avg":
            divisors = []
            for i in range(out):
                taps = [i * s - b + j * d for j in range(k)]
                lo, hi = (-b, n + e) if count_include_pad else (0, n)
                divisors.append(sum(lo <= t < hi for t in taps))
            if min(divisors) == 0:
                raise PoolportError(f"pooling: a dilated average window over {n} cells holds no cell to divide by.")
            factors.append(tuple(1.0 / c for c in divisors))
    return TapPool(op, tuple(kernel), tuple(stride), tuple(dilation), tuple(pads_before), tuple(afters),
                   tuple(outs), tuple(factors))
