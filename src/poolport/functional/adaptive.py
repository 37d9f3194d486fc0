"""Exact adaptive pooling with the signatures of ``torch.nn.functional.adaptive_*``.

Eager calls on plain tensors use PyTorch's native op (same numbers, no overhead); anything that traces,
exports or compiles gets the portable path built from the plan (see ``poolport.functional.dispatch``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..backend.torch_generic import apply_generic
from ..backend.torch_ops import NATIVE, apply_plan
from ..backend.traced_op import traced_adaptive_pool, translated_adaptive_pool, translating
from ..errors import PoolportError
from ..plan import plan_pool
from ..plan.generic import plan_generic
from ..plan.pooling import tuple_str
from .dispatch import active_observer, current_style, size_generic_forced, use_portable
from .shapes import is_symbolic, static_size
from .validate import check_pool_input

OutputSize = int | Sequence[int | None]  # torch's output_size: None keeps that axis

_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _name(op: str, d: int) -> str:
    return f"adaptive_{op}_pool{d}d"


def normalize_output_size(output_size: OutputSize, d: int, where: str,
                          in_size: Sequence[int] | None = None) -> tuple[int | None, ...]:
    """torch's ``output_size`` rules: an int applies to every axis; a sequence has one entry per axis;
    ``None`` entries are kept (they keep that axis). ``in_size`` only makes the messages more precise."""
    if isinstance(output_size, torch.Size):
        output_size = tuple(output_size)
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != d:
            raise PoolportError(
                f"{where}: output_size {tuple(output_size)} must have {d} entr{'y' if d == 1 else 'ies'} "
                f"(one per pooled axis), or be a single int."
            )
        sizes = tuple(output_size)
    elif output_size is None:
        raise PoolportError(f"{where}: output_size is None; give an int or a tuple (None entries keep that axis).")
    else:
        sizes = (output_size,) * d
    out = []
    for o in sizes:
        if isinstance(o, torch.Tensor) and o.numel() == 1:
            o = int(o)
        if o is not None and (isinstance(o, bool) or not isinstance(o, int)):
            raise PoolportError(f"{where}: output_size entries must be ints or None, got {o!r}.")
        out.append(o)
    if any(o is not None and o <= 0 for o in out):
        shown = tuple(n if o is None else o for n, o in zip(in_size, out)) if in_size is not None else out
        given = f" for input {tuple_str(in_size)}" if in_size is not None else ""
        raise PoolportError(f"{where}: output size {tuple_str(shown)}{given}: every entry must be >= 1.")
    return tuple(out)


def resolve_output_size(in_size: Sequence[int], output_size: OutputSize, d: int, where: str) -> tuple[int, ...]:
    """``normalize_output_size`` with every ``None`` replaced by that axis's input size."""
    out = normalize_output_size(output_size, d, where, in_size)
    return tuple(n if o is None else o for n, o in zip(in_size, out))


def check_input(x, op: str, d: int, where: str) -> None:
    """Raise a PoolportError for inputs torch would reject with a deep traceback (or accept wrongly)."""
    check_pool_input(x, where, d=d, needs_float=True, what=f"adaptive {op} pooling")


def _all_positive(output_size) -> bool:
    """Cheap pre-check for the eager fast path (torch itself accepts 0 and returns an empty tensor)."""
    if isinstance(output_size, int):
        return output_size > 0
    if isinstance(output_size, (tuple, list)):
        return all(o is None or (isinstance(o, int) and o > 0) for o in output_size)
    return False


def adaptive_pool(
    x: torch.Tensor, output_size: OutputSize, op: str, d: int, *, portable: bool | None = None,
    site: str | None = None, style: str | None = None,
) -> torch.Tensor:
    """Adaptive ``op`` ("avg" or "max") pooling over the last ``d`` axes: the one implementation behind
    every public function and module. ``portable=None`` decides by context (native op in plain eager
    mode, the plan's portable ops otherwise); ``site`` names the call in verification reports; ``style``
    is how a static plan is written (``plan.pooling.STYLES``; None: ``dispatch.emitting``'s)."""
    where = _name(op, d)
    style = current_style() if style is None else style
    if portable is None:
        portable = use_portable(x)
    if not portable and active_observer() is None and _all_positive(output_size):
        # plain eager: the native op, validated by torch; on failure, say it poolport's way
        try:
            return NATIVE[op, d](x, output_size)
        except (RuntimeError, ValueError, TypeError, IndexError):
            check_input(x, op, d, where)
            resolve_output_size(static_size(x, d), output_size, d, where)
            raise
    check_input(x, op, d, where)
    if torch.jit.is_tracing():
        # A trace cannot tell whether its sizes will be dynamic. Inside the TorchScript ONNX exporter,
        # poolport's custom op lets the exporter's symbolic choose once it knows (backend.traced_op);
        # any other trace (OpenVINO, pnnx, a user's) keeps torch's own op, which those tools compute
        # exactly at every size. A static plan traced in would be silently wrong at other sizes.
        size = normalize_output_size(output_size, d, where)
        if torch.onnx.is_in_onnx_export():
            return traced_adaptive_pool(x, size, op, style)
        return NATIVE[op, d](x, size)
    if any(is_symbolic(n) for n in x.shape[-d:]):
        # symbolic H/W (torch.export / dynamo with Dims): the size-generic formulation, no guard
        # (no layout step here: asking a symbolic tensor whether it is channels-last makes Dynamo guard on
        # its sizes, i.e. specialise them)
        if translating():  # export_onnx's dynamo export: poolport's translation table writes the ONNX nodes
            return translated_adaptive_pool(x, normalize_output_size(output_size, d, where), op, style)
        plan = plan_generic(op, normalize_output_size(output_size, d, where))
        return apply_generic(x.unsqueeze(0), plan).squeeze(0) if x.dim() == d + 1 else apply_generic(x, plan)
    in_size = static_size(x, d)
    out_size = resolve_output_size(in_size, output_size, d, where)
    if not portable:
        return NATIVE[op, d](x, out_size)
    if size_generic_forced():
        plan = plan_generic(op, normalize_output_size(output_size, d, where))
        out = _apply(apply_generic, x, plan, d)
    else:
        plan = plan_pool(op, in_size, out_size, style)
        out = _apply(apply_plan, x, plan, d)
    observer = None if torch.compiler.is_compiling() else active_observer()
    if observer is not None and type(x) is torch.Tensor:
        # e.g. a verification pass (poolport.verify): it sees the portable result and chooses what the
        # model continues with
        return observer(site, where, x, out_size, plan, out)
    return out


