"""Route every adaptive pooling call made through torch's functional entry points to poolport.

``PortableFunctionMode`` is a ``TorchFunctionMode`` that catches ``torch.nn.functional.adaptive_*``,
``torch.adaptive_avg_pool1d``, ``torch.adaptive_max_pool1d`` and ``torch._C._nn.adaptive_*`` wherever
they are called from (module forwards, functional calls inside ``forward``) and answers them with
poolport's implementation. ``F.interpolate(..., mode="area")`` (and ``nn.Upsample``, ``F.upsample`` in that
mode) is adaptive average pooling to the output size (torch computes it so): it is answered the same way. Calls that ask for argmax indices keep the native indices (they are not
portable; see ``poolport.functional.adaptive.no_indices_error``) but their values come from poolport.

``patch()`` enters the mode and ``always_portable()`` around any other tool: ``torch.jit.trace``,
``torch.export.export`` (strict or not), ``openvino.convert_model``, pnnx, torch2trt, litert-torch.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import PoolportError
from ..functional import pools
from ..functional.adaptive import adaptive_pool
from ..functional.dispatch import always_portable, emitting, note_refusal
from ..functional.shapes import is_symbolic
from .swap import restore_modules, swap_modules
from .targets import style_for

# func -> (op, d, returns (values, indices): True, False, or None = as its return_indices argument says)
_TABLE: dict = {}


def _register(func, op: str, d: int, pair: bool | None) -> None:
    if func is not None:
        _TABLE[func] = (op, d, pair)


for _d in (1, 2, 3):
    _register(getattr(F, f"adaptive_avg_pool{_d}d", None), "avg", _d, False)
    # F.adaptive_max_poolNd is a boolean_dispatch wrapper; its halves report the wrapper itself
    _register(getattr(F, f"adaptive_max_pool{_d}d", None), "max", _d, None)
    _register(getattr(F, f"_adaptive_max_pool{_d}d", None), "max", _d, None)
    _register(getattr(F, f"adaptive_max_pool{_d}d_with_indices", None), "max", _d, True)
for _d in (2, 3):
    _register(getattr(torch._C._nn, f"adaptive_avg_pool{_d}d", None), "avg", _d, False)
    _register(getattr(torch._C._nn, f"adaptive_max_pool{_d}d", None), "max", _d, True)
_register(torch.adaptive_avg_pool1d, "avg", 1, False)  # also F.adaptive_avg_pool1d
_register(torch.adaptive_max_pool1d, "max", 1, True)


# torch's plain pooling functions -> poolport's of the same signature, which take the portable form where
# one is needed (divisor_override, dilation, LPPool) and torch's own op otherwise
_PLAIN: dict = {}
for _d in (1, 2, 3):
    for _func in (getattr(F, f"max_pool{_d}d", None), getattr(torch, f"max_pool{_d}d", None)):
        if _func is not None:
            _PLAIN[_func] = getattr(pools, f"max_pool{_d}d")
    if getattr(F, f"lp_pool{_d}d", None) is not None:
        _PLAIN[getattr(F, f"lp_pool{_d}d")] = getattr(pools, f"lp_pool{_d}d")
for _d in (2, 3):
    _PLAIN[getattr(F, f"avg_pool{_d}d")] = getattr(pools, f"avg_pool{_d}d")
for _d in (1, 2, 3):
    _PLAIN[getattr(F, f"max_pool{_d}d_with_indices")] = getattr(pools, f"max_pool{_d}d_with_indices")
    _PLAIN[getattr(F, f"max_unpool{_d}d")] = getattr(pools, f"max_unpool{_d}d")
# fractional max pooling: F.fractional_max_poolNd (return_indices=False) reports the wrapper itself, with
# return_indices=True its _with_indices half
for _d in (2, 3):
    _PLAIN[getattr(F, f"fractional_max_pool{_d}d")] = getattr(pools, f"fractional_max_pool{_d}d")
    _PLAIN[getattr(F, f"fractional_max_pool{_d}d_with_indices")] = getattr(pools, f"fractional_max_pool{_d}d_with_indices")


def intercepted_functions() -> list:
    """The torch callables this mode answers (for documentation and tests)."""
    return [*_TABLE, F.interpolate, *_PLAIN]


def _interpolate_args(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                      recompute_scale_factor=None, antialias=False):
    return input, size, scale_factor, mode, align_corners, antialias


def area_output_size(args, kwargs) -> tuple | None:
    """For an ``F.interpolate`` call in ``mode="area"`` that poolport can answer, ``(input, output_size,
    d)``: torch computes area interpolation as ``adaptive_avg_pool{d}d(input, output_size)``, the output
    size given as ``size`` or, with ``scale_factor``, ``floor(input size x scale)`` (answered only at static
    sizes outside a trace: elsewhere that size is itself symbolic). None for every other call (another
    mode, an argument torch refuses): torch answers it."""
    try:
        x, size, scale, mode, align_corners, antialias = _interpolate_args(*args, **kwargs)
    except TypeError:
        return None
    if mode != "area" or align_corners is not None or antialias or not isinstance(x, torch.Tensor):
        return None
    d = x.dim() - 2
    if d not in (1, 2, 3) or (size is None) == (scale is None):
        return None
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * d
        if len(sizes) != d or not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
            return None
        return x, tuple(sizes), d
    scales = list(scale) if isinstance(scale, (list, tuple)) else [scale] * d
    if (len(scales) != d or torch.jit.is_tracing() or any(is_symbolic(n) for n in x.shape[2:])
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scales)):
        return None
    return x, tuple(math.floor(float(n) * float(s)) for n, s in zip(x.shape[2:], scales)), d


def _output_size(args, kwargs):
    """The ``output_size`` argument of an intercepted call, given by position or by name."""
    if len(args) > 1:
        return args[1]
    if "output_size" in kwargs:
        return kwargs["output_size"]
    raise TypeError("adaptive pooling called without output_size")


class PortableFunctionMode(TorchFunctionMode):
    """Answer torch's adaptive pooling functions with poolport's (portable when recording)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return self._answer(func, args, kwargs or {})
        except PoolportError as e:
            note_refusal(e)  # a fallback capture that skips this mode must not hide it (dispatch.refusals)
            raise

    def _answer(self, func, args, kwargs):
        entry = _TABLE.get(func)
        if entry is None:
            area = area_output_size(args, kwargs) if func is F.interpolate else None
            if area is None:
                return _PLAIN.get(func, func)(*args, **kwargs)
            x, output_size, d = area
            return adaptive_pool(x, output_size, "avg", d)
        op, d, pair = entry
        if pair is None:
            pair = bool(kwargs.get("return_indices", args[2] if len(args) > 2 else False))
        x = args[0] if args else kwargs["input"]
        values = adaptive_pool(x, _output_size(args, kwargs), op, d)
        if not pair:
            return values
        _, indices = func(*args, **kwargs)  # native indices: not portable, only there if asked for
        return values, indices


