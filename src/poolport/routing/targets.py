"""Which formulation each target gets: the style a static plan is written in (``plan.pooling.STYLES``).

A runtime's constraint applies only to the targets that have it:

* ``"edge"`` for LiteRT (``litert``/``tflite``: its XNNPACK delegate takes a CONCATENATION of at most 5
  inputs), ExecuTorch (``executorch``: its XNNPACK partitioner leaves a concat that lists one tensor twice
  outside the delegate) and litert-torch (``litert-torch``: both), and for ``all`` (every target's
  constraints at once);
* ``"default"`` for every other runtime (``onnxruntime``, ``openvino``, ``ncnn``, ``mnn``) and for no target:
  one Concat per pass, the fewest nodes;
* ``auto``: ``"edge"`` if one of the runtimes in question (those verified in, else every installed one)
  needs it, else ``"default"``.

``"default"`` and ``"edge"`` themselves are accepted as targets too. Import-light (the command line lists
the targets at start-up): no torch here."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import PoolportError
from ..plan.pooling import STYLES
from ..runtimes.registry import ALIASES, NAMES, available

# PyTorch's own edge converters (no ONNX): what make_portable / patch are used ahead of
TORCH_EDGE = ("executorch", "litert-torch")
EDGE = ("litert", *TORCH_EDGE, "all")
TARGETS = (*STYLES, "all", "auto", *NAMES, *ALIASES, *TORCH_EDGE)


def style_for(target: str | None, runtimes: Iterable[str] | None = None, default: str = "default") -> str:
    """The style of plans written for ``target`` (see the module's docstring); ``default`` for None.
    ``runtimes`` are what ``auto`` decides by (None: every installed runtime).

    Raises:
        PoolportError: a target not in ``TARGETS``.
    """
    if target is None:
        return default
    if target not in TARGETS:
        raise PoolportError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}.")
    if target in STYLES:
        return target
    if target == "auto":
        if runtimes is not None:
            return "edge" if any(style_for(n) == "edge" for n in runtimes) else "default"
        # only the runtimes that need the edge style decide: asking those alone whether they are installed
        # keeps `poolport plan --target auto` from importing every runtime (onnxruntime, OpenVINO, ncnn)
        return "edge" if any(style_for(n) == "edge" and available(n) for n in NAMES) else "default"
    return "edge" if ALIASES.get(target, target) in EDGE else "default"
