"""Compose per-axis plans into the plan for a 1d/2d/3d adaptive pooling call.

Adaptive pooling is separable: the window of an output cell is the product of its per-axis windows,
so the max (or the mean, every row having the same count) can be taken one axis at a time. The plan is
a short list of *passes* over the tensor:

* If every axis is global, one pooling op over the whole plane (not ReduceMean/ReduceMax, which ncnn
  via pnnx gets wrong or cannot load).
* If every axis is a single op (identity, global or uniform), one N-d pooling op.
* Otherwise one pass per ``runs`` axis, ordered by how much it shrinks the tensor (largest
  reduction first, so later passes touch less data). The single-op axes are folded into the first
  pass: every run's pooling op also pools them, so they cost no extra node.

A plan also has a *style* (``STYLES``), chosen per target: the same windows, two graphs.

* ``"default"``: one Concat per pass listing every piece, a repeated window listed as often as it
  repeats. The fewest nodes: what ONNX Runtime, OpenVINO, ncnn and MNN run fastest, exactly.
* ``"edge"``: for the XNNPACK delegates of LiteRT and ExecuTorch. A Concat takes at most
  ``MAX_CONCAT_INPUTS`` inputs (longer ones become a tree, a 1x1 pool after each inner Concat), and each
  further copy of a repeated window goes through a 1x1 pool.

Which target gets which style: ``poolport.routing.targets``; how a style is walked: ``backend.execute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError
from .axis import AxisPlan, Run, plan_axis

OPS = ("avg", "max")
STYLES = ("default", "edge")
# LiteRT's XNNPACK delegate takes a CONCATENATION of at most 5 inputs (measured, ai-edge-litert 2.3: more
# stays on the CPU): in the edge style, longer concatenations are a tree of at most this many inputs each
MAX_CONCAT_INPUTS = 5
ONNX_POOL = {"avg": "AveragePool", "max": "MaxPool"}
# a global plan (every axis -> 1) is one pooling op over the whole plane: ncnn via pnnx cannot load
# ReduceMax and gives a wrong shape for a keepdims ReduceMean at the graph output (measured 2026-11-25)


@dataclass(frozen=True)
class Pass:
    """One pass over the tensor.

    ``runs_axis`` is the axis computed run by run (None when the pass is a single pooling op);
    ``folded`` are the axes pooled by the same op(s) with their single kernel/stride.
    """

    runs_axis: int | None
    runs: tuple[Run, ...]
    folded: tuple[int, ...]

    def pool_params(self, plans: tuple[AxisPlan, ...], run: Run | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Kernel and stride, per axis, of the pooling op for ``run`` (or the single op)."""
        kernel, stride = [1] * len(plans), [1] * len(plans)
        for a in self.folded:
            kernel[a], stride[a] = plans[a].kernel, plans[a].stride
        if run is not None:
            kernel[self.runs_axis], stride[self.runs_axis] = run.kernel, run.pool_stride
        return tuple(kernel), tuple(stride)

    def pools(self, plans: tuple[AxisPlan, ...], run: Run | None) -> bool:
        """False when the op for ``run`` would be a kernel-1 stride-1 pool, i.e. a no-op."""
        kernel, stride = self.pool_params(plans, run)
        return any(k != 1 for k in kernel) or any(s != 1 for s in stride)


