"""torch's plain pooling functions where some runtime has no exact form of its own, with torch's
signatures: ``avg_pool{1,2,3}d`` (``divisor_override``), ``max_pool{1,2,3}d`` (``dilation``) and
``lp_pool{1,2,3}d``. Plain eager calls run torch's native op (nothing to pay); traced, exported or compiled
(``functional.dispatch``), the portable form: the explicit form for ``divisor_override`` and LPPool
(``plan.divisor``, ``plan.lppool``), sub-lattice pooling for dilation (``plan.dilated``); deployed to ncnn
or MNN, ``return_indices=True`` and ``max_unpool{1,2,3}d`` without ScatterND (``plan.indices``). Calls that
need no rewrite (no ``divisor_override``, no dilation) are torch's own op everywhere.

Sizes are static: the forms bake the spatial size in, so a dynamic H/W is refused loudly."""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes

from ..backend.torch_pools import (
    apply_argmax,
    apply_dilated,
    apply_divisor,
    apply_fractional,
    apply_lp,
    apply_unpool,
    traced_static_sizes,
)
from ..errors import PoolportError
from ..plan.dilated import dilated_plan
from ..plan.divisor import divisor_pool, tuple_arg
from ..plan.fractional import fractional_plan
from ..plan.indices import argmax_plan, unpool_plan
from ..plan.lppool import lp_plan
from .dispatch import active_observer, use_portable
from .shapes import is_symbolic, static_size
from .validate import check_pool_input

_NATIVE_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_NATIVE_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_NATIVE_LP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}


_state = threading.local()


@contextlib.contextmanager
def deploying_to(runtimes: Iterable[str]):
    """Within this block the portable forms are written for ``runtimes`` (names as
    ``poolport.runtimes.registry.NAMES``): one with no exact form there is refused with the runtime's
    reason instead of written. ``export_onnx`` enters it for its target and the runtimes it verifies in."""
    previous = getattr(_state, "runtimes", frozenset())
    _state.runtimes = previous | frozenset(runtimes)
    try:
        yield
    finally:
        _state.runtimes = previous


# where torch's own dilated MaxPool is exact (measured: ncnn cannot load it, MNN ignores the dilation,
# LiteRT returns a wrong shape for stride 2 + dilation 2)
_DILATION_EXACT = frozenset({"onnxruntime", "openvino"})


# where torch's own MaxPool indices + MaxUnpool are exact (measured: ncnn cannot load ScatterND, MNN is 1.6e11
# off, LiteRT 1.45x); ncnn and MNN get poolport's form (plan.indices), exact there; LiteRT neither
_INDICES_EXACT = frozenset({"onnxruntime", "openvino"})
_NO_INDICES = frozenset({"litert"})


def _native_dilation_exact() -> bool:
    """Whether every runtime ``deploying_to`` names computes torch's dilated MaxPool: then it is one node,
    faster than the sub-lattice form. Outside ``deploying_to`` (no target known): False."""
    runtimes = getattr(_state, "runtimes", frozenset())
    return bool(runtimes) and runtimes <= _DILATION_EXACT


def _native_wanted(x) -> bool:
    return not use_portable(x) and active_observer() is None


def _static(x: torch.Tensor, d: int, where: str) -> tuple[int, ...]:
    if any(is_symbolic(n) for n in x.shape[-d:]):
        raise PoolportError(
            f"{where}: the spatial size is dynamic here ({tuple(x.shape)}); poolport's portable form of this "
            f"pooling is written for one input size. Export with static spatial sizes (no dynamic H/W).")
    return static_size(x, d)


def _batched(fn, x: torch.Tensor, d: int, plan, where: str, native, site: str | None) -> torch.Tensor:
    """``fn(x, plan)`` on batched or unbatched ``x``; a verification pass's observer sees it with the native
    op (``native()``) to compare."""
    if torch.jit.is_tracing():  # the exporter's symbolic refuses dynamic sizes (backend.torch_pools)
        x = traced_static_sizes(x, d, where)
    out = fn(x.unsqueeze(0), plan).squeeze(0) if x.dim() == d + 1 else fn(x, plan)
    observer = None if torch.compiler.is_compiling() else active_observer()
    if observer is not None and type(x) is torch.Tensor:
        return observer(site, where, x, tuple(out.shape[-d:]), plan, out, native=native)
    return out


