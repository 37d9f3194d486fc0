"""torch's plain pooling ops that some runtime cannot take, in portable torch ops: average pooling with
``divisor_override`` and power-average pooling (both on the explicit form, ``execute_explicit``), and
dilated max pooling on sub-lattices (``plan.dilated``), max pooling's indices and unpooling without
ScatterND (``plan.indices``). Every op here exports to ONNX operators that ONNX Runtime, OpenVINO, ncnn,
MNN and LiteRT compute: Pad, AveragePool/MaxPool without padding or dilation, Mul, Pow/Sqrt, Abs/Neg,
Reshape and contiguous Slice; the indices add Sub/Add, Clip, Max/Min, Relu and a nearest Resize (exact
in ONNX Runtime, OpenVINO, ncnn and MNN; not in LiteRT, measured)."""

from __future__ import annotations

import warnings
from itertools import product

import torch
import torch.nn.functional as F

from ..errors import PoolportError
from ..plan.dilated import DilatedPlan
from ..plan.divisor import DivisorPlan
from ..plan.explicit import ExplicitPool
from ..plan.fractional import FractionalPlan
from ..plan.indices import ArgmaxPlan, TapAxis, UnpoolAxis, UnpoolPlan, _rows
from ..plan.lppool import LpPlan
from .execute import execute, execute_dilated, execute_explicit
from .torch_ops import TorchOps, pool


def apply_explicit(x: torch.Tensor, plan: ExplicitPool) -> torch.Tensor:
    """The explicit form (Pad + pool + constant factors) on ``x`` (N, C, *spatial)."""
    return execute_explicit(plan, x, TorchOps)


def apply_divisor(x: torch.Tensor, plan: DivisorPlan) -> torch.Tensor:
    """``avg_pool(..., divisor_override)`` by ``plan`` on ``x`` (N, C, *spatial)."""
    return apply_explicit(x, plan.pool)


def apply_lp(x: torch.Tensor, plan: LpPlan) -> torch.Tensor:
    """``lp_pool`` by ``plan`` on ``x`` (N, C, *spatial)."""
    if plan.kind == "max":
        return apply_explicit(x.abs(), plan.pool)
    if plan.kind == "min":
        return -apply_explicit(-x.abs(), plan.pool)
    y = raise_to(x, plan.power)
    y = apply_explicit(y, plan.pool)
    return torch.sqrt(y) if plan.root[0] == "sqrt" else raise_to(y, plan.root)


def raise_to(x: torch.Tensor, how: tuple[str, float]) -> torch.Tensor:
    """``x`` to a power as ``LpPlan.power`` says: unchanged, repeated products (and a reciprocal), or
    one ``pow``."""
    kind, e = how
    if kind == "":
        return x
    if kind == "mul":
        y = x
        for _ in range(abs(int(e)) - 1):
            y = y * x
        return torch.reciprocal(y) if e < 0 else y
    return x.pow(e)


def pad_lowest(x: torch.Tensor, before: tuple[int, ...], after: tuple[int, ...],
               lengths: tuple[int, ...], channels: int) -> torch.Tensor:
    """``x`` padded on its spatial axes with -inf (an integer dtype: its lowest value), without a -inf in
    any operator's attributes: ncnn cannot parse a Padding value of -inf (measured, "ParamDict invalid
    numeric value"). Written as a zero Pad + a constant mask (-0.0 on real cells, -inf on padding) added
    to it: ``v + -0.0`` is ``v`` for every v (-0.0, inf and NaN included). ``lengths``: the padded sizes; ``channels``: x's
    channel count (a 3-D mask is written per channel: onnx2tf misplaces a (D, H, W) constant at some sizes,
    measured on 5x6x7, while (1, C, D, H, W) converts)."""
    ndim = len(before)
    pads = []
    for b, a in zip(reversed(before), reversed(after)):
        pads += [b, a]
    if not x.dtype.is_floating_point:
        return F.pad(x, pads, value=torch.iinfo(x.dtype).min)
    x = F.pad(x, pads)
    mask = None
    for i, (b, a, length) in enumerate(zip(before, after, lengths)):
        shape = [1] * ndim
        shape[i] = length
        values = [float("-inf")] * b + [-0.0] * (length - b - a) + [float("-inf")] * a
        axis = torch.tensor(values, dtype=x.dtype, device=x.device).reshape(shape)
        mask = axis if mask is None else mask + axis
    if ndim == 3:
        mask = mask.expand(1, channels, *mask.shape).clone()
    return x + (mask.reshape(1, -1) if ndim == 1 else mask)


