"""Exact adaptive pooling with the signatures of ``torch.nn.functional.adaptive_*``.

Eager calls on plain tensors use PyTorch's native op (same numbers, no overhead); anything that traces,
exports or compiles gets the portable path built from the plan (see ``poolport.dispatch``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..backend.torch_ops import apply_plan
from ..dispatch import use_portable
from ..errors import PoolportError
from ..plan import plan_pool
from ..sites import active_recorder
from .shapes import static_size
from ..plan.pooling import tuple_str

NATIVE = {  # (op, d) -> torch's native adaptive pooling
    ("avg", 1): F.adaptive_avg_pool1d,
    ("avg", 2): F.adaptive_avg_pool2d,
    ("avg", 3): F.adaptive_avg_pool3d,
    ("max", 1): F.adaptive_max_pool1d,
    ("max", 2): F.adaptive_max_pool2d,
    ("max", 3): F.adaptive_max_pool3d,
}


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _name(op: str, d: int) -> str:
    return f"adaptive_{op}_pool{d}d"


def resolve_output_size(
    in_size: Sequence[int], output_size, d: int, where: str
) -> tuple[int, ...]:
    """torch's rules: an int applies to every axis; a sequence has one entry per axis, where
    ``None`` keeps that axis's input size."""
    if isinstance(output_size, torch.Size):
        output_size = tuple(output_size)
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != d:
            raise PoolportError(
                f"{where}: output_size {tuple(output_size)} must have {d} entr{'y' if d == 1 else 'ies'} "
                f"(one per pooled axis), or be a single int."
            )
        sizes = tuple(n if o is None else o for n, o in zip(in_size, output_size))
    elif output_size is None:
        raise PoolportError(f"{where}: output_size is None; give an int or a tuple (None entries keep that axis).")
    else:
        sizes = (output_size,) * d
    out = []
    for o in sizes:
        if isinstance(o, torch.Tensor) and o.numel() == 1:
            o = int(o)
        if isinstance(o, bool) or not isinstance(o, int):
            raise PoolportError(f"{where}: output_size entries must be ints or None, got {o!r}.")
        if o <= 0:
            raise PoolportError(
                f"{where}: output size {tuple_str(sizes) if all(isinstance(s, int) for s in sizes) else sizes} "
                f"for input {tuple_str(in_size)}: every entry must be >= 1."
            )
        out.append(o)
    return tuple(out)


def check_input(x, op: str, d: int, where: str) -> None:
    """Raise a PoolportError for inputs torch would reject with a deep traceback (or accept wrongly)."""
    if not isinstance(x, torch.Tensor):
        raise PoolportError(f"{where}: expected a torch.Tensor, got {type(x).__name__}.")
    if x.dim() not in (d + 1, d + 2):
        raise PoolportError(
            f"{where}: expected a {d + 1}D (C, {'spatial' if d > 1 else 'L'}) or {d + 2}D (N, C, ...) input, "
            f"got {x.dim()}D with shape {tuple(x.shape)}."
        )
    if not (x.dtype.is_floating_point):
        raise PoolportError(
            f"{where}: input dtype {x.dtype} is not supported: adaptive {op} pooling needs a floating "
            f"dtype (float32, float16, bfloat16, float64); cast the input, e.g. x.float()."
        )
    first_non_batch = 1 if x.dim() == d + 2 else 0
    if any(s == 0 for s in x.shape[first_non_batch:]):
        raise PoolportError(
            f"{where}: input of shape {tuple(x.shape)} has an empty non-batch dimension; "
            f"only the batch dimension may be 0."
        )


def _all_positive(output_size) -> bool:
    """Cheap pre-check for the eager fast path (torch itself accepts 0 and returns an empty tensor)."""
    if isinstance(output_size, int):
        return output_size > 0
    if isinstance(output_size, (tuple, list)):
        return all(o is None or (isinstance(o, int) and o > 0) for o in output_size)
    return False


def adaptive_pool(
    x: torch.Tensor, output_size, op: str, d: int, *, portable: bool | None = None, site: str | None = None
) -> torch.Tensor:
    """Adaptive ``op`` pooling over the last ``d`` axes. ``portable=None`` decides by context;
    ``site`` names the call in verification reports (a module path)."""
    where = _name(op, d)
    if portable is None:
        portable = use_portable(x)
    if not portable and active_recorder() is None and _all_positive(output_size):
        # plain eager: the native op, validated by torch; on failure, say it poolport's way
        try:
            return NATIVE[op, d](x, output_size)
        except (RuntimeError, ValueError, TypeError, IndexError):
            check_input(x, op, d, where)
            resolve_output_size(static_size(x, d), output_size, d, where)
            raise
    check_input(x, op, d, where)
    in_size = static_size(x, d)
    out_size = resolve_output_size(in_size, output_size, d, where)
    if not portable:
        return NATIVE[op, d](x, out_size)
    plan = plan_pool(op, in_size, out_size)
    if x.dim() == d + 1:  # unbatched: (C, *spatial)
        out = apply_plan(x.unsqueeze(0), plan).squeeze(0)
    else:
        out = apply_plan(x, plan)
        layout = _CHANNELS_LAST.get(x.dim())
        if layout is not None and not x.is_contiguous() and x.is_contiguous(memory_format=layout):
            out = out.contiguous(memory_format=layout)  # keep the layout, as the native op does
    recorder = None if torch.compiler.is_compiling() else active_recorder()
    if recorder is not None and type(x) is torch.Tensor and not torch.jit.is_tracing():
        # verification pass: measure this site against the native op on the very same input, then
        # continue with the native result so that every site sees what the original model feeds it
        # (errors do not accumulate, and the pass's output is the original model's output)
        with torch._C.DisableTorchFunction():  # the native op itself, not an intercepted one
            native = NATIVE[op, d](x, out_size)
        recorder.record(site, _name(op, d), x, out_size, plan, out, native)
        return native
    return out


def no_indices_error(d: int) -> PoolportError:
    return PoolportError(
        f"{_name('max', d)}(return_indices=True): the argmax indices are not portable. They need "
        f"data-dependent index arithmetic (ONNX MaxPool's Indices output or Gather), which ncnn and "
        f"LiteRT cannot run, and adaptive windows overlap so a separable pass cannot recover them. "
        f"Use torch.nn.functional.{_name('max', d)} for indices in eager PyTorch (e.g. for MaxUnpool), "
        f"or drop return_indices for a deployable model."
    )


def adaptive_avg_pool1d(input: torch.Tensor, output_size) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 1)


def adaptive_avg_pool2d(input: torch.Tensor, output_size) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 2)


def adaptive_avg_pool3d(input: torch.Tensor, output_size) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 3)


def adaptive_max_pool1d(input: torch.Tensor, output_size, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(1)
    return adaptive_pool(input, output_size, "max", 1)


def adaptive_max_pool2d(input: torch.Tensor, output_size, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(2)
    return adaptive_pool(input, output_size, "max", 2)


def adaptive_max_pool3d(input: torch.Tensor, output_size, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(3)
    return adaptive_pool(input, output_size, "max", 3)
