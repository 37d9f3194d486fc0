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
    """Adaptive ``op`` pooling of ``x`` along ``dim`` to ``o`` cells, for any size of that axis. No
    transposes on the last two axes: average is ``x @ W^T`` (last) or ``W @ x`` (second to last); max
    broadcasts ``x`` against the mask in place."""
    mask, count = window_mask(x.shape[dim], o, x.device)  # (o, n)
    rank = x.dim()
    if op == "avg":
        # float32 weights and accumulation for half types, as torch's native op accumulates
        work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        weights = mask.to(work) / count.to(work).unsqueeze(1)  # (o, n), rows sum to 1
        src = x.to(work)
        # the weights take x's rank, so that matmul broadcasts over the static leading axes instead of
        # folding them together with a symbolic one (which makes torch.export guard on that size)
        lead = (1,) * (rank - 2)
        if dim == rank - 1:
            y = torch.matmul(src, weights.t().reshape(*lead, *weights.t().shape))
        elif dim == rank - 2:
            y = torch.matmul(weights.reshape(*lead, *weights.shape), src)
        else:  # a depth axis: bring it last and back
            y = torch.matmul(src.movedim(dim, -1), weights.t()).movedim(-1, dim)
        return y.to(x.dtype)
    trailing = rank - 1 - dim
    lowest = torch.tensor(float("-inf"), dtype=x.dtype, device=x.device)
    spread = torch.where(mask[(...,) + (None,) * trailing], x.unsqueeze(dim), lowest)  # (.., o, n, ..)
    return spread.amax(dim + 1)


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