class DilatedTorchOps(TorchOps):
    """``execute_dilated``'s operations as torch calls: ``TorchOps``' and crop, -inf padding, reshape."""

    @staticmethod
    def crop(x, stops):
        """Basic indexing (one Slice)."""
        return x[(Ellipsis, *(slice(0, c) for c in stops))]

    pad_lowest = staticmethod(pad_lowest)

    @staticmethod
    def reshape(x, shape):
        """``x.reshape(shape)``."""
        return x.reshape(shape)


def apply_dilated(x: torch.Tensor, plan: DilatedPlan) -> torch.Tensor:
    """Dilated max pooling by ``plan`` on ``x`` (N, C, *spatial), walked by ``execute_dilated``: crop/Pad
    with -inf, one plain pool over the undilated axes, then per dilated axis plain pooling on its
    sub-lattices (see ``plan.dilated``)."""
    with warnings.catch_warnings():  # a trace is specialised to the channels, as the plan is to the sizes
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        channels = int(x.shape[1])
    return execute_dilated(plan, x, DilatedTorchOps, channels)


# -- argmax indices and unpooling without ScatterND (plan.indices) -----------------------------------------------

_QUARTER, _CLIP, _PAD_SCALED = 0.25, 2.0 ** 126, -(2.0 ** 127)  # finite x / 4 lies strictly inside +-2^126


def _constant(rows, like: torch.Tensor, channels: int) -> torch.Tensor:
    """A constant per channel, (1, C, ...): onnx2tf misplaces constants shaped like the spatial axes alone."""
    t = torch.tensor(rows, dtype=like.dtype, device=like.device)
    return t.expand(1, channels, *t.shape).clone()


def _taps2(t: torch.Tensor, ah, aw) -> dict:
    """Each tap's plane over the last two axes of ``t`` (N, C', reach_h, reach_w): a contiguous Slice and a
    plain AveragePool of kernel 1 with the windows' stride (a copy; a MaxPool of kernel 1 would turn -inf into
    -FLT_MAX in OpenVINO and -2^24 in MNN: their MaxPool starts from a finite lowest value, measured)."""
    planes = {}
    for jh in range(ah.kernel):
        for jw in range(aw.kernel):
            h0, w0 = jh * ah.dilation, jw * aw.dilation
            p = t[:, :, h0:h0 + ah.span, w0:w0 + aw.span]
            # also at stride 1: pnnx infers the batch axis from a pooling op; a graph of Pad, Slice and
            # Max alone became 4-D blobs in ncnn, sliced on the wrong axes (measured, pnnx 20261020)
            planes[(jh, jw)] = pool(p, "avg", (1, 1), (ah.stride, aw.stride))
    return planes