def avg_pool(x: torch.Tensor, d: int, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override: int | None = None, *,
             site: str | None = None) -> torch.Tensor:
    """``avg_pool{d}d``: the implementation behind ``avg_pool1d/2d/3d``."""
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad)
    if divisor_override is None:
        return _NATIVE_AVG[d](x, *args)
    if _native_wanted(x):
        return _NATIVE_AVG[d](x, *args, divisor_override)
    where = f"avg_pool{d}d"
    check_pool_input(x, where, d=d, needs_float=True, what="average pooling")
    k = tuple_arg(kernel_size, d, "kernel_size", where)
    s = tuple_arg(stride if stride != [] else None, d, "stride", where, default=k)
    p = tuple_arg(padding, d, "padding", where)
    plan = divisor_pool(_static(x, d, where), k, s, p, bool(ceil_mode), divisor_override)
    return _batched(apply_divisor, x, d, plan, where, lambda: _NATIVE_AVG[d](x, *args, divisor_override), site)


def max_pool(x: torch.Tensor, d: int, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
             return_indices: bool = False, *, site: str | None = None):
    """``max_pool{d}d``: the implementation behind ``max_pool1d/2d/3d``."""
    where = f"max_pool{d}d"
    dil = tuple_arg(dilation, d, "dilation", where)
    runtimes = getattr(_state, "runtimes", frozenset())
    if return_indices and not _native_wanted(x) and runtimes & _NO_INDICES:
        raise PoolportError(
            f"{where}(return_indices=True) has no exact form in LiteRT: torch's own export is wrong there (1.45x the "
            f"output's scale), and so is poolport's ScatterND-free form (measured, onnx2tf 1.29.24: -inf values come "
            f"back as -3.4e38 and the indices are wrong). Deploy the indices to ONNX Runtime, OpenVINO, ncnn or MNN.")
    if return_indices and not _native_wanted(x) and runtimes - _INDICES_EXACT:
        return _portable_indices(x, d, kernel_size, stride, padding, dil, ceil_mode, where)
    if return_indices or all(v == 1 for v in dil) or _native_wanted(x) or _native_dilation_exact():
        return _NATIVE_MAX[d](x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    check_pool_input(x, where, d=d, needs_float=False)
    k = tuple_arg(kernel_size, d, "kernel_size", where)
    s = tuple_arg(stride if stride != [] else None, d, "stride", where, default=k)
    p = tuple_arg(padding, d, "padding", where)
    plan = dilated_plan(_static(x, d, where), k, s, p, dil, bool(ceil_mode))
    native = lambda: _NATIVE_MAX[d](x, kernel_size, stride, padding, dilation, ceil_mode)  # noqa: E731
    return _batched(apply_dilated, x, d, plan, where, native, site)


def _portable_indices(x, d, kernel_size, stride, padding, dil, ceil_mode, where):
    """``max_pool{d}d(..., return_indices=True)`` for ncnn and MNN: the values and torch's int64 indices, cast
    from the float32 ones the form computes (``plan.indices``); poolport's ``max_unpool{d}d`` takes those."""
    if x.dtype != torch.float32:
        raise PoolportError(
            f"{where}(return_indices=True) for ncnn or MNN: poolport's portable argmax form covers float32 "
            f"only (got {x.dtype}); torch's own indices are not exact there. Pool in float32.")
    check_pool_input(x, where, d=d, needs_float=True, what="max pooling with indices")
    k = tuple_arg(kernel_size, d, "kernel_size", where)
    s = tuple_arg(stride if stride != [] else None, d, "stride", where, default=k)
    p = tuple_arg(padding, d, "padding", where)
    plan = argmax_plan(_static(x, d, where), k, s, p, tuple(dil), bool(ceil_mode))
    batched = x if x.dim() == d + 2 else x.unsqueeze(0)
    if torch.jit.is_tracing():
        batched = traced_static_sizes(batched, d, where)
    values, index = apply_argmax(batched, plan)
    if x.dim() != d + 2:
        values, index = values.squeeze(0), index.squeeze(0)
    return values, _as_torch_indices(index)


# poolport's own int64 indices (by object) -> the float32 ones they were cast from: max_unpool takes those, so
# the Cast to int64 stays in a graph only where the indices leave it or feed other ops (ncnn computes in float)
_FLOAT_INDICES: dict[int, tuple[weakref.ref, torch.Tensor]] = {}


def _as_torch_indices(index: torch.Tensor) -> torch.Tensor:
    """``index`` (float32, exact integers below 2^24) as torch's int64 indices, remembered for max_unpool."""
    out = index.to(torch.int64)
    key = id(out)
    _FLOAT_INDICES[key] = (weakref.ref(out, lambda _, k=key: _FLOAT_INDICES.pop(k, None)), index)
    return out


def _float_indices(indices: torch.Tensor) -> torch.Tensor | None:
    """The float32 indices poolport's portable max_pool cast ``indices`` from, or None (not poolport's own)."""
    ref, index = _FLOAT_INDICES.get(id(indices), (None, None))
    return index if ref is not None and ref() is indices else None


def max_unpool(input: torch.Tensor, indices: torch.Tensor, d: int, kernel_size, stride=None, padding=0,
               output_size=None) -> torch.Tensor:
    """``max_unpool{d}d``: torch's op for torch's indices; poolport's form for the indices poolport's portable
    ``max_pool{d}d(..., return_indices=True)`` gives (int64, known by object, or the float32 ones of the form)."""
    native = getattr(F, f"max_unpool{d}d")
    if not indices.dtype.is_floating_point:
        own = _float_indices(indices)
        if own is None:
            return native(input, indices, kernel_size, stride, padding, output_size)
        indices = own
    where = f"max_unpool{d}d"
    if input.dtype != torch.float32 or indices.dtype != torch.float32 or input.shape != indices.shape:
        raise PoolportError(f"{where}: poolport's portable form takes float32 values and the float32 indices of "
                            f"poolport's max_pool{d}d, of one shape; got {input.dtype} {tuple(input.shape)} and "
                            f"{indices.dtype} {tuple(indices.shape)}.")
    k = tuple_arg(kernel_size, d, "kernel_size", where)
    s = tuple_arg(stride if stride != [] else None, d, "stride", where, default=k)
    p = tuple_arg(padding, d, "padding", where)
    size = _static(input, d, where)
    default = tuple((n - 1) * st - 2 * pp + kk for n, st, pp, kk in zip(size, s, p, k))
    out = default if output_size is None else tuple(int(v) for v in tuple(output_size)[-d:])
    plan = unpool_plan(size, k, s, p, out)
    batched = (input, indices) if input.dim() == d + 2 else (input.unsqueeze(0), indices.unsqueeze(0))
    y = apply_unpool(*batched, plan)
    return y if input.dim() == d + 2 else y.squeeze(0)


_UNPOOL_DOC = """Max unpooling exactly as ``torch.nn.functional.max_unpool{d}d``: torch's own op for its int64
indices; for the float32 indices of poolport's portable ``max_pool{d}d(..., return_indices=True)`` (written
where ncnn or MNN is a target), the value of the last window whose index is a cell written there,
without ScatterND (``poolport.plan.indices``). The indices must come from a max pooling with this kernel,
stride and padding, unpooled to its input's size.

Raises:
    PoolportError: float indices of another dtype or shape, a dynamic spatial size, bad sizes.
"""


def max_unpool1d(input: torch.Tensor, indices: torch.Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> torch.Tensor:
    return max_unpool(input, indices, 1, kernel_size, stride, padding, output_size)


def max_unpool2d(input: torch.Tensor, indices: torch.Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> torch.Tensor:
    return max_unpool(input, indices, 2, kernel_size, stride, padding, output_size)


def max_unpool3d(input: torch.Tensor, indices: torch.Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> torch.Tensor:
    return max_unpool(input, indices, 3, kernel_size, stride, padding, output_size)


def max_pool1d_with_indices(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = False):
    """``F.max_pool1d_with_indices``: always (values, indices), whatever ``return_indices`` says."""
    return max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = False):
    """``F.max_pool2d_with_indices``: always (values, indices), whatever ``return_indices`` says."""
    return max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = False):
    """``F.max_pool3d_with_indices``: always (values, indices), whatever ``return_indices`` says."""
    return max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, True)


def lp_pool(x: torch.Tensor, d: int, norm_type: float, kernel_size, stride=None,
            ceil_mode: bool = False, *, site: str | None = None) -> torch.Tensor:
    """``lp_pool{d}d``: the implementation behind ``lp_pool1d/2d/3d``."""
    if _native_wanted(x):
        return _NATIVE_LP[d](x, norm_type, kernel_size, stride, ceil_mode)
    where = f"lp_pool{d}d"
    check_pool_input(x, where, d=d, needs_float=True, what="power-average pooling")
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)):
        raise PoolportError(f"{where}: norm_type must be a number, got {norm_type!r}.")
    k = tuple_arg(kernel_size, d, "kernel_size", where)
    s = tuple_arg(stride, d, "stride", where, default=k)
    plan = lp_plan(float(norm_type), _static(x, d, where), k, s, bool(ceil_mode))
    if "ncnn" in getattr(_state, "runtimes", ()) and not plan.ncnn_exact:
        raise PoolportError(
            f"{where} with norm_type {norm_type} has no exact form in ncnn: it needs {', '.join(plan.steps())}, and "
            f"ncnn's Pow is wrong for every base <= 0 and for inf, its Reciprocal for 0 and inf (measured, pnnx "
            f"20261020). ncnn computes p = 1, 2 and +-inf exactly; or deploy to another runtime.")
    native = lambda: _NATIVE_LP[d](x, norm_type, kernel_size, stride, ceil_mode)  # noqa: E731
    return _batched(apply_lp, x, d, plan, where, native, site)


