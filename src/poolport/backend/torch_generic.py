"""A ``GenericPlan`` applied with torch ops whose sizes may be symbolic: nothing here reads a size as a
Python int, so ``torch.export`` and the dynamo exporter keep H/W symbolic (no guard, no specialisation)
and the exported graph is exact at every input size. See ``plan.generic`` for the formulation."""

from __future__ import annotations

import torch

from ..plan.generic import GenericPlan, window_bounds


def window_mask(n, o: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask, count)``: ``mask[i, j]`` is True where input ``j`` lies in PyTorch's window ``i`` of ``o``
    over ``n`` (``n`` may be symbolic); ``count[i]`` is that window's length."""
    j = torch.arange(n, device=device)
    i = torch.arange(o, device=device)
    start, end = window_bounds(i, n, o)
    mask = (j.unsqueeze(0) >= start.unsqueeze(1)) & (j.unsqueeze(0) < end.unsqueeze(1))
    return mask, end - start


def pool_axis(x: torch.Tensor, dim: int, o: int, op: str) -> torch.Tensor:
    """Adaptive ``op`` pooling of ``x`` along ``dim`` to ``o`` cells, for any size of that axis: ``x``
    broadcast against the window mask (``(.., o, n, ..)``), cells outside a window replaced by 0 (average:
    a sum per window, divided by its length) or -inf (max), so that an inf or NaN reaches only the windows
    that hold it, as in PyTorch. Half types accumulate in float32, as torch's native op does."""
    mask, count = window_mask(x.shape[dim], o, x.device)  # (o, n)
    trailing = (None,) * (x.dim() - 1 - dim)
    inside = mask[(...,) + trailing]
    if op == "avg":
        work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        zero = torch.zeros((), dtype=work, device=x.device)
        total = torch.where(inside, x.to(work).unsqueeze(dim), zero).sum(dim + 1)
        return (total / count.to(work)[(...,) + trailing]).to(x.dtype)
    lowest = torch.tensor(float("-inf"), dtype=x.dtype, device=x.device)
    return torch.where(inside, x.unsqueeze(dim), lowest).amax(dim + 1)


def apply_generic(x: torch.Tensor, plan: GenericPlan) -> torch.Tensor:
    """Run ``plan`` on ``x`` of shape (N, C, *spatial), whatever the spatial sizes."""
    d = len(plan.out_size)
    first = x.dim() - d
    if plan.kind == "identity":
        return x.clone()
    reduce = torch.mean if plan.op == "avg" else torch.amax
    if plan.kind == "global":
        return reduce(x, dim=tuple(range(first, x.dim())), keepdim=True)
    for k in plan.order():
        o = plan.out_size[k]
        if o is None:
            continue
        x = reduce(x, dim=first + k, keepdim=True) if o == 1 else pool_axis(x, first + k, o, plan.op)
    return x