def _apply(fn, x: torch.Tensor, plan, d: int) -> torch.Tensor:
    """``fn(x, plan)`` on batched or unbatched ``x``, keeping a channels-last layout as the native op does."""
    if x.dim() == d + 1:  # unbatched: (C, *spatial)
        return fn(x.unsqueeze(0), plan).squeeze(0)
    out = fn(x, plan)
    layout = _CHANNELS_LAST.get(x.dim())
    if layout is not None and not x.is_contiguous() and x.is_contiguous(memory_format=layout):
        out = out.contiguous(memory_format=layout)
    return out


def no_indices_error(d: int) -> PoolportError:
    """The error for ``adaptive_max_pool{d}d(return_indices=True)``, with the reason and what to do."""
    return PoolportError(
        f"{_name('max', d)}(return_indices=True): the argmax indices are not portable. They need "
        f"data-dependent index arithmetic (ONNX MaxPool's Indices output or Gather), which ncnn and "
        f"LiteRT cannot run, and adaptive windows overlap so a separable pass cannot recover them. "
        f"Use torch.nn.functional.{_name('max', d)} for indices in eager PyTorch (e.g. for MaxUnpool), "
        f"or drop return_indices for a deployable model."
    )


_DOC = """Adaptive {what} pooling over the last {d} ax{es}, exactly as
``torch.nn.functional.adaptive_{op}_pool{d}d``, from portable operators when traced or exported.

Output cell ``i`` of ``o`` along an axis of ``n`` inputs {reduces} the window
``[floor(i*n/o), ceil((i+1)*n/o))``. Plain eager calls run torch's native op; tracing, exporting and
compiling take poolport's portable path (see ``poolport.functional.dispatch``).

Args:
    input: ``({shape_unbatched})`` or ``(N, {shape_unbatched})``, floating dtype.
    output_size: an int for every axis, or {d} entr{ies}; ``None`` keeps that axis's input size.
    {extra}
Returns:
    ``(N, C, {out_shape})`` (or without N), same dtype{layout}.

Raises:
    PoolportError: for a non-tensor, a wrong number of dimensions, a non-floating dtype, an empty
        non-batch dimension or an output size < 1{raises_extra}.
"""


def _doc(op: str, d: int) -> str:
    shape = {1: "C, L", 2: "C, H, W", 3: "C, D, H, W"}[d]
    out_shape = {1: "L_out", 2: "H_out, W_out", 3: "D_out, H_out, W_out"}[d]
    return _DOC.format(
        what="average" if op == "avg" else "max", op=op, d=d, es="is" if d == 1 else "es",
        reduces="averages" if op == "avg" else "takes the maximum of", shape_unbatched=shape,
        ies="y" if d == 1 else "ies", out_shape=out_shape,
        extra="return_indices: must be False (argmax indices are not portable).\n" if op == "max" else "",
        layout=", channels-last layout kept" if d > 1 else "",
        raises_extra="; for ``return_indices=True``" if op == "max" else "",
    )


def adaptive_avg_pool1d(input: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 1)


def adaptive_avg_pool2d(input: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 2)


def adaptive_avg_pool3d(input: torch.Tensor, output_size: OutputSize) -> torch.Tensor:
    return adaptive_pool(input, output_size, "avg", 3)


def adaptive_max_pool1d(input: torch.Tensor, output_size: OutputSize, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(1)
    return adaptive_pool(input, output_size, "max", 1)


def adaptive_max_pool2d(input: torch.Tensor, output_size: OutputSize, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(2)
    return adaptive_pool(input, output_size, "max", 2)


def adaptive_max_pool3d(input: torch.Tensor, output_size: OutputSize, return_indices: bool = False) -> torch.Tensor:
    if return_indices:
        raise no_indices_error(3)
    return adaptive_pool(input, output_size, "max", 3)


for _f in (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
           adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d):
    _f.__doc__ = _doc(_f.__name__[9:12], int(_f.__name__[-2]))
del _f
