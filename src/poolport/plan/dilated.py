"""Dilated max pooling (``F.max_pool2d(..., dilation=d)``) as plain pooling on sub-lattices, reached by
reshapes and contiguous slices only. Pure integers.

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

Axes without dilation are pooled first, together, by one plain MaxPool. The padding holds ``-inf`` (a
dilated window need not hold the edge cell a replicated edge would copy, and a window may hold no real
cell at all: torch returns ``-inf`` there). ncnn, MNN and LiteRT refuse or miscompute dilated pooling
and strided slices; these steps are plain pools, Pads, Reshapes and contiguous Slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .divisor import count_steps, pool_output


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
    """``max_pool{d}d`` with dilation over ``len(axes)`` axes; see the module's docstring."""

    axes: tuple[DilatedAxis, ...]
    kind: str = "dilated"
    style: str = "default"  # one form for every target that gets it

    def summary(self) -> str:
        """One line per axis kind, e.g. ``stride1(k3 d2) x lattice(k3 d2)``."""
        return " x ".join(f"{a.kind}(k{a.k} d{a.d})" for a in self.axes)

    def op_counts(self):
        """The ONNX operators with their counts (the mask's constant Add counted with the Pad)."""
        counts = count_steps(self.steps())
        if "Pad" in counts:
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
        steps += ["MaxPool"] if self.plain_pool else []
        for i, a in enumerate(self.axes):
            if a.kind == "plain":
                continue
            if a.kind == "lattice":
                steps += ["Reshape", "Slice", "MaxPool"]
            else:
                steps += ["Reshape", "MaxPool", "Reshape"]
                steps += ["Slice"] if a.q * a.d != a.out * a.s else []
                steps += ["Reshape", "Slice"] if a.s > 1 else []
            steps += [] if i == 0 and len(self.axes) > 1 else ["Reshape"]
        return steps

    def __str__(self) -> str:
        axes = " x ".join(f"{a.kind}(k{a.k} s{a.s} d{a.d} p{a.pad})" for a in self.axes)
        return f"dilated max pool {axes}: {', '.join(self.steps())}"


@lru_cache(maxsize=4096)
def dilated_plan(spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> DilatedPlan:
    """The plan of ``max_pool{d}d(x, kernel, stride, padding, dilation, ceil_mode)`` on ``spatial``.

    Raises:
        PoolportError: torch's argument checks (``plan.divisor.pool_output``).
    """
    outs = pool_output("max_pool", spatial, kernel, stride, padding, dilation, ceil_mode)
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
    return DilatedPlan(tuple(axes))
