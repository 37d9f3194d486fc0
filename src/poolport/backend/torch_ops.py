"""Apply an adaptive ``PoolPlan`` to a tensor with portable torch ops only: ``avg_pool``/``max_pool``
without padding (AveragePool/MaxPool), basic slicing (ONNX Slice) and ``cat`` (Concat).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..plan import PoolPlan
from .execute import execute

POOL = {  # (op, spatial dims) -> torch's pooling function
    ("avg", 1): F.avg_pool1d,
    ("avg", 2): F.avg_pool2d,
    ("avg", 3): F.avg_pool3d,
    ("max", 1): F.max_pool1d,
    ("max", 2): F.max_pool2d,
    ("max", 3): F.max_pool3d,
}


class TorchOps:
    @staticmethod
    def slice(x, dim, start, stop):
        # basic indexing, not narrow(): both export to ONNX Slice, but pnnx converts TorchScript's
        # aten::slice to ncnn and leaves aten::narrow unconverted (measured with pnnx 20261020)
        return x[(slice(None),) * dim + (slice(start, stop),)]

    @staticmethod
    def pool(x, op, kernel, stride):
        fn = POOL[op, len(kernel)]
        if op == "avg" and len(kernel) == 3 and x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
            # ATen has no half avg_pool3d kernel on CPU; accumulate in float32 as the native op does
            return fn(x.float(), kernel, stride).to(x.dtype)
        return fn(x, kernel, stride)

    @staticmethod
    def concat(parts, dim):
        return torch.cat(parts, dim)

    @staticmethod
    def copy(x):
        return x.clone()


def apply_plan(x: torch.Tensor, plan: PoolPlan) -> torch.Tensor:
    """Run ``plan`` on ``x`` of shape (N, C, *plan.in_size); returns (N, C, *plan.out_size)."""
    dtype = x.dtype
    if plan.op == "avg" and len(plan.passes) > 1 and dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # round once at the end, as the native op does, not after every pass
    y = execute(plan, x, TorchOps, x.dim())
    return y if y.dtype == dtype else y.to(dtype)