def _tap_planes(t: torch.Tensor, plan: ArgmaxPlan, channels: int) -> list[torch.Tensor]:
    """The planes of ``t`` (N, C, *reach) in torch's scan order, each 4-D: (N, C, 1, Lo) in 1-D, (N, C, Ho,
    Wo) in 2-D, (N, C, Do, Ho*Wo) in 3-D (ncnn holds at most 4 axes)."""
    axes = plan.axes
    if len(axes) == 1:
        flat = TapAxis(1, 1, 1, 0, 1, 1)
        planes = _taps2(t.reshape(-1, channels, 1, axes[0].reach), flat, axes[0])
        return [planes[(0, j)] for j in range(axes[0].kernel)]
    if len(axes) == 2:
        planes = _taps2(t, *axes)
        return [planes[tap] for tap in plan.taps()]
    ad, ah, aw = axes
    hw = _taps2(t.reshape(-1, channels * ad.reach, ah.reach, aw.reach), ah, aw)
    out = {}
    for (jh, jw), p in hw.items():
        p = p.reshape(-1, channels, ad.reach, ah.out * aw.out)
        for jd in range(ad.kernel):
            q = p[:, :, jd * ad.dilation:jd * ad.dilation + ad.span]
            out[(jd, jh, jw)] = pool(q, "avg", (1, 1), (ad.stride, 1)) if ad.stride > 1 else q
    return [out[tap] for tap in plan.taps()]


def _first_max(a, off_a, b, off_b):
    """The first maximum of two runs of planes, ``a`` before ``b``: their best (scaled) values and the tap
    offset where it lies (``b``'s only where strictly greater)."""
    beats = torch.clamp((b - a) * 2.0 ** 100 * 2.0 ** 100, 0, 1)  # 1 where strictly greater
    return torch.maximum(a, b), off_a + beats * (off_b - off_a)


