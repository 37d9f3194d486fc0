"""Plain PyTorch pooling arguments (kernel, stride, padding, dilation, ``ceil_mode``) checked as torch
checks them, and average pooling with ``divisor_override`` in the explicit form. Pure integers.

``F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override=c)`` is each window's sum
(padding cells are zeros, the ceil overhang holds nothing) divided by ``c``. Both torch exporters drop
``c`` (ONNX AveragePool has no such attribute) and write a silently wrong graph. Written here as the
explicit form (``plan.explicit.ExplicitPool``): zero ``Pad`` (where padded) + ``AveragePool`` without
padding, whose every window lies inside the padded tensor, so it returns ``sum / K`` (``K`` the kernel's
cells), then one constant factor ``K / c`` (``Mul``): every runtime computes those three steps.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from math import prod

from ..errors import PoolportError
from .explicit import ExplicitPool, explicit_torch_pool


def tuple_arg(v, d: int, what: str, where: str, default=None) -> tuple[int, ...]:
    """torch's int-or-tuple pooling argument as ``d`` ints (``None``: ``default``, already a tuple)."""
    if v is None and default is not None:
        return default
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * d
    if isinstance(v, (tuple, list)) and len(v) == 1 and d > 1:
        v = tuple(v) * d  # torch's _pair((3,)) == (3, 3)
    if isinstance(v, (tuple, list)) and len(v) == d and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise PoolportError(f"{where}: {what} must be an int or {d} ints, got {v!r}.")


@lru_cache(maxsize=4096)
def pool_output(where: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> tuple[int, ...]:
    """The output size of torch's pooling, after torch's own argument checks (positive kernel, stride and
    dilation; padding at most half the kernel size; an output of at least one cell).

    Raises:
        PoolportError: naming ``where``, the sizes and what torch requires.
    """
    out = []
    for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
            if v <= 0:
                raise PoolportError(f"{where}: {name} must be positive, got {v} (kernel {kernel}, stride {stride}).")
        extent = (k - 1) * d + 1
        if p < 0 or 2 * p > k:  # torch: half the kernel size, dilated or not
            raise PoolportError(f"{where}: padding {padding} must be between 0 and half the kernel size "
                                f"{kernel} on every axis, as torch requires.")
        span = n + 2 * p - extent
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1  # the last window must start inside the input or the left padding
        if o < 1:
            raise PoolportError(f"{where}: input {spatial} (padded by {padding}) gives no output cell with kernel "
                                f"{kernel}, stride {stride}, dilation {dilation}; torch refuses it too.")
        out.append(o)
    return tuple(out)


def count_steps(steps: list[str]) -> Counter:
    """Steps such as ``["Pad", "Mul x2", "AveragePool"]`` as operator counts (a step ``"Op xN"`` is N Ops;
    words after the operator's name describe it)."""
    counts: Counter = Counter()
    for step in steps:
        words = step.split()
        n = int(words[1][1:]) if len(words) > 1 and re.fullmatch(r"x\d+", words[1]) else 1
        counts[words[0]] += n
    return counts


@dataclass(frozen=True)
class DivisorPlan:
    """``avg_pool(..., divisor_override=divisor)``: the explicit form ``pool`` whose factors are
    ``K / divisor``. ``print(plan)`` shows it; ``summary()`` and ``op_counts()`` are what reports print."""

    divisor: int
    pool: ExplicitPool
    kind: str = "divisor"
    style: str = "default"  # one form for every target

    def steps(self) -> list[str]:
        """The ONNX operators, in order."""
        return self.pool.steps()

    def op_counts(self) -> Counter:
        """The ONNX operators with their counts."""
        return count_steps(self.steps())

    def summary(self) -> str:
        """One line, e.g. ``k3x3 s2x2 pads 1,1 / 5``."""
        pads = ",".join(map(str, self.pool.pads_before))
        return (f"k{'x'.join(map(str, self.pool.kernel))} s{'x'.join(map(str, self.pool.stride))} pads {pads} "
                f"/ {self.divisor}")

    def __str__(self) -> str:
        return f"avg_pool divisor_override={self.divisor}: {', '.join(self.steps())}"


@lru_cache(maxsize=4096)
def divisor_pool(spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], ceil_mode: bool, divisor: int) -> DivisorPlan:
    """``avg_pool(..., divisor_override=divisor)`` in the explicit form: zero Pad + AveragePool + one factor
    ``K / divisor`` (on the first axis's cells; the other axes' factors are 1). ``count_include_pad`` does
    not matter: torch divides by ``divisor`` whatever it says.

    Raises:
        PoolportError: torch's argument checks (``pool_output``), or a divisor that is not a nonzero int.
    """
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor == 0:
        raise PoolportError(f"avg_pool: divisor_override must be a nonzero int, got {divisor!r} (torch requires it).")
    pool_output("avg_pool", spatial, kernel, stride, padding, (1,) * len(kernel), ceil_mode)
    base = explicit_torch_pool("avg", spatial, kernel, stride, padding, padding, ceil_mode, True)
    factor = prod(kernel) / divisor
    factors = tuple((factor if a == 0 else 1.0,) * o for a, o in enumerate(base.out_size))
    return DivisorPlan(divisor, replace(base, factors=factors))
