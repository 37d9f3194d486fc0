"""torch's plain pooling ops that some runtime cannot take, in portable torch ops: average pooling with
``divisor_override`` and power-average pooling (both on the explicit form, ``execute_explicit``), and
dilated max pooling on sub-lattices (``plan.dilated``), max pooling's indices and unpooling without
ScatterND (``plan.indices``). Every op here exports to ONNX operators that ONNX Runtime, OpenVINO, ncnn,
MNN and LiteRT compute: Pad, AveragePool/MaxPool without padding or dilation, Mul, Pow/Sqrt, Abs/Neg,
Reshape and contiguous Slice; the indices add Sub/Add, Clip, Max/Min, Relu and a nearest Resize (exact
in ONNX Runtime, OpenVINO, ncnn and MNN; not in LiteRT, measured)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..errors import PoolportError
from ..plan.dilated import DilatedPlan
from ..plan.divisor import DivisorPlan
from ..plan.explicit import ExplicitPool
from ..plan.fractional import FractionalPlan
from ..plan.indices import ArgmaxPlan, UnpoolPlan
from ..plan.lppool import LpPlan
from .execute import execute, execute_argmax, execute_dilated, execute_explicit, execute_unpool
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


# -- argmax indices and unpooling without ScatterND (plan.indices, walked by execute_argmax/execute_unpool) ----------

def _constant(rows, like: torch.Tensor, channels: int) -> torch.Tensor:
    """A constant per channel, (1, C, ...): onnx2tf misplaces constants shaped like the spatial axes alone."""
    t = torch.tensor(rows, dtype=like.dtype, device=like.device)
    return t.expand(1, channels, *t.shape).clone()


class TorchIndexOps:
    """``execute_argmax``'s and ``execute_unpool``'s operations as torch calls (``like``: a tensor whose dtype
    and device the constants take)."""

    def __init__(self, like: torch.Tensor):
        self.like = like

    @staticmethod
    def window(x, first, starts, stops):
        return x[(slice(None),) * first + tuple(slice(a, b) for a, b in zip(starts, stops))]

    @staticmethod
    def pad(x, before, after, value):
        pads = []
        for b, a in zip(reversed(before), reversed(after)):  # F.pad wants the last axis first
            pads += [b, a]
        return F.pad(x, pads, value=value)

    @staticmethod
    def pool(x, op, kernel, stride):
        return pool(x, op, kernel, stride)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    def constant(self, rows, channels, shape=None):
        t = _constant(rows, self.like, channels)
        return t if shape is None else t.reshape(shape)

    add = staticmethod(lambda a, b: a + b)
    sub = staticmethod(lambda a, b: a - b)
    mul = staticmethod(lambda a, b: a * b)
    clip = staticmethod(torch.clamp)
    maximum = staticmethod(torch.maximum)
    minimum = staticmethod(torch.minimum)
    relu = staticmethod(torch.relu)
    abs = staticmethod(torch.abs)

    @staticmethod
    def upsample(x, scale):
        return F.interpolate(x, scale_factor=scale, mode="nearest")


def apply_argmax(x: torch.Tensor, plan: ArgmaxPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_pool{d}d(..., return_indices=True)`` for float32 ``x`` (N, C, *spatial): the values (the running
    Max of the tap planes) and the first maximum's flat index as float32 (``execute_argmax``, ``plan.indices``)."""
    return execute_argmax(plan, x, TorchIndexOps(x), int(x.shape[1]))


def apply_unpool(y: torch.Tensor, index: torch.Tensor, plan: UnpoolPlan) -> torch.Tensor:
    """``max_unpool{d}d`` of float32 ``y`` (N, C, *in) at float32 flat ``index`` (``execute_unpool``)."""
    return execute_unpool(plan, y, index, TorchIndexOps(y), int(y.shape[1]))


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