def apply_argmax(x: torch.Tensor, plan: ArgmaxPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_pool{d}d(..., return_indices=True)`` for float32 ``x`` (N, C, *spatial): the values (the running
    Max of the tap planes) and the first maximum's flat index as float32 (see ``plan.indices``)."""
    channels = int(x.shape[1])
    crop = tuple(a.length + min(a.after, 0) for a in plan.axes)
    if crop != plan.in_size:
        x = x[(Ellipsis, *(slice(0, c) for c in crop))]
    before = tuple(a.padding for a in plan.axes)
    after = tuple(max(a.after, 0) for a in plan.axes)
    scaled = torch.clamp(x * _QUARTER, -_CLIP, _CLIP)  # order kept, +-inf included, differences finite
    raw = x
    if plan.padded:
        pads = []
        for b, a in zip(reversed(before), reversed(after)):
            pads += [b, a]
        # padding as in pad_lowest: a zero Pad plus a constant per channel (a (H, W) mask became 4-D in ncnn and
        # the Slices after it cut the wrong axes; a 3-D Pad with a value made pnnx run out of memory: measured)
        sizes = tuple(a.reach for a in plan.axes)
        real = [[0 <= i - a.padding < a.length for i in range(a.reach)] for a in plan.axes]
        inside = [all(r[i] for r, i in zip(real, ii)) for ii in product(*(range(n) for n in sizes))]
        raw = F.pad(x, pads) + _constant(_rows([-0.0 if v else float("-inf") for v in inside], sizes), x, channels)
        # the scaled padding lies below every real cell (-2^127 < -2^126): padding never wins
        scaled = F.pad(scaled, pads) + _constant(_rows([0.0 if v else _PAD_SCALED for v in inside], sizes), x, channels)
    values_planes = _tap_planes(raw, plan, channels)
    scaled_planes = _tap_planes(scaled, plan, channels) if plan.padded else [
        torch.clamp(p * _QUARTER, -_CLIP, _CLIP) for p in values_planes]
    values = values_planes[0]
    for v in values_planes[1:]:
        values = torch.maximum(values, v)
    # the first maximum of the planes, merged pairwise in scan order (a tournament, log2(K) deep: pnnx
    # could not convert a scan of 27 planes in one chain, measured)
    entries = [(p, plan.offset(tap)) for p, tap in zip(scaled_planes, plan.taps())]
    while len(entries) > 1:
        merged = [_first_max(*entries[i], *entries[i + 1]) for i in range(0, len(entries) - 1, 2)]
        entries = merged + entries[len(entries) - len(entries) % 2:]
    best, offset = entries[0]
    if not isinstance(offset, torch.Tensor):
        offset = best * 0.0 + offset  # best is finite
    shape = values.shape[1:]
    index = offset + _constant(plan.origins(), x, channels).reshape(1, *shape)
    out = (-1, channels, *plan.out_size)
    return values.reshape(out), index.reshape(out)


def _upsample(t: torch.Tensor, scale: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling by integer factors of the last two axes (a Resize that copies cells)."""
    return t if scale == (1, 1) else F.interpolate(t, scale_factor=scale, mode="nearest")


def _candidates2(t: torch.Tensor, ah: UnpoolAxis, aw: UnpoolAxis, fill: float) -> dict:
    """Each candidate window per output cell over the last two axes of ``t`` (N, C', in_h, in_w)."""
    t = F.pad(t, [aw.before, aw.after, ah.before, ah.after], value=fill)
    t = _upsample(t, (ah.stride, aw.stride))
    return {(mh, mw): t[:, :, ah.start(mh):ah.start(mh) + ah.out, aw.start(mw):aw.start(mw) + aw.out]
            for mh in range(ah.candidates) for mw in range(aw.candidates)}


def _candidate_planes(t: torch.Tensor, plan: UnpoolPlan, channels: int, fill: float) -> list[torch.Tensor]:
    """``t`` (N, C, *in) per candidate window of each output cell, in ``plan.candidates()`` order, 4-D as in
    ``_tap_planes``."""
    axes = plan.axes
    if len(axes) == 1:
        flat = UnpoolAxis(1, 1, 1, 0, 1)
        planes = _candidates2(t.reshape(-1, channels, 1, axes[0].length), flat, axes[0], fill)
        return [planes[(0, m)] for m in range(axes[0].candidates)]
    if len(axes) == 2:
        planes = _candidates2(t, *axes, fill)
        return [planes[c] for c in plan.candidates()]
    ad, ah, aw = axes
    hw = _candidates2(t.reshape(-1, channels * ad.length, ah.length, aw.length), ah, aw, fill)
    flat = UnpoolAxis(ah.out * aw.out, 1, 1, 0, ah.out * aw.out)
    out = {}
    for (mh, mw), p in hw.items():
        p = p.reshape(-1, channels, ad.length, ah.out * aw.out)
        planes = _candidates2(p, ad, flat, fill)
        for md in range(ad.candidates):
            out[(md, mh, mw)] = planes[(md, 0)]
    return [out[c] for c in plan.candidates()]


def apply_unpool(y: torch.Tensor, index: torch.Tensor, plan: UnpoolPlan) -> torch.Tensor:
    """``max_unpool{d}d`` of float32 ``y`` (N, C, *in) at float32 flat ``index`` (see ``plan.indices``)."""
    channels = int(y.shape[1])
    top = torch.finfo(y.dtype).max
    values = _candidate_planes(y, plan, channels, 0.0)
    indices = _candidate_planes(index, plan, channels, -1.0)  # sentinel windows hold no cell
    positions = _constant(plan.positions(), y, channels).reshape(1, *values[0].shape[1:])
    out, taken = None, None
    for v, i in zip(values, indices):
        mask = torch.relu(1 - torch.abs(i - positions))  # 1 where this window's index is the cell
        if taken is not None:
            mask = mask * (1 - taken)  # a later window (an earlier candidate) wrote it already
        gate = (mask * top) * (mask * 4.0)  # inf where selected, 0 elsewhere (never mask * inf: NaN)
        part = torch.maximum(torch.minimum(v, gate), 0.0 - gate)
        out = part if out is None else out + part
        if len(values) > 1:
            taken = mask if taken is None else taken + mask
    return out.reshape(-1, channels, *plan.out_size)


# -- a trace holds these forms only at static sizes ----------------------------------------------------------

@torch.library.custom_op("poolport::static_sizes", mutates_args=())
def static_sizes_op(x: torch.Tensor, d: int, where: str) -> torch.Tensor:
    """``x`` unchanged: marks, in a TorchScript trace, that what follows is written for the traced sizes."""
    return x.clone()


@static_sizes_op.register_fake
def _(x: torch.Tensor, d: int, where: str) -> torch.Tensor:
    return torch.empty_like(x)


def _static_sizes_symbolic(g, x, d, where):
    """Symbolic of ``poolport::static_sizes``: ``x`` itself where its last ``d`` sizes are static; a
    PoolportError where the TorchScript exporter made one dynamic (``dynamic_axes``): the form traced
    after it would be wrong, or refused, at every other size."""
    from torch.onnx import symbolic_helper as sh

    d, where = sh._parse_arg(d, "i"), sh._parse_arg(where, "s")
    sizes = sh._get_tensor_sizes(x)
    if sizes is None or not all(isinstance(n, int) for n in sizes[-d:]):
        raise PoolportError(
            f"{where}: the spatial size is dynamic in this export; poolport's portable form of this pooling "
            f"is written for one input size (the traced one). Export with static spatial sizes (no dynamic H/W).")
    return x


_registered: list = []


def traced_static_sizes(x: torch.Tensor, d: int, where: str) -> torch.Tensor:
    """Record ``poolport::static_sizes`` in a TorchScript trace (its ONNX symbolic registered): the
    TorchScript exporter then refuses a dynamic spatial size loudly, and other tools that trace (OpenVINO,
    pnnx) do not know the op and refuse the model, where a form traced at one size would be silently
    wrong in their dynamic graphs."""
    if not _registered:
        torch.onnx.register_custom_op_symbolic("poolport::static_sizes", _static_sizes_symbolic, 9)
        _registered.append(True)
    return torch.ops.poolport.static_sizes(x, d, where)


# -- fractional max pooling with fixed samples (plan.fractional) ---------------------------------------------

class SharedOps(TorchOps):
    """``execute``'s operations as ``TorchOps`` writes them, each distinct one once (the same slice, pool or
    concat of the same tensor): the fractional groups share the passes and runs they have in common, as
    ``plan.fractional``'s ``steps`` counts them. Every result is kept, so ids stay unique."""

    def __init__(self) -> None:
        self.memo: dict = {}

    def _once(self, key, make):
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def slice(self, x, dim, start, stop):
        return self._once(("Slice", id(x), dim, start, stop), lambda: TorchOps.slice(x, dim, start, stop))

    def pool(self, x, op, kernel, stride):
        return self._once(("Pool", id(x), op, kernel, stride), lambda: TorchOps.pool(x, op, kernel, stride))

    def concat(self, parts, dim):
        return self._once(("Concat", tuple(map(id, parts)), dim), lambda: TorchOps.concat(parts, dim))


def apply_fractional(x: torch.Tensor, plan: FractionalPlan) -> torch.Tensor:
    """``fractional_max_pool{d}d`` with fixed samples by ``plan`` on ``x`` (N, C, *spatial): the planes
    (batch folded into the channels by a Reshape where N > 1) pooled per window group over every plane, one
    pass per axis walked by ``execute`` (Slice + MaxPool + Concat), what groups share written once
    (``SharedOps``); the output the Concat of each piece's planes sliced from its group's result."""
    if plan.folded:
        x = x.reshape(1, plan.planes, *plan.in_size)
    rank, ops, outs = len(plan.in_size) + 2, SharedOps(), []
    for group in plan.groups:
        y = x
        for one in group.passes:
            y = y if one.kind == "identity" else execute(one, y, ops, rank)
        outs.append(y)
    if len(plan.pieces) > 1:
        y = torch.cat([outs[p.group][:, p.first:p.first + p.count] for p in plan.pieces], 1)
    else:
        y = outs[0] if outs[0] is not x else x.clone()
    return y.reshape(plan.batch, plan.channels, *plan.out_size) if plan.folded else y
