"""Dilated max pooling (``F.max_pool2d(..., dilation=d)``) as plain pooling on sub-lattices, reached by
reshapes and contiguous slices only; also ONNX's dilated MaxPool/AveragePool with asymmetric pads
(``dilated_onnx_plan``, the legalizer's ``Lattice`` form). Pure integers (and an average's correction).

The taps of output cell ``i`` along an axis (in the padded input) are ``i*s + j*d`` for ``j < k``: all in
one residue class mod ``d``. Viewing a padded axis of length ``L = M*d`` as ``(M, d)`` (a Reshape) makes
each residue class a contiguous sub-lattice of ``M`` cells on which the window is plain: ``k`` cells,
no dilation. Per dilated axis, with the tensor seen as 4-D ``(N, C', L, R)`` (``C'`` the channels times
the axes before, ``R`` the cells of the axes after):

* ``d`` divides ``s`` ("lattice"): every window lies in residue 0. Reshape to ``(N, C', M, d*R)``, keep
  the first ``R`` columns (a contiguous Slice), MaxPool ``(k, 1)`` with stride ``(s/d, 1)``.
* otherwise ("stride1"): MaxPool ``(k, 1)`` with stride 1 on ``(N, C', M, d*R)`` (every residue at once),
  Reshape to ``(N, C', Q*d, R)`` (the stride-1 dilated result, in order), keep ``out*s`` rows, Reshape to
  ``(N, C', out, s*R)`` and keep the first ``R`` columns (the stride).

Axes without dilation are pooled first, together, by one plain MaxPool; then the dilated axes, the last
first, so that a 2-D result comes out of a pool rather than a Reshape (onnx2tf laid a final Reshape to
``(N, C, Ho, Wo)`` out wrongly where ``C == Ho == Wo``, measured). The padding holds ``-inf`` (a
dilated window need not hold the edge cell a replicated edge would copy, and a window may hold no real
cell at all: torch returns ``-inf`` there). ncnn, MNN and LiteRT refuse or miscompute dilated pooling
and strided slices; these steps are plain pools, Pads, Reshapes and contiguous Slices.

Average pooling (ONNX's AveragePool has dilations from opset 19; torch's has none) takes the same steps with
zero padding and AveragePool: every window then holds ``k`` cells per axis of the padded tensor, so the
result is the window's sum / prod(k); a constant per-cell factor ``k / divisor`` per axis (the factors
multiply; the divisor counts the real taps, or with ``count_include_pad`` the taps inside the padded
extent, never the ceil overhang, as ``plan.taps`` does) makes it sum / divisor. A window without a real tap
(possible where ONNX pads are as large as the kernel's extent) sums zeros: its factor is 0, as ONNX's
definition gives 0 there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .divisor import count_steps, pool_output
from .pads import check_pool_args, torch_output
from .pooling import ONNX_POOL


@dataclass(frozen=True)
class DilatedAxis:
    """One pooled axis: its input size ``n``, kernel, stride, dilation and torch's padding, the output
    size, how it is computed (``kind``: "plain" without dilation, "lattice" where ``d`` divides ``s``,
    else "stride1"), the padded length ``length`` (a multiple of ``d``), the Pad after (``pad_after``; a
    negative value crops that many cells first), and for "stride1" the stride-1 cells per residue (``q``)."""

    n: int
    k: int
    s: int
    d: int
    pad: int
    out: int
    kind: str
    length: int
    pad_after: int
    q: int = 0

    @property
    def lattice(self) -> int:
        """Cells per residue class of the padded axis (``length / d``)."""
        return self.length // self.d


@dataclass(frozen=True)
class DilatedPlan:
    """``max_pool{d}d`` with dilation over ``len(axes)`` axes (or ONNX's dilated ``op`` pooling); see the
    module's docstring. ``factors``: for average, per axis, per output cell ``k / divisor``."""

    axes: tuple[DilatedAxis, ...]
    kind: str = "dilated"
    style: str = "default"  # one form for every target that gets it
    op: str = "max"  # "max" | "avg"
    factors: tuple[tuple[float, ...], ...] = ()

    @property
    def corrected(self) -> bool:
        """Whether an average's divisor correction is needed (some factor is not 1)."""
        return any(f != 1.0 for axis in self.factors for f in axis)

    @property
    def masked(self) -> bool:
        """Whether the padding is -inf written as a zero Pad + a constant -0.0/-inf mask added (max)."""
        return self.op == "max" and (any(self.pads_before) or any(self.pads_after))

    def reshaped_after(self, i: int) -> bool:
        """Whether the dilated axis ``i``'s result (the axes are pooled last first) is reshaped to (N, C,
        *sizes): not where a dilated axis before it follows (its Reshape takes the 4-D result as it is) or
        after the first of two axes ((N, C, out, W) already)."""
        return not (any(a.kind != "plain" for a in self.axes[:i]) or (i == 0 and len(self.axes) == 2))

    def summary(self) -> str:
        """One line per axis kind, e.g. ``stride1(k3 d2) x lattice(k3 d2)``."""
        return " x ".join(f"{a.kind}(k{a.k} d{a.d})" for a in self.axes)

    def op_counts(self):
        """The ONNX operators with their counts (the mask's constant Add counted with the Pad)."""
        counts = count_steps(self.steps())
        if self.masked:
            counts["Add"] += 1
        return counts

    @property
    def in_size(self) -> tuple[int, ...]:
        return tuple(a.n for a in self.axes)

    @property
    def out_size(self) -> tuple[int, ...]:
        return tuple(a.out for a in self.axes)

    @property
    def pads_before(self) -> tuple[int, ...]:
        return tuple(a.pad for a in self.axes)

    @property
    def pads_after(self) -> tuple[int, ...]:
        return tuple(max(a.pad_after, 0) for a in self.axes)

    @property
    def crops(self) -> tuple[int, ...]:
        """Cells kept of each input axis before padding (the input size where nothing is cropped)."""
        return tuple(a.n + min(a.pad_after, 0) for a in self.axes)

    @property
    def plain_pool(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """Kernel and stride of the first, plain MaxPool over the undilated axes (1 on the others), or None
        where no undilated axis needs pooling."""
        kernel = tuple(a.k if a.kind == "plain" else 1 for a in self.axes)
        stride = tuple(a.s if a.kind == "plain" else 1 for a in self.axes)
        return None if all(v == 1 for v in kernel + stride) else (kernel, stride)

    def steps(self) -> list[str]:
        """The ONNX operators, in order, as the backend asks for them (an exporter's optimizer may merge
        consecutive Reshapes)."""
        steps = ["Slice"] if any(a.pad_after < 0 for a in self.axes) else []
        steps += ["Pad"] if any(self.pads_before) or any(self.pads_after) else []
        pool = ONNX_POOL[self.op]
        steps += [pool] if self.plain_pool else []
        for i, a in reversed(list(enumerate(self.axes))):
            if a.kind == "plain":
                continue
            if a.kind == "lattice":
                steps += ["Reshape", "Slice", pool]
            else:
                steps += ["Reshape", pool, "Reshape"]
                steps += ["Slice"] if a.q * a.d != a.out * a.s else []
                steps += ["Reshape", "Slice"] if a.s > 1 else []
            steps += ["Reshape"] if self.reshaped_after(i) else []
        return steps + (["Mul"] if self.corrected else [])

    def __str__(self) -> str:
        axes = " x ".join(f"{a.kind}(k{a.k} s{a.s} d{a.d} p{a.pad})" for a in self.axes)
        return f"dilated {self.op} pool {axes}: {', '.join(self.steps())}"


@lru_cache(maxsize=4096)
def dilated_plan(spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> DilatedPlan:
    """The plan of ``max_pool{d}d(x, kernel, stride, padding, dilation, ceil_mode)`` on ``spatial``.

    Raises:
        PoolportError: torch's argument checks (``plan.divisor.pool_output``).
    """
    outs = pool_output("max_pool", spatial, kernel, stride, padding, dilation, ceil_mode)
    return DilatedPlan(_axes(spatial, kernel, stride, padding, dilation, outs))


def _axes(spatial, kernel, stride, padding, dilation, outs) -> tuple[DilatedAxis, ...]:
    """The axes of a plan whose windows start at ``i * s - padding`` (the Pad before) on each axis."""
    axes = []
    for n, k, s, p, d, out in zip(spatial, kernel, stride, padding, dilation, outs):
        q = 0
        if d == 1:
            kind, length = "plain", (out - 1) * s + k
        elif s % d == 0:
            kind, length = "lattice", d * ((out - 1) * (s // d) + k)
        else:
            q = -(-(out * s) // d)  # stride-1 cells per residue: Q*d >= out*s rows to subsample from
            kind, length = "stride1", d * (q + k - 1)
        axes.append(DilatedAxis(n, k, s, d, p, out, kind, length, length - p - n, q))
    return tuple(axes)


@lru_cache(maxsize=4096)
def dilated_onnx_plan(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                      dilation: tuple[int, ...], pads_before: tuple[int, ...], pads_after: tuple[int, ...],
                      ceil_mode: bool, count_include_pad: bool) -> DilatedPlan:
    """The plan of ONNX's ``op`` ("max" or "avg") pooling with dilations, explicit (possibly asymmetric)
    pads and ``ceil_mode`` on ``spatial``: output sizes as ONNX defines them (``plan.pads.torch_output`` of
    the window's extent), for average the per-axis factors ``k / divisor``.

    Raises:
        PoolportError: a kernel, stride or dilation that is not a positive int, or a window's extent larger
        than the padded input.
    """
    outs, factors = [], []
    for n, k, s, d, b, e in zip(spatial, kernel, stride, dilation, pads_before, pads_after):
        check_pool_args(n, k, s, "pooling", d)
        out = torch_output(n, (k - 1) * d + 1, s, b, e, ceil_mode)
        outs.append(out)
        if op == "avg":
            lo, hi = (-b, n + e) if count_include_pad else (0, n)
            counts = [sum(lo <= i * s - b + j * d < hi for j in range(k)) for i in range(out)]
            factors.append(tuple(k / c if c else 0.0 for c in counts))
    axes = _axes(spatial, kernel, stride, pads_before, dilation, outs)
    return DilatedPlan(axes, op=op, factors=tuple(factors))
