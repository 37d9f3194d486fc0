"""Power-average pooling (``nn.LPPool1d/2d/3d``) in steps every runtime computes. Pure integers (and the
correction's floats).

torch computes ``lp_pool(x, p, k, s, ceil_mode)`` as ``avg_pool(x.pow(p), k, s, 0, ceil_mode)``, then
``sign(out) * relu(|out|)`` (which is ``out`` itself, bit for bit, NaN and infinities included),
``* K`` (the kernel's cells) and ``.pow(1 / p)``; for ``p = inf`` ``max_pool(|x|)`` and for ``p = -inf``
``-max_pool(-|x|)``. A window past the end with ``ceil_mode`` is averaged over its cells inside the input
and then multiplied by ``K`` all the same: poolport keeps that. ONNX ``LpPool`` is what both exporters
write; ncnn cannot load it (pnnx leaves ``F.lp_pool2d`` unconverted, measured).

ONNX ``LpPool`` (``onnx_lp_plan``, what the legalizer writes for a foreign node) is the Lp norm of each
window's real cells, ``(sum |x| ** p) ** (1 / p)``: padding and the ceil_mode overhang add nothing. The same
steps with an ``Abs`` first and window sums (the explicit form with factors ``K``, or the tap form of a
dilated window with factors 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from math import inf, prod

from ..errors import PoolportError
from .divisor import count_steps, pool_output
from .explicit import ExplicitPool, explicit_torch_pool
from .taps import TapPool, tap_pool


@dataclass(frozen=True)
class LpPlan:
    """``lp_pool`` with norm ``p``: ``kind`` "power" (``x ** p``, the explicit average form with its
    factors times ``K``, ``** (1 / p)``; see ``power`` and ``root`` for how each is written), "max" (``p = inf``: max pooling of ``|x|``) or "min"
    (``p = -inf``: ``-max_pool(-|x|)``). ``pool`` is the pooling step in the explicit form (no ceil
    overhang left to any runtime)."""

    p: float
    kind: str  # "power" | "max" | "min"
    pool: ExplicitPool | TapPool  # a TapPool only in ONNX LpPool's dilated form (``onnx_lp_plan``)
    style: str = "default"  # one form for every target
    absolute: bool = False  # ONNX LpPool: ``|x| ** p`` (torch's lp_pool takes ``x ** p``)

    @property
    def takes_abs(self) -> bool:
        """Whether an ``Abs`` comes first: ``absolute``, unless ``x ** p`` is an even product (sign-free)."""
        kind, e = self.power
        return self.absolute and not (kind == "mul" and e % 2 == 0)

    def summary(self) -> str:
        """One line, e.g. ``p=2 k3x3 s2x2``."""
        return f"p={self.p:g} k{'x'.join(map(str, self.pool.kernel))} s{'x'.join(map(str, self.pool.stride))}"

    def op_counts(self):
        """The ONNX operators with their counts."""
        return count_steps(self.steps())

    @property
    def power(self) -> tuple[str, float]:
        """How ``x ** p`` is written, with the exponent: ("", 1) for p = 1, ("mul", p) for an integer p with
        1 <= |p| <= 8 (|p| - 1 Muls, then a Reciprocal for a negative p: what torch computes for 2, 3, -1,
        -2), else ("pow", p): one Pow. Measured (pnnx 20261020 -> ncnn): ncnn's Pow is wrong for every base
        <= 0 and for inf (2.4e38 for 0 ** 3), so an LPPool whose p or 1 / p is no such integer is exact in
        ncnn only where every power sum is positive and finite; Exp(Log) is no way out (ncnn: log 0 = NaN,
        MNN: exp(-inf) = 1.6e-38, OpenVINO: exp(NaN) = inf)."""
        return _power(self.p)

    @property
    def root(self) -> tuple[str, float]:
        """How ``** (1 / p)`` is written: ("sqrt", 0.5) for p = 2, else as ``power`` for ``1 / p``."""
        return ("sqrt", 0.5) if self.p == 2 else _power(1.0 / self.p)

    @property
    def ncnn_exact(self) -> bool:
        """Whether ncnn computes this plan exactly at every input: no Pow and no Reciprocal (ncnn's are wrong
        for bases <= 0 and inf, and for 0 and inf; measured)."""
        return self.kind != "power" or all(kind in ("", "sqrt") or (kind == "mul" and e > 0)
                                           for kind, e in (self.power, self.root))

    def steps(self) -> list[str]:
        """The ONNX operators, in order."""
        if self.kind != "power":
            return ["Abs"] + (["Neg"] if self.kind == "min" else []) + self.pool.steps() + (
                ["Neg"] if self.kind == "min" else [])
        return (["Abs"] if self.takes_abs else []) + _ops(self.power) + self.pool.steps() + _ops(self.root)

    def __str__(self) -> str:
        return f"lp_pool p={self.p:g} ({self.kind}): {', '.join(self.steps())}"


def _power(e: float) -> tuple[str, float]:
    if e == 1:
        return "", 1.0
    if e == int(e) and 1 <= abs(e) <= 8:
        return "mul", e
    return "pow", e


def _ops(how: tuple[str, float]) -> list[str]:
    kind, e = how
    if kind == "mul":
        n = abs(int(e))
        return ([f"Mul x{n - 1}"] if n > 1 else []) + (["Reciprocal"] if e < 0 else [])
    return {"": [], "sqrt": ["Sqrt"], "pow": ["Pow"]}[kind]


@lru_cache(maxsize=4096)
def lp_plan(p: float, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
            ceil_mode: bool) -> LpPlan:
    """The plan of ``lp_pool{d}d(x, p, kernel, stride, ceil_mode)`` on ``spatial``.

    Raises:
        PoolportError: ``p == 0`` (torch refuses it) or torch's pooling argument checks.
    """
    if p == 0:
        raise PoolportError("lp_pool: norm_type must be nonzero (torch refuses 0).")
    d = len(kernel)
    pool_output("lp_pool", spatial, kernel, stride, (0,) * d, (1,) * d, ceil_mode)
    zeros = (0,) * d
    if p in (inf, -inf):
        return LpPlan(p, "max" if p == inf else "min",
                      explicit_torch_pool("max", spatial, kernel, stride, zeros, zeros, ceil_mode, True))
    avg = explicit_torch_pool("avg", spatial, kernel, stride, zeros, zeros, ceil_mode, True)
    k = prod(kernel)  # torch multiplies the average by K: fold it into the first axis's factors
    factors = tuple(tuple(f * k for f in axis) if a == 0 else axis for a, axis in enumerate(avg.factors))
    return LpPlan(float(p), "power", replace(avg, factors=factors))


@lru_cache(maxsize=4096)
def onnx_lp_plan(p: int, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...], pads_before: tuple[int, ...], pads_after: tuple[int, ...],
                 ceil_mode: bool) -> LpPlan:
    """The plan of an ONNX ``LpPool`` node (norm ``p`` >= 1) on ``spatial``: ``Abs`` (where ``p`` is odd or no
    small integer), ``|x| ** p``, each window's sum, ``** (1 / p)``. The sums are the explicit form (zero
    Pad + AveragePool without padding + factor ``K``: every window of the padded input is whole, so the
    average times ``K`` is the sum of its real cells) or, dilated, the tap form with factors 1.

    Raises:
        PoolportError: ``p`` < 1, or a kernel larger than the padded input.
    """
    if p < 1:
        raise PoolportError(f"LpPool: p must be 1 or more for its power-sum form, got {p}.")
    d = len(kernel)
    if any(dl != 1 for dl in dilation):
        taps = tap_pool("avg", spatial, kernel, stride, dilation, pads_before, pads_after, ceil_mode, True)
        return LpPlan(float(p), "power", replace(taps, factors=tuple((1.0,) * o for o in taps.out_size)),
                      absolute=True)
    avg = explicit_torch_pool("avg", spatial, kernel, stride, pads_before, pads_after, ceil_mode, True)
    k = float(prod(kernel))
    factors = tuple((k if a == 0 else 1.0,) * o for a, o in enumerate(avg.out_size[:d]))
    return LpPlan(float(p), "power", replace(avg, factors=factors), absolute=True)
