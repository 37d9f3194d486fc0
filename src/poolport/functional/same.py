"""TensorFlow/Keras 'SAME' and 'VALID' pooling, exact, for channels-first tensors, from portable ops.

``avg_pool2d_same(x, 3, 2)`` equals ``tf.nn.avg_pool2d(x_nhwc, 3, 2, 'SAME')`` (transposed): border
windows average only the real cells. Which native op does it is decided by ``plan.same.plan_same``:
plain or symmetric padding, ``ceil_mode`` where it lands on TF's windows, or explicit Pad + pool (+ a
constant correction for average). Also Keras-style global pooling with a ``keepdims`` switch.
"""

from __future__ import annotations

import torch

from ..backend.torch_ops import apply_same_plan, pool
from ..backend.traced_op import traced_pool_same
from ..errors import PoolportError
from ..plan.same import plan_same
from .shapes import is_symbolic, static_size
from .validate import check_pool_input


def _tuple(v, d: int, what: str, where: str) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * d
    if isinstance(v, (tuple, list)) and len(v) == d and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise PoolportError(f"{where}: {what} must be an int or {d} ints, got {v!r}.")


Size = int | tuple[int, ...]


def pool_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME", *,
              op: str, d: int) -> torch.Tensor:
    """TF-style ``op`` pooling over the last ``d`` axes: the implementation behind ``*_pool*d_same``."""
    where = f"{op}_pool{d}d_same"
    check_pool_input(x, where, d=d, needs_float=op == "avg", what="average pooling")
    k = _tuple(kernel_size, d, "kernel_size", where)
    s = k if stride is None else _tuple(stride, d, "stride", where)
    if torch.jit.is_tracing():  # the exporter's symbolic decides once it knows which sizes are dynamic
        if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
            return traced_pool_same(x, k, s, padding.upper(), op)
    if any(is_symbolic(n) for n in x.shape[-d:]):
        raise PoolportError(
            f"{where}: the spatial size is dynamic here ({tuple(x.shape)}), and TF-'SAME' padding depends on it. "
            f"Export with the TorchScript exporter (exporter='torchscript'), which writes ONNX auto_pad "
            f"SAME_UPPER pooling, exact at every size; or keep the spatial size static."
        )
    in_size = static_size(x, d)
    try:
        plan = plan_same(op, in_size, k, s, padding)
    except PoolportError as e:
        raise PoolportError(f"{where} on input {tuple(x.shape)}: {e}") from None
    if x.dim() == d + 1:
        return apply_same_plan(x.unsqueeze(0), plan).squeeze(0)
    return apply_same_plan(x, plan)


def avg_pool1d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="avg", d=1)


def avg_pool2d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="avg", d=2)


def avg_pool3d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="avg", d=3)


def max_pool1d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="max", d=1)


def max_pool2d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="max", d=2)


def max_pool3d_same(x: torch.Tensor, kernel_size: Size, stride: Size | None = None, padding: str = "SAME") -> torch.Tensor:
    return pool_same(x, kernel_size, stride, padding, op="max", d=3)


_SAME_DOC = """TensorFlow's ``tf.nn.{tf}`` with ``padding`` 'SAME' or 'VALID', for channels-first tensors.

'SAME': ``out = ceil(n / s)``; ``max((out - 1) * s + k - n, 0)`` padding cells in total, half (rounded
down) before, the rest after; {how}. 'VALID': ``out = ceil((n - k + 1) / s)``, no padding.
Exports to one pooling op where padding is symmetric or ``ceil_mode`` lands on TF's windows, else to
Pad + pooling{mul}.

Args:
    x: ``(C, {sp})`` or ``(N, C, {sp})``{dtype}.
    kernel_size, stride: an int or {d} ints; ``stride=None`` means the kernel size.
    padding: 'SAME' or 'VALID' (any case).

Raises:
    PoolportError: for a bad shape{dtype_err}, a non-positive kernel or stride, an unknown padding,
        or a 'VALID' kernel larger than the input.
"""
for _op in ("avg", "max"):
    for _d in (1, 2, 3):
        globals()[f"{_op}_pool{_d}d_same"].__doc__ = _SAME_DOC.format(
            tf="avg_pool" if _op == "avg" else "max_pool", d=_d,
            sp={1: "L", 2: "H, W", 3: "D, H, W"}[_d],
            how="an average divides by the real (unpadded) cells of its window" if _op == "avg"
            else "the maximum ignores the padding",
            mul=" + a constant divisor correction (Mul)" if _op == "avg" else " (edge values)",
            dtype=", floating dtype" if _op == "avg" else "",
            dtype_err=", a non-floating dtype" if _op == "avg" else "",
        )
del _op, _d


def global_pool(x: torch.Tensor, op: str, keepdims: bool = False, data_format: str = "channels_first") -> torch.Tensor:
    """Keras ``GlobalAveragePooling*D`` / ``GlobalMaxPooling*D``: mean (max) over every spatial axis;
    (N, C) unless ``keepdims``. Exports to one whole-plane AveragePool / MaxPool."""
    where = f"global_{op}_pool"
    check_pool_input(x, where, d=None, needs_float=op == "avg", what="average pooling")
    if data_format not in ("channels_first", "channels_last"):
        raise PoolportError(f"{where}: data_format must be 'channels_first' or 'channels_last', got {data_format!r}.")
    if x.dim() > 5:
        raise PoolportError(f"{where}: {x.dim() - 2} spatial axes in shape {tuple(x.shape)}; global pooling takes 1 to 3 "
                            f"(N, C, *spatial), like torch's pooling ops. Fold the extra axes into the batch first.")
    # a pooling op over the whole plane, channels first (ncnn mishandles ReduceMean/ReduceMax); the layout is
    # moved with an explicit permutation: movedim(-1, 1) exports a Transpose with perm [0, -1, 1, 2], which
    # ONNX Runtime refuses
    rank = x.dim()
    cf = x if data_format == "channels_first" else x.permute(0, rank - 1, *range(1, rank - 1))
    plane = static_size(cf, rank - 2)
    y = pool(cf, op, plane, plane)
    if not keepdims:
        return y.flatten(1)
    return y if data_format == "channels_first" else y.permute(0, *range(2, rank), 1)


def global_avg_pool(x: torch.Tensor, keepdims: bool = False, data_format: str = "channels_first") -> torch.Tensor:
    """Keras ``GlobalAveragePooling{1,2,3}D``: the mean over every spatial axis, dividing by the whole
    plane. ``x``: (N, C, *spatial) (or (N, *spatial, C) with ``data_format="channels_last"``); returns
    (N, C), or keeps the pooled axes as size 1 with ``keepdims``. Raises PoolportError for fewer than 3
    dimensions, a non-floating dtype or an unknown ``data_format``."""
    return global_pool(x, "avg", keepdims, data_format)


def global_max_pool(x: torch.Tensor, keepdims: bool = False, data_format: str = "channels_first") -> torch.Tensor:
    """Keras ``GlobalMaxPooling{1,2,3}D``: the maximum over every spatial axis; shapes as
    ``global_avg_pool``. Raises PoolportError for fewer than 3 dimensions or an unknown ``data_format``."""
    return global_pool(x, "max", keepdims, data_format)