@contextlib.contextmanager
def patch(model: torch.nn.Module | None = None, *, target: str | None = None):
    """Inside this block every adaptive pooling call anywhere takes poolport's portable path.

    Use it around tools that trace or convert a model themselves::

        with poolport.patch(model):
            ov_model = openvino.convert_model(model, example_input=x)

    With ``model``, its torch pooling modules also wear poolport's classes for the duration (restored
    on exit). Converters that recognise ``nn.AdaptiveAvgPool2d`` by its class and expect the native op
    inside (pnnx crashes otherwise) then see a module they trace through instead.

    ``target`` (``poolport.routing.targets.TARGETS``) chooses how plans are written: by default the edge
    style, which ExecuTorch's and LiteRT's XNNPACK delegates take whole (``patch`` is used ahead of
    torch-side converters); ``target="onnxruntime"`` (or ``"openvino"``, ``"default"``, ...) the plain
    form with the fewest nodes.

    Raises:
        PoolportError: an unknown ``target``.
    """
    style = style_for(target, default="edge")
    swapped = swap_modules(model, style) if model is not None else []
    buffers = pools.model_buffers(tuple(model.buffers()) if model is not None else ())
    try:
        with always_portable(), emitting(style), PortableFunctionMode(), buffers:
            yield
    finally:
        restore_modules(swapped)
