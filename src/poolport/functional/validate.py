"""The one input check of every pooling entry point (adaptive, TF-'SAME', global): raise a PoolportError
naming the function and the shape, before torch would fail with a deep traceback or accept wrongly."""

from __future__ import annotations

import torch

from ..errors import PoolportError


def check_pool_input(x, where: str, *, d: int | None, needs_float: bool, what: str = "pooling") -> None:
    """Check ``x`` for pooling over ``d`` spatial axes (``None``: any number, as global pooling takes).

    ``needs_float``: the op is only defined for floating dtypes (average pooling; poolport's adaptive
    max pooling too). ``what`` names the op in the dtype message.
    """
    if not isinstance(x, torch.Tensor):
        raise PoolportError(f"{where}: expected a torch.Tensor, got {type(x).__name__}.")
    if d is None:
        if x.dim() < 3:
            raise PoolportError(
                f"{where}: expected a tensor with batch, channel and spatial axes, got shape {tuple(x.shape)}."
            )
    elif x.dim() not in (d + 1, d + 2):
        raise PoolportError(
            f"{where}: expected a {d + 1}D (C, *spatial) or {d + 2}D (N, C, *spatial) channels-first input, "
            f"got {x.dim()}D with shape {tuple(x.shape)}."
        )
    if x.dtype == torch.bool:
        raise PoolportError(f"{where}: a bool input cannot be pooled (torch has no bool pooling kernel); cast it, "
                            f"e.g. x.to(torch.uint8) for max pooling or x.float().")
    if needs_float and not x.dtype.is_floating_point:
        raise PoolportError(
            f"{where}: input dtype {x.dtype} is not supported: {what} needs a floating dtype (float32, "
            f"float16, bfloat16, float64); cast the input, e.g. x.float()."
        )
    first_non_batch = 1 if d is None or x.dim() == d + 2 else 0
    if torch.jit.is_tracing():
        return  # sizes are traced values here; the trace's own example input has run this check eagerly
    if any(s == 0 for s in x.shape[first_non_batch:]):
        raise PoolportError(
            f"{where}: input of shape {tuple(x.shape)} has an empty non-batch dimension; "
            f"only the batch dimension may be 0."
        )