def avg_pool1d(input: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> torch.Tensor:
    return avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(input: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> torch.Tensor:
    return avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> torch.Tensor:
    return avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def max_pool1d(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    return max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    return max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    return max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def lp_pool1d(input: torch.Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> torch.Tensor:
    return lp_pool(input, 1, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: torch.Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> torch.Tensor:
    return lp_pool(input, 2, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: torch.Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> torch.Tensor:
    return lp_pool(input, 3, norm_type, kernel_size, stride, ceil_mode)


_AXES = {1: "C, L", 2: "C, H, W", 3: "C, D, H, W"}

_AVG_DOC = """Average pooling exactly as ``torch.nn.functional.avg_pool{d}d``{extra}.

Without ``divisor_override`` this is torch's own op everywhere. With it (each window's sum, padding
counted as zeros, divided by ``divisor_override``; both torch exporters drop it and write a silently wrong
graph), traced or exported calls take the explicit form: zero Pad + AveragePool without padding + one
constant factor (``poolport.plan.divisor``), exact up to float rounding in every runtime poolport checks.

Args:
    input: ``({axes})`` or ``(N, {axes})``, floating dtype.
    kernel_size, stride, padding, ceil_mode, count_include_pad{div}: as torch's.

Raises:
    PoolportError: (portable path) a bad shape or dtype, a dynamic spatial size, arguments torch refuses
        (padding over half the kernel, a kernel larger than the padded input, a zero divisor).
"""

_MAX_DOC = """Max pooling exactly as ``torch.nn.functional.max_pool{d}d``.

Without dilation this is torch's own op. ``return_indices=True`` deployed to ncnn or MNN gives the values and
float32 indices of ``poolport.plan.indices`` (for ``max_unpool{d}d``). With ``dilation > 1``, traced or
exported calls take the sub-lattice form (``poolport.plan.dilated``): -inf Pad, plain MaxPool on each
residue class of the dilation reached by Reshape and contiguous Slice, bit-exact (NaN and infinities
included) in every runtime poolport checks; ncnn, MNN and LiteRT have no dilated pooling of their own.

Args:
    input: ``({axes})`` or ``(N, {axes})``.
    kernel_size, stride, padding, dilation, ceil_mode, return_indices: as torch's.

Raises:
    PoolportError: (portable path) a bad shape, a dynamic spatial size, or arguments torch refuses
        (padding over half the dilated kernel, a kernel larger than the padded input).
"""

_LP_DOC = """Power-average pooling exactly as ``torch.nn.functional.lp_pool{d}d``: ``(sum x**p)**(1/p)``
over each window, ``max |x|`` for ``p = inf`` and ``-max(-|x|)`` for ``p = -inf``, with torch's
conventions (a ceil_mode window past the end is averaged over its real cells and multiplied by the
kernel's size; odd powers keep their sign, so a negative sum gives NaN for ``p = 3``).

Traced or exported calls take poolport's form (``poolport.plan.lppool``): Mul/Pow, the explicit average
(Pad + AveragePool + constant factors), Sqrt/Pow; ncnn has no LpPool of its own.

Args:
    input: ``({axes})`` or ``(N, {axes})``, floating dtype.
    norm_type: ``p``, nonzero (``float('inf')`` allowed).
    kernel_size, stride, ceil_mode: as torch's (``stride=None``: the kernel size).

Raises:
    PoolportError: (portable path) a bad shape or dtype, a dynamic spatial size, ``p = 0``, or arguments
        torch refuses.
"""

for _d in (1, 2, 3):
    globals()[f"avg_pool{_d}d"].__doc__ = _AVG_DOC.format(
        d=_d, axes=_AXES[_d], extra=" (torch has no divisor_override in 1-D)" if _d == 1 else "",
        div="" if _d == 1 else ", divisor_override")
    globals()[f"max_pool{_d}d"].__doc__ = _MAX_DOC.format(d=_d, axes=_AXES[_d])
    globals()[f"lp_pool{_d}d"].__doc__ = _LP_DOC.format(d=_d, axes=_AXES[_d])
    globals()[f"max_unpool{_d}d"].__doc__ = _UNPOOL_DOC.format(d=_d)
del _d


# -- fractional max pooling with fixed samples (plan.fractional) ---------------------------------------------

_NATIVE_FRACTIONAL = {2: F.fractional_max_pool2d, 3: F.fractional_max_pool3d}


def _random_error(where: str, x: torch.Tensor, k: tuple[int, ...], out, site: str | None) -> PoolportError:
    layer = f"{where} at {site!r}" if site else where
    return PoolportError(
        f"{layer} (input {tuple(x.shape)}, kernel {k}, output {out}) draws its windows at random on each call "
        f"(_random_samples=None), so no graph can equal it. Fix them: build the layer with "
        f"`_random_samples=torch.rand(N, C, {len(k)})` (a buffer; poolport then writes its windows exactly), or "
        f"pass `_random_samples=` to the functional; or use a deterministic pooling such as AdaptiveMaxPool{len(k)}d.")


def _fractional_out(x: torch.Tensor, d: int, output_size, output_ratio, where: str) -> tuple[int, ...]:
    spatial = tuple(int(n) for n in x.shape[-d:])
    if output_size is not None:
        return tuple_arg(output_size, d, "output_size", where)
    if output_ratio is None:
        raise PoolportError(f"{where}: give output_size or output_ratio (torch requires one of them).")
    ratio = (output_ratio,) * d if isinstance(output_ratio, (int, float)) else tuple(output_ratio)
    if len(ratio) != d:
        raise PoolportError(f"{where}: output_ratio must be a number or {d} numbers, got {output_ratio!r}.")
    return tuple(int(n * r) for n, r in zip(spatial, ratio))


def _arithmetic(x: torch.Tensor) -> str:
    """The float arithmetic torch computes the windows in (``plan.fractional.ARITHMETIC``): the dtype on the
    CPU; on CUDA, half precision in float32 (its kernel's accumulation type)."""
    name = str(x.dtype).replace("torch.", "")
    if name in ("float16", "bfloat16") and x.device.type != "cpu":
        return "float32"
    return name


@contextlib.contextmanager
def model_buffers(buffers: Iterable[torch.Tensor]):
    """Within this block (``make_portable``'s hooks and ``patch(model)`` enter it with the model's real
    buffers, taken before any export swaps in fakes) these tensors are known as buffers: a functional call's
    ``_random_samples`` that is one of them is read from it while torch.export traces (``fixed_samples``).
    A model input never is."""
    previous = getattr(_state, "buffers", frozenset())
    _state.buffers = previous | frozenset(id(b) for b in buffers)
    try:
        yield
    finally:
        _state.buffers = previous


def _real_of_fake(t: torch.Tensor) -> torch.Tensor | None:
    """The real buffer a fake tensor stands for while torch.export records a graph: looked up in the fake
    mode's converter memo (torch's internals), and taken only where it is a buffer of the model being
    recorded (``model_buffers``; an example input maps to its fake the same way). None otherwise."""
    try:
        from torch._guards import detect_fake_mode

        mode = detect_fake_mode([t])
        if mode is None:
            return None
        converter = mode.fake_tensor_converter
        ids = [tid for tid, fake in converter.tensor_memo.items() if fake is t]
        reals = [r for r, tid in converter.meta_converter.describer.lookup_tensor.items() if ids and tid == ids[0]]
    except Exception:  # noqa: BLE001  (internals changed: the caller refuses loudly)
        return None
    if len(ids) != 1 or len(reals) != 1 or id(reals[0]) not in getattr(_state, "buffers", frozenset()):
        return None
    return reals[0]


def _traced_kind(t: torch.Tensor) -> str:
    """The node a TorchScript trace records ``t`` as: ``prim::TracedAttr`` for a module buffer,
    ``prim::Constant`` for a tensor from outside, ``prim::Param`` for an input, else the op that made it."""
    try:
        return torch._C._get_value_trace(t).node().kind()
    except RuntimeError:  # not traced at all: a tensor from outside the traced code, a constant
        return "prim::Constant"


def fixed_samples(samples, x: torch.Tensor, d: int, where: str, real: torch.Tensor | None = None):
    """The samples of every plane of ``x`` as Python floats (one tuple of ``d`` per plane ``n * C + c``),
    after torch's checks. While exporting, ``samples`` is a fake tensor whose values are unknown: then
    ``real`` (the module's own buffer, kept by ``poolport.nn.FractionalMaxPool{d}d``) gives them.

    Raises:
        PoolportError: ``samples`` of the wrong shape or dtype, or whose values are unknown here.
    """
    batched = x.dim() == d + 2
    n, c = (int(x.shape[0]) if batched else 1), int(x.shape[-d - 1])
    if not isinstance(samples, torch.Tensor):
        raise PoolportError(f"{where}: _random_samples must be a tensor, got {type(samples).__name__}.")
    if samples.dim() != 3 or samples.shape[2] != d or samples.shape[1] != c or samples.shape[0] < n:
        raise PoolportError(f"{where}: _random_samples of shape {tuple(samples.shape)} for input {tuple(x.shape)}: "
                            f"torch requires (N' >= {n}, {c}, {d}).")
    if samples.dtype != x.dtype:
        raise PoolportError(f"{where}: _random_samples is {samples.dtype}, the input {x.dtype}; torch requires the "
                            f"same dtype.")
    if torch.jit.is_tracing():  # a module's buffer, or a constant: anything else may differ on the next call
        kind = _traced_kind(samples)
        if kind not in ("prim::TracedAttr", "prim::Constant") and not (kind == "prim::Param" and samples is real):
            raise PoolportError(
                f"{where}: its _random_samples come from {kind} while a trace is recorded; the trace would bake in "
                f"this one value, wrong on every other call if they are drawn at random or given as an input (the "
                f"TorchScript exporter shows a buffer passed to the functional as an input too). Give them as the "
                f"`_random_samples` buffer of nn.FractionalMaxPool{d}d, or export with the dynamo exporter.")
    source = samples
    if type(samples) is not torch.Tensor or torch.compiler.is_compiling():
        real = real if real is not None else _real_of_fake(samples)
        if real is None or type(real) is not torch.Tensor or tuple(real.shape) != tuple(samples.shape) \
                or real.dtype != samples.dtype:
            raise PoolportError(
                f"{where}: its _random_samples are not known while this graph is recorded (computed in forward, "
                f"given as an input, or no buffer of the model poolport routes); poolport writes the windows they "
                f"give, so it needs their values. Give them as the `_random_samples` buffer of "
                f"nn.FractionalMaxPool{d}d.")
        source = real
    with warnings.catch_warnings(), _disable_current_modes():  # the real values, outside a fake mode
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # a trace bakes them in, as the plan
        values = source.detach()[:n].reshape(n * c, d).tolist()
    if not all(type(v) is float for row in values for v in row):
        raise PoolportError(f"{where}: the values of its _random_samples cannot be read here ({type(samples).__name__}); "
                            f"give them as the `_random_samples` buffer of nn.FractionalMaxPool{d}d.")
    return tuple(tuple(row) for row in values)


def fractional_max_pool(x: torch.Tensor, d: int, kernel_size, output_size=None, output_ratio=None,
                        return_indices: bool = False, _random_samples=None, *, site: str | None = None,
                        real_samples: torch.Tensor | None = None):
    """``fractional_max_pool{d}d``: the implementation behind ``fractional_max_pool2d/3d``. ``real_samples``:
    the module's buffer, for a graph recorded with fake tensors (``fixed_samples``)."""
    def native():
        return _NATIVE_FRACTIONAL[d](x, kernel_size, output_size, output_ratio, return_indices,
                                     _random_samples=_random_samples)

    with warnings.catch_warnings():  # a trace is specialised to the sizes and samples, as the plan is
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if _native_wanted(x):
            return native()
        where = f"fractional_max_pool{d}d"
        check_pool_input(x, where, d=d, needs_float=True, what="fractional max pooling")
        k = tuple_arg(kernel_size, d, "kernel_size", where)
        spatial = _static(x, d, where)
        out = _fractional_out(x, d, output_size, output_ratio, where)
        if _random_samples is None:
            raise _random_error(where, x, k, out, site)
        if return_indices:
            raise PoolportError(
                f"{where}(return_indices=True) (input {tuple(x.shape)}, kernel {k}, output {out}): poolport writes "
                f"the values only (the indices need a Gather or ScatterND that ncnn, MNN and LiteRT lack). Drop "
                f"return_indices for the export.")
        samples = fixed_samples(_random_samples, x, d, where, real_samples)
        plan = fractional_plan(spatial, k, out, samples, int(x.shape[-d - 1]), _arithmetic(x))
    return _batched(apply_fractional, x, d, plan, where, native, site)


def fractional_max_pool2d(input: torch.Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples=None):
    return fractional_max_pool(input, 2, kernel_size, output_size, output_ratio, return_indices, _random_samples)


def fractional_max_pool3d(input: torch.Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples=None):
    return fractional_max_pool(input, 3, kernel_size, output_size, output_ratio, return_indices, _random_samples)


def fractional_max_pool2d_with_indices(input: torch.Tensor, kernel_size, output_size=None, output_ratio=None,
                                       return_indices: bool = False, _random_samples=None):
    """``F.fractional_max_pool2d_with_indices``: (values, indices) whatever ``return_indices`` says."""
    return fractional_max_pool(input, 2, kernel_size, output_size, output_ratio, True, _random_samples)


def fractional_max_pool3d_with_indices(input: torch.Tensor, kernel_size, output_size=None, output_ratio=None,
                                       return_indices: bool = False, _random_samples=None):
    """``F.fractional_max_pool3d_with_indices``: (values, indices) whatever ``return_indices`` says."""
    return fractional_max_pool(input, 3, kernel_size, output_size, output_ratio, True, _random_samples)


_FRACTIONAL_DOC = """Fractional max pooling exactly as ``torch.nn.functional.fractional_max_pool{d}d``.

Each (batch row, channel) plane's windows come from ``_random_samples`` ((N, C, {d}), in [0, 1); torch draws
them afresh on every call when it is None). Plain eager calls are torch's own op. Traced or exported, with
the samples given (a module buffer), the windows they give are written as plain max pooling
(``poolport.plan.fractional``: per group of planes with equal windows, Slice + MaxPool + Concat per axis;
the output the Concat of each group's planes), bit-exact (infinities included) in every runtime poolport
checks.

Args:
    input: ``({axes})`` or ``(N, {axes})``, floating dtype.
    kernel_size, output_size, output_ratio, return_indices, _random_samples: as torch's.

Raises:
    PoolportError: (portable path) random samples (None: no graph can equal a random pooling),
        ``return_indices=True``, a bad shape or dtype, a dynamic spatial size, samples of the wrong shape
        or dtype, or arguments torch refuses (output + kernel - 1 > input).
"""

for _d in (2, 3):
    globals()[f"fractional_max_pool{_d}d"].__doc__ = _FRACTIONAL_DOC.format(d=_d, axes=_AXES[_d])
del _d
