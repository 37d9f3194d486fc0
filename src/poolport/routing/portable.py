"""``make_portable``: a copy of any model whose adaptive pooling is poolport's, at no eager cost.

Two mechanisms, both on the copy only (the original is never touched):

* modules whose class is exactly one of torch's ``nn.Adaptive{Avg,Max}Pool{1,2,3}d`` become the
  poolport class of the same name (same state and repr) and remember their path for reports;
* the root module gets a forward pre-hook/post-hook pair that, whenever something records the graph
  (tracing, export, compile, a verification pass, ``always_portable()``), runs the forward inside
  ``PortableFunctionMode``: functional calls inside any ``forward`` (torchvision DenseNet, timm heads,
  subclasses of the pooling modules) are answered by poolport too. Plain eager calls skip it.

Strict ``torch.export`` (Dynamo) does not run Python hooks' torch-function modes: module sites are
still converted there, functional ones need ``with poolport.patch():`` around the export.
"""

from __future__ import annotations

import contextlib
import copy
import threading

import torch
import torch.fx
from torch import nn

from ..errors import PoolportError
from ..functional import pools
from ..functional.dispatch import active_observer, emitting, graph_is_recorded
from .intercept import PortableFunctionMode
from .swap import swap_modules
from .targets import style_for

_hooks = threading.local()


def _routing_needed(args) -> bool:
    if torch.compiler.is_dynamo_compiling():
        return False  # Dynamo ignores modes entered here; module swaps still apply
    if active_observer() is not None:
        return True
    if graph_is_recorded():
        return True
    return any(isinstance(a, torch.Tensor) and type(a) is not torch.Tensor for a in args)


def _enter(module, args):
    stack = _hooks.__dict__.setdefault("stack", [])
    scope = None
    if _routing_needed(args):
        scope = contextlib.ExitStack()
        scope.enter_context(emitting(getattr(module, "_poolport_style", "edge")))
        scope.enter_context(PortableFunctionMode())
        # fractional pooling's samples are read from these while torch.export traces (fakes then)
        scope.enter_context(pools.model_buffers(module.__dict__.get("_poolport_buffers", ())))
    stack.append(scope)


def _exit(module, args, output):
    stack = _hooks.__dict__.get("stack")
    if not stack:  # the pre-hook never ran (an earlier pre-hook raised)
        return
    scope = stack.pop()
    if scope is not None:
        scope.close()


def without_routing_hooks(model: nn.Module) -> nn.Module:
    """A copy of a portable ``model`` (sharing its weights) without the root hooks ``make_portable``
    registered: what ``torch.jit.script`` compiles."""
    plain = structural_copy(model)
    for hooks in (plain._forward_pre_hooks, plain._forward_hooks):
        for key in [k for k, fn in hooks.items() if fn in (_enter, _exit)]:
            del hooks[key]
            plain._forward_hooks_always_called.pop(key, None)
    plain.__dict__.pop("__prepare_scriptable__", None)
    return plain


def is_portable(model: nn.Module) -> bool:
    """Whether ``model`` is a copy made by ``make_portable``."""
    return bool(getattr(model, "_poolport_portable", False))


def structural_copy(module: nn.Module) -> nn.Module:
    """New module objects all the way down (so classes, flags and hooks can change on the copy), sharing
    every parameter, buffer and other attribute value with ``module``. Much cheaper than deepcopy."""
    new = copy.copy(module)  # a new object with a new __dict__ holding the same values
    for name in ("_parameters", "_buffers", "_non_persistent_buffers_set", "_forward_hooks",
                 "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
                 "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks",
                 "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                 "_load_state_dict_post_hooks"):
        value = module.__dict__.get(name)
        if value is not None:
            new.__dict__[name] = copy.copy(value)
    new.__dict__["_modules"] = {k: None if m is None else structural_copy(m) for k, m in module._modules.items()}
    return new


def make_portable(model: nn.Module, example_inputs=None, *, share_weights: bool = False,
                  target: str | None = None) -> nn.Module:
    """Return a copy of ``model`` whose adaptive pooling traces and exports to portable operators.

    With ``example_inputs`` (a tensor or a tuple of them), the copy is also run once in a
    verification pass; ``poolport.verify_sites(copy, example_inputs)`` gives the per-site report.
    ``share_weights=True`` copies the module objects but shares parameters, buffers and other attribute
    values with the original (much cheaper; for read-only uses such as exporting: training the copy
    would change the original).

    ``target`` (``poolport.routing.targets.TARGETS``) chooses how the copy's plans are written when it is
    traced or exported: by default the edge style, which ExecuTorch's and LiteRT's XNNPACK delegates take
    whole (one partition, at most 5 inputs per concatenation), since ``make_portable`` is what goes ahead
    of torch-side converters; ``target="onnxruntime"`` (or ``"openvino"``, ``"default"``, ...) the plain form
    with the fewest nodes, which ``export_onnx`` writes unless its own ``target`` needs the edge style.
    Strict ``torch.export`` (Dynamo) applies it to the swapped modules only; other calls there are
    written in the default style.

    Raises:
        PoolportError: ``model`` is not an ``nn.Module``, or an unknown ``target``.
    """
    style = style_for(target, default="edge")
    if not isinstance(model, nn.Module):
        raise PoolportError(
            f"make_portable: expected a torch.nn.Module, got {type(model).__name__}; for a TorchScript "
            f"or torch.export file use `poolport convert`."
        )
    # GraphModules rebuild themselves on copy.copy (losing attributes torch.export set): deep-copy those
    shallow_ok = share_weights and not any(isinstance(m, torch.fx.GraphModule) for m in model.modules())
    portable = structural_copy(model) if shallow_ok else copy.deepcopy(model)
    if not is_portable(portable):
        swap_modules(portable, style)
        portable.register_forward_pre_hook(_enter)
        portable.register_forward_hook(_exit, always_call=True)
        portable._poolport_portable = True
        portable._poolport_buffers = tuple(portable.buffers())  # the real ones (pools.model_buffers)
        # torch.jit.script calls this first: the routing hooks are Python, and scripted, the swapped
        # modules run torch's native op anyway (poolport convert then writes it portably)
        portable.__prepare_scriptable__ = lambda: without_routing_hooks(portable)
    else:  # a copy of a copy: its swapped modules take this target's style
        for module in portable.modules():
            if "_poolport_site" in module.__dict__:
                module._poolport_style = style
    portable._poolport_style = style
    if example_inputs is not None:
        from ..verify.in_pytorch import verify_sites

        verify_sites(portable, example_inputs)
    return portable