@dataclass(frozen=True)
class PoolPlan:
    """Adaptive ``op`` pooling of ``in_size`` to ``out_size``: the per-axis plans and the passes that compute them. ``print(plan)`` shows it; ``to_dict()`` is plain data.

    The ONNX operators a plan is written with depend on the target's style; they are counted by running
    the plan through the counting backend (``poolport.backend.counting.count_ops``), the same walk every
    backend takes."""

    op: str  # "avg" | "max"
    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    axes: tuple[AxisPlan, ...]
    kind: str  # "identity" | "global" | "single" | "passes"
    passes: tuple[Pass, ...]
    style: str = "default"  # how it is written: one of STYLES

    @property
    def ndim(self) -> int:
        """Number of pooled axes."""
        return len(self.in_size)

    def summary(self) -> str:
        """One line: the kind of plan per axis, e.g. ``H runs(3) x W uniform(k2 s1)``."""
        parts = []
        for a in self.axes:
            if a.kind == "runs":
                parts.append(f"runs({len(a.runs)})")
            elif a.kind == "uniform":
                parts.append(f"uniform(k{a.kernel} s{a.stride})")
            else:
                parts.append(a.kind)
        return " x ".join(parts)

    def __str__(self) -> str:
        names = axis_names(self.ndim)
        style = "" if self.style == "default" else f" ({self.style} style)"
        lines = [
            f"adaptive {self.op} pool {tuple_str(self.in_size)} -> {tuple_str(self.out_size)}: {self.kind}{style}"
        ]
        for name, a in zip(names, self.axes):
            lines.append(f"  axis {name}: {a}")
        for i, p in enumerate(self.passes, 1):
            if p.runs_axis is None:
                k, s = p.pool_params(self.axes, None)
                lines.append(f"  pass {i}: one {self.op} pool kernel {k} stride {s}")
            else:
                folded = ", ".join(names[a] for a in p.folded)
                extra = f" (also pooling {folded})" if folded else ""
                lines.append(
                    f"  pass {i}: axis {names[p.runs_axis]} in {len(p.runs)} run{'' if len(p.runs) == 1 else 's'}{extra}, then Concat"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The plan as plain data (for JSON)."""
        return {
            "op": self.op,
            "in_size": list(self.in_size),
            "out_size": list(self.out_size),
            "kind": self.kind,
            "style": self.style,
            "axes": [
                {
                    "n": a.n,
                    "o": a.o,
                    "kind": a.kind,
                    "runs": [
                        {"start": r.start, "stop": r.stop, "kernel": r.kernel, "stride": r.stride, "count": r.count}
                        for r in a.runs
                    ],
                }
                for a in self.axes
            ],
        }


def check_style(style: str) -> str:
    """``style`` if it is one of ``STYLES``; else a PoolportError naming them."""
    if style not in STYLES:
        raise PoolportError(f"unknown plan style {style!r}: choose from {', '.join(STYLES)}.")
    return style


def axis_names(ndim: int) -> tuple[str, ...]:
    """``L``, ``H W`` or ``D H W``."""
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(ndim, tuple(f"d{i}" for i in range(ndim)))


def tuple_str(size: tuple[int | None, ...]) -> str:
    """``(9, 9)`` as ``9x9``; an unknown (dynamic) size shows as ``?``."""
    return "x".join("?" if s is None else str(s) for s in size)


@lru_cache(maxsize=4096)
def plan_pool(op: str, in_size: tuple[int, ...], out_size: tuple[int, ...], style: str = "default") -> PoolPlan:
    """Plan adaptive ``op`` pooling of a spatial ``in_size`` down (or up) to ``out_size``, to be written
    in ``style`` (one of ``STYLES``, see the module's docstring).

    Raises:
        PoolportError: an unknown ``op`` or ``style``, sizes of different or unsupported lengths, or an
            empty axis.
    """
    if op not in OPS:
        raise PoolportError(f"adaptive pooling: op must be one of {OPS}, got {op!r}.")
    check_style(style)
    if len(in_size) != len(out_size) or not 1 <= len(in_size) <= 3:
        raise PoolportError(
            f"adaptive pooling: input size {in_size} and output size {out_size} must both have 1, 2 or 3 entries."
        )
    axes = tuple(plan_axis(n, o) for n, o in zip(in_size, out_size))
    kinds = {a.kind for a in axes}
    if kinds == {"identity"}:
        return PoolPlan(op, in_size, out_size, axes, "identity", (), style)
    if all(a.o == 1 for a in axes):
        # every axis reduces to one cell: one pooling op over the whole plane
        return PoolPlan(op, in_size, out_size, axes, "global", (), style)
    single = tuple(i for i, a in enumerate(axes) if a.single_op and a.kind != "identity")
    runs_axes = [i for i, a in enumerate(axes) if a.kind == "runs"]
    if not runs_axes:
        return PoolPlan(op, in_size, out_size, axes, "single", (Pass(None, (), single),), style)
    runs_axes.sort(key=lambda i: (axes[i].o / axes[i].n, i))
    passes = tuple(
        Pass(axis, axes[axis].runs, single if k == 0 else ()) for k, axis in enumerate(runs_axes)
    )
    return PoolPlan(op, in_size, out_size, axes, "passes", passes, style)
