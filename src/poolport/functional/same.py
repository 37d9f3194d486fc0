"""TensorFlow/Keras 'SAME' and 'VALID' pooling, exact, for channels-first tensors, from portable ops.

``avg_pool2d_same(x, 3, 2)`` equals ``tf.nn.avg_pool2d(x_nhwc, 3, 2, 'SAME')`` (transposed): border
windows average only the real cells. Which native op does it is decided by ``plan.padding.plan_same``:
plain or symmetric padding, ``ceil_mode`` where it lands on TF's windows, or explicit Pad + pool (+ a
constant correction for average). Also Keras-style global pooling with a ``keepdims`` switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backend.torch_ops import POOL
from ..errors import PoolportError
from ..plan.padding import SamePlan, plan_same
from .shapes import static_size

def _tuple(v, d: int, what: str, where: str) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * d
    if isinstance(v, (tuple, list)) and len(v) == d and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise PoolportError(f"{where}: {what} must be an int or {d} ints, got {v!r}.")


def _check(x, op: str, d: int, where: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise PoolportError(f"{where}: expected a torch.Tensor, got {type(x).__name__}.")
    if x.dim() not in (d + 1, d + 2):
        raise PoolportError(
            f"{where}: expected a {d + 1}D or {d + 2}D channels-first input, got shape {tuple(x.shape)}."
        )
    if op == "avg" and not x.dtype.is_floating_point:
        raise PoolportError(f"{where}: average pooling needs a floating dtype, got {x.dtype}; cast with x.float().")


def correction_tensor(plan: SamePlan, like: torch.Tensor) -> torch.Tensor:
    """Outer product of the per-axis k / real-cells factors, shaped like the pooled output."""
    factor = None
    for i, axis in enumerate(plan.axes):
        shape = [1] * len(plan.axes)
        shape[i] = axis.out
        f = torch.tensor(axis.correction(), dtype=torch.float64).reshape(shape)
        factor = f if factor is None else factor * f
    return factor.to(dtype=like.dtype, device=like.device)


def apply_same_plan(x: torch.Tensor, plan: SamePlan) -> torch.Tensor:
    """Run ``plan`` on ``x`` of shape (N, C, *spatial)."""
    d = len(plan.axes)
    pool = POOL[plan.op, d]
    k, s = plan.kernel, plan.stride
    before = tuple(a.before for a in plan.axes)
    avg = plan.op == "avg"
    if plan.kind == "plain":
        return pool(x, k, s)
    if plan.kind in ("symmetric", "ceil"):
        ceil = plan.kind == "ceil"
        pad = before if (avg or not ceil) else 0
        if avg:
            return pool(x, k, s, pad, ceil_mode=ceil, count_include_pad=False)
        return pool(x, k, s, pad, ceil_mode=ceil)
    pads = []
    for a in reversed(plan.axes):  # F.pad wants the last axis first
        pads += [a.before, a.after]
    if avg:
        y = pool(F.pad(x, pads), k, s)
        return y * correction_tensor(plan, y)
    # max: replicate the edge; every window holds a real cell, so the maximum does not change
    return pool(F.pad(x, pads, mode="replicate"), k, s)


def pool_same(x: torch.Tensor, kernel_size, stride=None, padding: str = "SAME", *, op: str, d: int) -> torch.Tensor:
    where = f"{op}_pool{d}d_same"
    _check(x, op, d, where)
    k = _tuple(kernel_size, d, "kernel_size", where)
    s = k if stride is None else _tuple(stride, d, "stride", where)
    in_size = static_size(x, d)
    try:
        plan = plan_same(op, in_size, k, s, padding)
    except PoolportError as e:
        raise PoolportError(f"{where} on input {tuple(x.shape)}: {e}") from None
    if x.dim() == d + 1:
        return apply_same_plan(x.unsqueeze(0), plan).squeeze(0)
    return apply_same_plan(x, plan)


def avg_pool1d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="avg", d=1)


def avg_pool2d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="avg", d=2)


def avg_pool3d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="avg", d=3)


def max_pool1d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="max", d=1)


def max_pool2d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="max", d=2)


def max_pool3d_same(x, kernel_size, stride=None, padding="SAME"):
    return pool_same(x, kernel_size, stride, padding, op="max", d=3)


def global_pool(x: torch.Tensor, op: str, keepdims: bool = False, data_format: str = "channels_first") -> torch.Tensor:
    """Keras ``GlobalAveragePooling*D`` / ``GlobalMaxPooling*D``: mean (max) over every spatial axis;
    (N, C) unless ``keepdims``. Exports to one whole-plane AveragePool / MaxPool."""
    where = f"global_{op}_pool"
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise PoolportError(f"{where}: expected a tensor with batch, channel and spatial axes, got "
                            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    if data_format not in ("channels_first", "channels_last"):
        raise PoolportError(f"{where}: data_format must be 'channels_first' or 'channels_last', got {data_format!r}.")
    if op == "avg" and not x.dtype.is_floating_point:
        raise PoolportError(f"{where}: average pooling needs a floating dtype, got {x.dtype}.")
    # a pooling op over the whole plane, channels first (ncnn mishandles ReduceMean/ReduceMax)
    cf = x if data_format == "channels_first" else x.movedim(-1, 1)
    plane = static_size(cf, cf.dim() - 2)
    y = POOL[op, len(plane)](cf, plane)
    if not keepdims:
        return y.flatten(1)
    return y if data_format == "channels_first" else y.movedim(1, -1)


def global_avg_pool(x, keepdims: bool = False, data_format: str = "channels_first"):
    return global_pool(x, "avg", keepdims, data_format)


def global_max_pool(x, keepdims: bool = False, data_format: str = "channels_first"):
    return global_pool(x, "max", keepdims, data_format)
