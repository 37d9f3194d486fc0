"""Plans applied with portable torch ops only.

* an adaptive ``PoolPlan``: ``avg_pool``/``max_pool`` without padding (AveragePool/MaxPool), basic
  slicing (ONNX Slice) and ``cat`` (Concat), walked by ``execute``;
* a TF-style ``SamePlan``: one pooling op with symmetric padding or ``ceil_mode`` where that lands on
  TF's windows, else its ``ExplicitPool`` form: ``F.pad`` + pool + a constant divisor correction, walked by
  ``execute_explicit``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..plan import PoolPlan
from ..plan.same import SamePlan
from .execute import execute, execute_explicit

# (op, spatial dims) -> torch's pooling function, and torch's native adaptive pooling
POOL = {(op, d): getattr(F, f"{op}_pool{d}d") for op in ("avg", "max") for d in (1, 2, 3)}
NATIVE = {(op, d): getattr(F, f"adaptive_{op}_pool{d}d") for op in ("avg", "max") for d in (1, 2, 3)}


def pool(x: torch.Tensor, op: str, kernel, stride, **kwargs) -> torch.Tensor:
    """torch's ``op`` pooling over ``len(kernel)`` axes. ATen has no half-precision avg_pool3d kernel on CPU:
    there it accumulates in float32, as the native adaptive op does."""
    fn = POOL[op, len(kernel)]
    if op == "avg" and len(kernel) == 3 and x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
        return fn(x.float(), kernel, stride, **kwargs).to(x.dtype)
    return fn(x, kernel, stride, **kwargs)


class TorchOps:
    """``execute``'s and ``execute_explicit``'s operations as torch calls that export to portable ONNX
    operators."""

    @staticmethod
    def slice(x, dim, start, stop):
        """Basic indexing, not ``narrow()``: both export to ONNX Slice, but pnnx converts TorchScript's
        aten::slice to ncnn and leaves aten::narrow unconverted (measured with pnnx 20261020)."""
        return x[(slice(None),) * dim + (slice(start, stop),)]

    @staticmethod
    def pool(x, op, kernel, stride):
        """``avg_pool``/``max_pool`` without padding."""
        return pool(x, op, kernel, stride)

    @staticmethod
    def concat(parts, dim):
        """``torch.cat``."""
        return torch.cat(parts, dim)

    @staticmethod
    def copy(x):
        """``x.clone()``, so that an identity plan never aliases its input."""
        return x.clone()

    @staticmethod
    def pad(x, before, after, mode):
        """``F.pad`` of the spatial axes: zeros (``mode`` "constant") or the edge values ("edge")."""
        pads = []
        for b, a in zip(reversed(before), reversed(after)):  # F.pad wants the last axis first
            pads += [b, a]
        return F.pad(x, pads, mode="replicate") if mode == "edge" else F.pad(x, pads)

    @staticmethod
    def scale(x, factors):
        """``x`` times the outer product of the per-axis ``factors`` (float64, rounded once to x's dtype),
        shaped like x's spatial axes (it broadcasts over N and C)."""
        factor = None
        for i, axis in enumerate(factors):
            shape = [1] * len(factors)
            shape[i] = len(axis)
            f = torch.tensor(axis, dtype=torch.float64).reshape(shape)
            factor = f if factor is None else factor * f
        return x * factor.to(dtype=x.dtype, device=x.device)


class TorchOps1dAs2d(TorchOps):
    """``execute``'s operations for a 1-D plan run on (N, C, 1, L): 2-D pooling with a unit first axis."""

    @staticmethod
    def pool(x, op, kernel, stride):
        """``avg_pool2d``/``max_pool2d`` with kernel (1, k), no padding."""
        return pool(x, op, (1, *kernel), (1, *stride))


def apply_plan(x: torch.Tensor, plan: PoolPlan) -> torch.Tensor:
    """Run ``plan`` on ``x`` of shape (N, C, *plan.in_size); returns (N, C, *plan.out_size).

    In the edge style a 1-D plan runs as 2-D pooling between one reshape in and one out: torch decomposes
    every 1-D pooling op into unsqueeze + 2-D pool + squeeze, and ExecuTorch's XNNPACK partitioner leaves
    those copies (and 1-D max pooling's indices variant) outside the delegate, one set per run (measured,
    ExecuTorch 1.5.1). Not inside torch.onnx.export: both exporters write 1-D AveragePool/MaxPool nodes,
    which every runtime measured computes, without the two Reshapes."""
    dtype = x.dtype
    if plan.op == "avg" and len(plan.passes) > 1 and dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # round once at the end, as the native op does, not after every pass
    if (plan.style == "edge" and plan.ndim == 1 and x.dim() == 3 and plan.kind != "identity"
            and not torch.onnx.is_in_onnx_export()):
        n, c, length = x.shape
        y = execute(plan, x.reshape(n, c, 1, length), TorchOps1dAs2d, 4)
        y = y.reshape(n, c, y.shape[-1])
    else:
        y = execute(plan, x, TorchOps, x.dim())
    return y if y.dtype == dtype else y.to(dtype)


def apply_same_plan(x: torch.Tensor, plan: SamePlan) -> torch.Tensor:
    """Run a TF-style ``plan`` on ``x`` of shape (N, C, *spatial)."""
    if plan.kind == "explicit":
        return execute_explicit(plan.explicit(), x, TorchOps)
    padding, ceil = plan.pool_args()
    extra = {"count_include_pad": False} if plan.op == "avg" else {}
    return pool(x, plan.op, plan.kernel, plan.stride, padding=padding, ceil_mode=ceil, **extra)
