"""When poolport takes its portable path and when eager code may use the native op.

The portable path (plain pooling, slicing, concatenation) is exactly what gets traced and exported.
Plain eager execution may call PyTorch's native adaptive op instead: same numbers, no overhead.
The portable path is taken whenever anything could be recording the graph:

* ``torch.jit.trace`` (also under ``openvino.convert_model`` and pnnx), the TorchScript ONNX exporter;
* ``torch.export`` / the dynamo ONNX exporter / ``torch.compile`` (Dynamo, strict or not);
* any tensor that is not a plain ``torch.Tensor`` (FakeTensor, functional tensors, subclasses);
* inside ``always_portable()`` -- used by ``poolport.patch()`` around tools that run eager code
  while converting (torch2trt, litert-torch), and by the tests to check the portable path itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import torch

from ..plan.pooling import check_style

_state = threading.local()


def _forced() -> bool:
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def always_portable():
    """Within this block every poolport call takes the portable path, even in plain eager mode."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


@contextlib.contextmanager
def size_generic():
    """Within this block the portable path uses the size-generic formulation (``plan.generic``) even at
    static sizes: what a graph with dynamic H/W computes. Used by verification passes of dynamic
    exports and by the tests, to check that formulation in eager mode."""
    _state.generic = getattr(_state, "generic", 0) + 1
    try:
        with always_portable():
            yield
    finally:
        _state.generic -= 1


def size_generic_forced() -> bool:
    """Whether ``size_generic()`` is active on this thread."""
    return getattr(_state, "generic", 0) > 0


@contextlib.contextmanager
def emitting(style: str):
    """Within this block the portable path writes its plans in ``style`` (``plan.pooling.STYLES``:
    ``"default"``, the fewest nodes, or ``"edge"``, for the XNNPACK delegates of LiteRT and ExecuTorch)
    wherever the caller does not name one. ``make_portable``/``patch`` and ``export_onnx`` enter it for
    their target. Outside any such block: ``"default"``."""
    previous = current_style()
    _state.style = check_style(style)
    try:
        yield
    finally:
        _state.style = previous


def current_style() -> str:
    """The style ``emitting()`` set on this thread (``"default"`` outside it)."""
    return getattr(_state, "style", "default")


def graph_is_recorded() -> bool:
    """True while something may be recording the graph (or ``always_portable()`` is active).
    (The TorchScript ONNX exporter traces, so ``torch.jit.is_tracing()`` covers it.)"""
    if torch.compiler.is_compiling():  # first: Dynamo folds it to a constant
        return True
    return torch.jit.is_tracing() or torch.jit.is_scripting() or _forced()


def use_portable(x: torch.Tensor) -> bool:
    """True unless this is a plain eager call on a plain tensor with nothing recording."""
    return graph_is_recorded() or type(x) is not torch.Tensor


# An observer sees every portable pooling call and chooses the tensor the model continues with.
# ``poolport.verify`` installs one for its verification pass (it compares each call with the native
# op); the primitives only know that somebody may be watching, not what for.
Observer = Callable[..., torch.Tensor]


def active_observer() -> Observer | None:
    """The observer installed by ``observing()`` on this thread, if any."""
    return getattr(_state, "observer", None)


@contextlib.contextmanager
def observing(observer: Observer):
    """Install ``observer`` for the block. It is called as ``observer(site, name, x, out_size, plan,
    portable)`` after each portable pooling call, eager only, and returns the tensor to continue with."""
    previous = active_observer()
    _state.observer = observer
    try:
        yield observer
    finally:
        _state.observer = previous


# A refusal poolport raises while an exporter traces must end the export. torch.onnx's dynamo exporter tries
# several capture strategies: when its non-strict trace (which runs poolport's function mode) meets a
# PoolportError it retries with Dynamo, which skips Python torch-function modes, and so wrote torch's own op
# for a call poolport had refused (e.g. max_pool2d(return_indices=True) over a dynamic size for ncnn: a
# ScatterND graph ncnn cannot load, reported as a success). The routing records each refusal here; the
# exporter wrapper raises the first one after the export, whatever strategy succeeded.


@contextlib.contextmanager
def refusals():
    """Collect the PoolportErrors raised by routed pooling calls inside the block (a list, yielded)."""
    previous = getattr(_state, "refusals", None)
    _state.refusals = found = []
    try:
        yield found
    finally:
        _state.refusals = previous


def note_refusal(error: BaseException) -> None:
    """Record ``error`` for an enclosing ``refusals()`` block, if any."""
    found = getattr(_state, "refusals", None)
    if found is not None:
        found.append(error)
