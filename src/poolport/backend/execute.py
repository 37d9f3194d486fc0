"""Walk a plan against any backend. ``execute``: the one place that knows how an adaptive ``PoolPlan``'s
passes, runs, repeats and folded axes turn into slice / pool / concat calls, in the plan's style
(``plan.pooling.STYLES``: the default form, or the edge form for the XNNPACK delegates of LiteRT and
ExecuTorch); ``execute_explicit``: the one place that knows the explicit form's steps (pad, pool, divisor
correction); ``execute_dilated``: the one walk over dilated pooling on sub-lattices (``plan.dilated``: crop,
pad, reshape, contiguous slice, pool, divisor correction), torch's and the legalizer's alike. Backends only implement the calls (``torch_ops``: torch; ``onnx_ops``: ONNX nodes, inside the
TorchScript exporter or written directly; ``counting``: the operators counted)."""

from __future__ import annotations

from itertools import product
from math import prod
from typing import Any, Protocol

from ..plan import PoolPlan
from ..plan.dilated import DilatedPlan
from ..plan.explicit import ExplicitPool
from ..plan.indices import ArgmaxPlan, TapAxis, UnpoolAxis, UnpoolPlan, _rows
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


# -- argmax indices and unpooling without ScatterND (plan.indices) -----------------------------------------------
# One walk for both backends: ``torch_pools.apply_argmax``/``apply_unpool`` (torch ops, exported by torch's
# exporters) and ``onnx_nodes.argmax_nodes``/``unpool_nodes`` (the legalizer's ONNX nodes), so neither form can
# drift from the other.

QUARTER, CLIP, PAD_SCALED = 0.25, 2.0 ** 126, -(2.0 ** 127)  # finite x / 4 lies strictly inside +-2^126
FLOAT32_MAX = 3.4028234663852886e38


