"""Apply an adaptive ``PoolPlan`` to a tensor with portable torch ops only: ``avg_pool``/``max_pool``
without padding, ``narrow`` (ONNX Slice), ``cat`` (Concat) and ``mean``/``amax`` (ReduceMean/ReduceMax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..plan import PoolPlan

_POOL = {
    ("avg", 1): F.avg_pool1d,
    ("avg", 2): F.avg_pool2d,
    ("avg", 3): F.avg_pool3d,
    ("max", 1): F.max_pool1d,
    ("max", 2): F.max_pool2d,
    ("max", 3): F.max_pool3d,
}


def _pool(x: torch.Tensor, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    fn = _POOL[op, len(kernel)]
    if op == "avg" and len(kernel) == 3 and x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
        # ATen has no half avg_pool3d kernel on CPU; accumulate in float32 as the native op does
        return fn(x.float(), kernel, stride).to(x.dtype)
    return fn(x, kernel, stride)


def apply_plan(x: torch.Tensor, plan: PoolPlan) -> torch.Tensor:
    """Run ``plan`` on ``x`` of shape (N, C, *plan.in_size); returns (N, C, *plan.out_size)."""
    first = x.dim() - plan.ndim  # tensor dim of spatial axis 0
    if plan.kind == "identity":
        return x.clone()
    if plan.kind == "global":
        dims = tuple(range(first, x.dim()))
        return x.mean(dims, keepdim=True) if plan.op == "avg" else x.amax(dims, keepdim=True)
    dtype = x.dtype
    if plan.op == "avg" and len(plan.passes) > 1 and dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # round once at the end, as the native op does, not after every pass
    for p in plan.passes:
        if p.runs_axis is None:
            kernel, stride = p.pool_params(plan.axes, None)
            x = _pool(x, plan.op, kernel, stride)
            continue
        dim = first + p.runs_axis
        n = plan.axes[p.runs_axis].n
        pieces = []
        for run in p.runs:
            part = x if run.start == 0 and run.stop == n else x.narrow(dim, run.start, run.stop - run.start)
            if p.pools(plan.axes, run):
                kernel, stride = p.pool_params(plan.axes, run)
                part = _pool(part, plan.op, kernel, stride)
            pieces.extend([part] * run.copies)
        x = torch.cat(pieces, dim) if len(pieces) > 1 else pieces[0]
    return x if x.dtype == dtype else x.to(dtype)
