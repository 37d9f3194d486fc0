"""Walk a plan against any backend. ``execute``: the one place that knows how an adaptive ``PoolPlan``'s
passes, runs, repeats and folded axes turn into slice / pool / concat calls, in the plan's style
(``plan.pooling.STYLES``: the default form, or the edge form for the XNNPACK delegates of LiteRT and
ExecuTorch); ``execute_explicit``: the one place that knows the explicit form's steps (pad, pool, divisor
correction); ``execute_dilated``: the one walk over dilated pooling on sub-lattices (``plan.dilated``: crop,
pad, reshape, contiguous slice, pool, divisor correction), torch's and the legalizer's alike. Backends only implement the calls (``torch_ops``: torch; ``onnx_ops``: ONNX nodes, inside the
TorchScript exporter or written directly; ``counting``: the operators counted)."""

from __future__ import annotations

from math import prod
from typing import Any, Protocol

from ..plan import PoolPlan
from ..plan.dilated import DilatedPlan
from ..plan.explicit import ExplicitPool
from ..plan.pooling import MAX_CONCAT_INPUTS


class Ops(Protocol):
    """What a backend implements for ``execute``: slice, pool (no padding), concat and copy."""

    def slice(self, x: Any, dim: int, start: int, stop: int) -> Any:
        """``x[start:stop]`` along ``dim``."""

    def pool(self, x: Any, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Any:
        """``op`` pooling with ``kernel``/``stride`` per spatial axis, no padding."""

    def concat(self, parts: list, dim: int) -> Any:
        """Concatenate ``parts`` along ``dim``."""

    def copy(self, x: Any) -> Any:
        """``x`` unchanged (an identity plan)."""


class ExplicitOps(Protocol):
    """What a backend implements for ``execute_explicit``: pad, pool (no padding) and scale."""

    def pad(self, x: Any, before: tuple[int, ...], after: tuple[int, ...], mode: str) -> Any:
        """``x`` padded on its spatial axes, with zeros (``mode`` "constant") or its edge values ("edge")."""

    def pool(self, x: Any, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Any:
        """``op`` pooling with ``kernel``/``stride`` per spatial axis, no padding."""

    def scale(self, x: Any, factors: tuple[tuple[float, ...], ...]) -> Any:
        """``x`` times a constant factor per output cell: the product of its per-axis ``factors`` (per axis,
        one per output cell), broadcast over N and C."""


def execute_explicit(plan: ExplicitPool, x: Any, ops: ExplicitOps) -> Any:
    """Run the explicit form ``plan`` on ``x`` (N, C, *spatial): Pad (where it pads), the pooling op, and
    for average the divisor correction (where some factor is not 1)."""
    if plan.padded:
        x = ops.pad(x, plan.pads_before, plan.pads_after, plan.pad_mode)
    x = ops.pool(x, plan.op, plan.kernel, plan.stride)
    if plan.corrected:
        x = ops.scale(x, plan.factors)
    return x


class DilatedOps(ExplicitOps, Protocol):
    """What a backend implements for ``execute_dilated``: ``ExplicitOps``' pad, pool and scale, and:"""

    def crop(self, x: Any, stops: tuple[int, ...]) -> Any:
        """``x[..., :stops[0], :stops[1], ...]`` on its spatial axes (one Slice)."""

    def pad_lowest(self, x: Any, before: tuple[int, ...], after: tuple[int, ...], lengths: tuple[int, ...],
                   channels: int) -> Any:
        """``x`` padded on its spatial axes with -inf (the lowest value of an integer type); ``lengths``:
        the padded sizes."""

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        """``x`` reshaped to ``shape`` (-1 first: the batch, which may be symbolic)."""

    def slice(self, x: Any, dim: int, start: int, stop: int) -> Any:
        """``x[start:stop]`` along ``dim``."""


def execute_dilated(plan: DilatedPlan, x: Any, ops: DilatedOps, channels: int) -> Any:
    """Run the sub-lattice form ``plan`` on ``x`` (N, C, *spatial) with ``channels`` = C: crop, Pad (-inf for
    max, zeros for average), one plain pool over the undilated axes, then per dilated axis plain pooling on
    its sub-lattices (see ``plan.dilated``), and for average the divisor correction. Intermediate tensors
    stay 4-D (ncnn holds at most 4 axes besides the batch)."""
    if plan.crops != plan.in_size:
        x = ops.crop(x, plan.crops)
    if plan.masked:
        x = ops.pad_lowest(x, plan.pads_before, plan.pads_after, tuple(a.length for a in plan.axes), channels)
    elif any(plan.pads_before) or any(plan.pads_after):
        x = ops.pad(x, plan.pads_before, plan.pads_after, "constant")
    if plan.plain_pool is not None:
        x = ops.pool(x, plan.op, *plan.plain_pool)
    sizes = [a.out if a.kind == "plain" else a.length for a in plan.axes]  # the sizes the plan is for
    for i, a in reversed(list(enumerate(plan.axes))):
        if a.kind == "plain":
            continue
        lead = channels * prod(sizes[:i])
        rest = prod(sizes[i + 1:])
        y = ops.reshape(x, (-1, lead, a.lattice, a.d * rest))
        if a.kind == "lattice":
            y = ops.pool(ops.slice(y, 3, 0, rest), plan.op, (a.k, 1), (a.s // a.d, 1))
        else:
            y = ops.reshape(ops.pool(y, plan.op, (a.k, 1), (1, 1)), (-1, lead, a.q * a.d, rest))
            if a.q * a.d != a.out * a.s:
                y = ops.slice(y, 2, 0, a.out * a.s)
            if a.s > 1:
                y = ops.slice(ops.reshape(y, (-1, lead, a.out, a.s * rest)), 3, 0, rest)
        sizes[i] = a.out
        x = ops.reshape(y, (-1, channels, *sizes)) if plan.reshaped_after(i) else y
    if plan.corrected:
        x = ops.scale(x, plan.factors)
    return x


def execute(plan: PoolPlan, x: Any, ops: Ops, rank: int) -> Any:
    """Run ``plan`` on ``x`` of rank ``rank`` = 2 + plan.ndim (batch, channels, spatial...), written in the
    plan's style: one Concat per pass listing every piece (``"default"``), or concats of at most
    ``MAX_CONCAT_INPUTS`` inputs and repeated windows copied through 1x1 pools (``"edge"``)."""
    edge = plan.style == "edge"
    first = rank - plan.ndim  # dim of spatial axis 0
    if plan.kind == "identity":
        return ops.copy(x)
    if plan.kind == "global":
        # a pooling op over the whole plane: ncnn via pnnx cannot load ReduceMax and returns a wrong
        # shape for a keepdims ReduceMean at the graph output (measured); pooling loads everywhere
        return ops.pool(x, plan.op, plan.in_size, plan.in_size)
    unit = (1,) * plan.ndim
    for p in plan.passes:
        if p.runs_axis is None:
            kernel, stride = p.pool_params(plan.axes, None)
            x = ops.pool(x, plan.op, kernel, stride)
            continue
        dim = first + p.runs_axis
        n = plan.axes[p.runs_axis].n
        pieces = []
        for run in p.runs:
            part = x if run.start == 0 and run.stop == n else ops.slice(x, dim, run.start, run.stop)
            if p.pools(plan.axes, run):
                kernel, stride = p.pool_params(plan.axes, run)
                part = ops.pool(part, plan.op, kernel, stride)
            pieces.append(part)
            # a repeated window: listed again in the Concat (default), or in the edge style each further copy
            # through a 1x1 pool (an exact identity), because ExecuTorch's XNNPACK partitioner leaves a concat
            # that lists one tensor twice outside the delegate
            pieces.extend(ops.pool(part, plan.op, unit, unit) if edge else part for _ in range(run.copies - 1))
        if edge:
            x = concat_tree(ops, pieces, dim, plan.op, plan.ndim)
        else:
            x = ops.concat(pieces, dim) if len(pieces) > 1 else pieces[0]
    return x


def concat_tree(ops: Ops, pieces: list, dim: int, op: str, ndim: int) -> Any:
    """``pieces`` concatenated along ``dim`` by concats of at most ``MAX_CONCAT_INPUTS`` inputs each. Each
    inner concat is followed by a 1x1 stride-1 ``op`` pooling (an exact identity): converters fold a
    Concat of Concats back into one (litert-torch 0.10 does), a pooling op in between they keep."""
    unit = (1,) * ndim
    while len(pieces) > MAX_CONCAT_INPUTS:
        groups = [pieces[i:i + MAX_CONCAT_INPUTS] for i in range(0, len(pieces), MAX_CONCAT_INPUTS)]
        pieces = [ops.pool(ops.concat(g, dim), op, unit, unit) if len(g) > 1 else g[0] for g in groups]
    return ops.concat(pieces, dim) if len(pieces) > 1 else pieces[0]