class IndexOps(Protocol):
    """What a backend implements for ``execute_argmax`` and ``execute_unpool``. Arithmetic takes tensors or
    Python floats (scalars) as either operand, as torch's operators do."""

    def window(self, x: Any, first: int, starts: tuple[int, ...], stops: tuple[int, ...]) -> Any:
        """``x[start:stop]`` along the dims from ``first`` on, one (start, stop) per dim (contiguous)."""

    def pad(self, x: Any, before: tuple[int, ...], after: tuple[int, ...], value: float) -> Any:
        """``x`` padded with ``value`` on its last ``len(before)`` axes."""

    def pool(self, x: Any, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Any:
        """``op`` pooling with ``kernel``/``stride`` per spatial axis, no padding."""

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        """``x`` reshaped (-1 for the batch)."""

    def constant(self, rows: tuple, channels: int, shape: tuple[int, ...] | None = None) -> Any:
        """A float constant: ``rows`` (nested tuples) repeated per channel, (1, C, *rows' shape), reshaped to
        ``shape`` where given."""

    def add(self, a: Any, b: Any) -> Any: ...

    def sub(self, a: Any, b: Any) -> Any: ...

    def mul(self, a: Any, b: Any) -> Any: ...

    def clip(self, x: Any, low: float, high: float) -> Any: ...

    def maximum(self, a: Any, b: Any) -> Any: ...

    def minimum(self, a: Any, b: Any) -> Any: ...

    def relu(self, x: Any) -> Any: ...

    def abs(self, x: Any) -> Any: ...

    def upsample(self, x: Any, scale: tuple[int, int]) -> Any:
        """Nearest upsampling of the last two axes by integer factors (a Resize that copies cells)."""


def _taps2(ops: IndexOps, t: Any, ah, aw) -> dict:
    """Each tap's plane over the last two axes of ``t`` (N, C', reach_h, reach_w): a contiguous Slice and a
    plain AveragePool of kernel 1 with the windows' stride (a copy; a MaxPool of kernel 1 would turn -inf into
    -FLT_MAX in OpenVINO and -2^24 in MNN: their MaxPool starts from a finite lowest value, measured)."""
    planes = {}
    for jh in range(ah.kernel):
        for jw in range(aw.kernel):
            h0, w0 = jh * ah.dilation, jw * aw.dilation
            p = ops.window(t, 2, (h0, w0), (h0 + ah.span, w0 + aw.span))
            # also at stride 1: pnnx infers the batch axis from a pooling op; a graph of Pad, Slice and
            # Max alone became 4-D blobs in ncnn, sliced on the wrong axes (measured, pnnx 20261020)
            planes[(jh, jw)] = ops.pool(p, "avg", (1, 1), (ah.stride, aw.stride))
    return planes


def _tap_planes(ops: IndexOps, t: Any, plan: ArgmaxPlan, channels: int) -> list:
    """The planes of ``t`` (N, C, *reach) in torch's scan order, each 4-D: (N, C, 1, Lo) in 1-D, (N, C, Ho,
    Wo) in 2-D, (N, C, Do, Ho*Wo) in 3-D (ncnn holds at most 4 axes)."""
    axes = plan.axes
    if len(axes) == 1:
        flat = TapAxis(1, 1, 1, 0, 1, 1)
        planes = _taps2(ops, ops.reshape(t, (-1, channels, 1, axes[0].reach)), flat, axes[0])
        return [planes[(0, j)] for j in range(axes[0].kernel)]
    if len(axes) == 2:
        planes = _taps2(ops, t, *axes)
        return [planes[tap] for tap in plan.taps()]
    ad, ah, aw = axes
    hw = _taps2(ops, ops.reshape(t, (-1, channels * ad.reach, ah.reach, aw.reach)), ah, aw)
    out = {}
    for (jh, jw), p in hw.items():
        p = ops.reshape(p, (-1, channels, ad.reach, ah.out * aw.out))
        for jd in range(ad.kernel):
            q = ops.window(p, 2, (jd * ad.dilation,), (jd * ad.dilation + ad.span,))
            out[(jd, jh, jw)] = ops.pool(q, "avg", (1, 1), (ad.stride, 1)) if ad.stride > 1 else q
    return [out[tap] for tap in plan.taps()]


def plane_shape(sizes: tuple[int, ...], channels: int) -> tuple[int, ...]:
    """The 4-D planes' shape past the batch for spatial ``sizes``: (C, 1, L), (C, H, W) or (C, D, H*W)."""
    if len(sizes) == 1:
        return (channels, 1, sizes[0])
    if len(sizes) == 2:
        return (channels, *sizes)
    return (channels, sizes[0], sizes[1] * sizes[2])


def _first_max(ops: IndexOps, a, off_a, b, off_b):
    """The first maximum of two runs of planes, ``a`` before ``b``: their best (scaled) values and the tap
    offset where it lies (``b``'s only where strictly greater)."""
    beats = ops.clip(ops.mul(ops.mul(ops.sub(b, a), 2.0 ** 100), 2.0 ** 100), 0, 1)  # 1 where strictly greater
    diff = off_b - off_a if isinstance(off_a, float) and isinstance(off_b, float) else ops.sub(off_b, off_a)
    return ops.maximum(a, b), ops.add(off_a, ops.mul(beats, diff))


def execute_argmax(plan: ArgmaxPlan, x: Any, ops: IndexOps, channels: int) -> tuple[Any, Any]:
    """``max_pool{d}d(..., return_indices=True)`` by ``plan`` on float32 ``x`` (N, ``channels``, *spatial):
    the values (the running Max of the tap planes) and the first maximum's flat index per plane as float32
    (see ``plan.indices``)."""
    crop = tuple(a.length + min(a.after, 0) for a in plan.axes)
    if crop != plan.in_size:
        x = ops.window(x, 2, (0,) * len(crop), crop)
    before = tuple(a.padding for a in plan.axes)
    after = tuple(max(a.after, 0) for a in plan.axes)
    raw = x
    if plan.padded:
        # padding as in pad_lowest: a zero Pad plus a constant per channel (a (H, W) mask became 4-D in ncnn and
        # the Slices after it cut the wrong axes; a 3-D Pad with a value made pnnx run out of memory: measured)
        scaled = ops.clip(ops.mul(x, QUARTER), -CLIP, CLIP)  # order kept, +-inf included, differences finite
        sizes = tuple(a.reach for a in plan.axes)
        real = [[0 <= i - a.padding < a.length for i in range(a.reach)] for a in plan.axes]
        inside = [all(r[i] for r, i in zip(real, ii)) for ii in product(*(range(n) for n in sizes))]
        raw = ops.add(ops.pad(x, before, after, 0.0),
                      ops.constant(_rows([-0.0 if v else float("-inf") for v in inside], sizes), channels))
        # the scaled padding lies below every real cell (-2^127 < -2^126): padding never wins
        scaled = ops.add(ops.pad(scaled, before, after, 0.0),
                         ops.constant(_rows([0.0 if v else PAD_SCALED for v in inside], sizes), channels))
    values_planes = _tap_planes(ops, raw, plan, channels)
    scaled_planes = _tap_planes(ops, scaled, plan, channels) if plan.padded else [
        ops.clip(ops.mul(p, QUARTER), -CLIP, CLIP) for p in values_planes]
    values = values_planes[0]
    for v in values_planes[1:]:
        values = ops.maximum(values, v)
    # the first maximum of the planes, merged pairwise in scan order (a tournament, log2(K) deep: pnnx
    # could not convert a scan of 27 planes in one chain, measured)
    entries = [(p, plan.offset(tap)) for p, tap in zip(scaled_planes, plan.taps())]
    while len(entries) > 1:
        merged = [_first_max(ops, *entries[i], *entries[i + 1]) for i in range(0, len(entries) - 1, 2)]
        entries = merged + entries[len(entries) - len(entries) % 2:]
    best, offset = entries[0]
    if isinstance(offset, float):
        offset = ops.add(ops.mul(best, 0.0), offset)  # best is finite
    shape = plane_shape(plan.out_size, channels)
    index = ops.add(offset, ops.constant(plan.origins(), channels, (1, *shape)))
    out = (-1, channels, *plan.out_size)
    return ops.reshape(values, out), ops.reshape(index, out)


def _candidates2(ops: IndexOps, t: Any, ah, aw, fill: float) -> dict:
    """Each candidate window per output cell over the last two axes of ``t`` (N, C', in_h, in_w)."""
    t = ops.pad(t, (ah.before, aw.before), (ah.after, aw.after), fill)
    if (ah.stride, aw.stride) != (1, 1):
        t = ops.upsample(t, (ah.stride, aw.stride))
    return {(mh, mw): ops.window(t, 2, (ah.start(mh), aw.start(mw)), (ah.start(mh) + ah.out, aw.start(mw) + aw.out))
            for mh in range(ah.candidates) for mw in range(aw.candidates)}


def _candidate_planes(ops: IndexOps, t: Any, plan: UnpoolPlan, channels: int, fill: float) -> list:
    """``t`` (N, C, *in) per candidate window of each output cell, in ``plan.candidates()`` order, 4-D as in
    ``_tap_planes``."""
    axes = plan.axes
    if len(axes) == 1:
        flat = UnpoolAxis(1, 1, 1, 0, 1)
        planes = _candidates2(ops, ops.reshape(t, (-1, channels, 1, axes[0].length)), flat, axes[0], fill)
        return [planes[(0, m)] for m in range(axes[0].candidates)]
    if len(axes) == 2:
        planes = _candidates2(ops, t, *axes, fill)
        return [planes[c] for c in plan.candidates()]
    ad, ah, aw = axes
    hw = _candidates2(ops, ops.reshape(t, (-1, channels * ad.length, ah.length, aw.length)), ah, aw, fill)
    flat = UnpoolAxis(ah.out * aw.out, 1, 1, 0, ah.out * aw.out)
    out = {}
    for (mh, mw), p in hw.items():
        p = ops.reshape(p, (-1, channels, ad.length, ah.out * aw.out))
        planes = _candidates2(ops, p, ad, flat, fill)
        for md in range(ad.candidates):
            out[(md, mh, mw)] = planes[(md, 0)]
    return [out[c] for c in plan.candidates()]


def execute_unpool(plan: UnpoolPlan, y: Any, index: Any, ops: IndexOps, channels: int) -> Any:
    """``max_unpool{d}d`` by ``plan`` of float32 ``y`` (N, ``channels``, *in) at float32 per-plane flat
    ``index`` (see ``plan.indices``)."""
    values = _candidate_planes(ops, y, plan, channels, 0.0)
    indices = _candidate_planes(ops, index, plan, channels, -1.0)  # sentinel windows hold no cell
    positions = ops.constant(plan.positions(), channels, (1, *plane_shape(plan.out_size, channels)))
    out, taken = None, None
    for v, i in zip(values, indices):
        mask = ops.relu(ops.sub(1, ops.abs(ops.sub(i, positions))))  # 1 where this window's index is the cell
        if taken is not None:
            mask = ops.mul(mask, ops.sub(1, taken))  # a later window (an earlier candidate) wrote it already
        gate = ops.mul(ops.mul(mask, FLOAT32_MAX), ops.mul(mask, 4.0))  # inf where selected, 0 elsewhere (never mask * inf: NaN)
        part = ops.maximum(ops.minimum(v, gate), ops.sub(0.0, gate))
        out = part if out is None else ops.add(out, part)
        if len(values) > 1:
            taken = mask if taken is None else ops.add(taken, mask)
    return ops.reshape(out, (-1, channels, *plan.out_size))
