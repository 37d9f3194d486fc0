"""What poolport puts into a TorchScript trace made by the TorchScript ONNX exporter: one custom op,
``poolport::adaptive_pool``, whose ONNX symbolic chooses the formulation once the exporter knows which
sizes are dynamic. A trace cannot know that (``dynamic_axes`` are applied after tracing), so a static plan
traced in would be silently wrong at every other size; the symbolic sees the sizes as the graph will
have them:

* every pooled size static -> the static plan (one pooling op where windows are uniform, else runs);
* any pooled size dynamic -> the size-generic plan (``onnx_generic``), exact at every size.

Outside the ONNX exporter nothing of this appears: ``torch.jit.trace`` keeps torch's native op (which
OpenVINO and pnnx/ncnn compute exactly at every size), dynamo sees the torch formulations -- except
inside ``onnx_translation()`` (``export_onnx``'s dynamo export, which passes poolport's translation table,
``onnx_translation.onnx_translations``): there adaptive pooling over symbolic sizes records
``poolport::adaptive_pool`` too, and the table writes it as the same ONNX nodes as the TorchScript path.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from ..plan.same import plan_same
from .torch_ops import NATIVE, apply_same_plan

_NAME = "poolport::adaptive_pool"


@torch.library.custom_op(_NAME, mutates_args=())
def adaptive_pool_op(x: torch.Tensor, output_size: list[int], op: str, style: str) -> torch.Tensor:
    """Adaptive ``op`` pooling over the last ``len(output_size)`` axes; ``-1`` keeps an axis. ``style``
    (``plan.pooling.STYLES``) is how the symbolic writes a static plan."""
    d = len(output_size)
    size = [None if o < 0 else o for o in output_size]
    return NATIVE[op, d](x, size).clone()


@adaptive_pool_op.register_fake
def _(x: torch.Tensor, output_size: list[int], op: str, style: str) -> torch.Tensor:
    d = len(output_size)
    tail = [n if o < 0 else o for n, o in zip(x.shape[-d:], output_size)]
    return x.new_empty((*x.shape[:-d], *tail))


def traced_adaptive_pool(x: torch.Tensor, output_size: tuple[int | None, ...], op: str,
                         style: str = "default") -> torch.Tensor:
    """Record ``poolport::adaptive_pool`` in the TorchScript exporter's trace (its symbolic registered),
    to be written in ``style`` (``plan.pooling.STYLES``) where its sizes are static."""
    from .onnx_symbolic import ensure_custom_op_symbolic  # torch.onnx only when exporting

    ensure_custom_op_symbolic()
    return torch.ops.poolport.adaptive_pool(x, [-1 if o is None else int(o) for o in output_size], op, style)


_state = threading.local()


@contextlib.contextmanager
def onnx_translation():
    """Within this block adaptive pooling over symbolic sizes records ``poolport::adaptive_pool``
    (``translated_adaptive_pool``) for a dynamo ONNX export that passes poolport's translation table."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def translating() -> bool:
    """Whether ``onnx_translation()`` is active on this thread."""
    return getattr(_state, "depth", 0) > 0


def translated_adaptive_pool(x: torch.Tensor, output_size: tuple[int | None, ...], op: str,
                             style: str = "default") -> torch.Tensor:
    """Record ``poolport::adaptive_pool`` for torch.export (its fake kernel keeps symbolic sizes: no guard);
    ``style`` is how the translation table writes it where its sizes are static."""
    return torch.ops.poolport.adaptive_pool(x, [-1 if o is None else int(o) for o in output_size], op, style)


@torch.library.custom_op("poolport::pool_same", mutates_args=())
def pool_same_op(x: torch.Tensor, kernel: list[int], stride: list[int], padding: str, op: str) -> torch.Tensor:
    """TF-style ``padding`` pooling of the last ``len(kernel)`` axes (eager meaning: poolport's plan)."""
    plan = plan_same(op, tuple(x.shape[-len(kernel):]), tuple(kernel), tuple(stride), padding)
    return apply_same_plan(x, plan).clone()


@pool_same_op.register_fake
def _(x: torch.Tensor, kernel: list[int], stride: list[int], padding: str, op: str) -> torch.Tensor:
    plan = plan_same(op, tuple(x.shape[-len(kernel):]), tuple(kernel), tuple(stride), padding)
    return x.new_empty((*x.shape[:-len(kernel)], *plan.out_size))


def traced_pool_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], padding: str,
                     op: str) -> torch.Tensor:
    """Record ``poolport::pool_same`` in a TorchScript trace. Inside the TorchScript ONNX exporter its
    symbolic writes the static plan, or ONNX pooling with ``auto_pad=SAME_UPPER`` (TF's 'SAME', exact at
    every size) where the sizes are dynamic. Other tools that trace (OpenVINO, pnnx) do not know the op
    and refuse the model: a static plan traced into their dynamic graphs would be silently wrong."""
    from .onnx_symbolic import ensure_custom_op_symbolic

    ensure_custom_op_symbolic()
    return torch.ops.poolport.pool_same(x, list(kernel), list(stride), padding, op)
