"""What a runtime module provides: a ``Runtime`` object named ``RUNTIME``. Everything poolport knows about
one runtime (its name, how to install it, whether it is here, its version, how to run a model in it and
what the progress display says meanwhile) lives in that object; the rest of poolport asks the registry
(``poolport.runtimes.registry``) and never names a runtime itself."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING

from ..onnxfile.files import Model

if TYPE_CHECKING:  # numpy is imported where arrays are made: the command line lists the runtimes at start-up
    import numpy as np

Feeds = dict[str, "np.ndarray"]


@dataclass(frozen=True, repr=False)
class Runtime:
    """One inference runtime that poolport runs ONNX models in, to verify them.

    A runtime module subclasses this, implements ``run`` and makes its one instance, ``RUNTIME``, with the
    facts below. ``available`` imports ``modules``, ``version`` reads the installed ``distributions`` and
    ``run_batch`` runs one model after the other, unless the subclass says otherwise
    (``poolport.runtimes.isolated.IsolatedRuntime`` runs a batch in one worker process).

    Args:
        name: what commands, reports and ``--runtimes`` call it (``"ncnn"``).
        label: how messages name it (``"LiteRT (onnx2tf)"``).
        install: what installs it, for "not installed" messages.
        activity: what the progress display says while it converts and runs a model.
        order: where it stands in ``registry.NAMES`` (tables, the default order of ``check`` and
            ``probe``); ONNX Runtime, the reference, comes first.
        distributions: the packages whose versions make up ``version()``, in pipeline order (pnnx, then
            ncnn).
        modules: what must import for the runtime to be there.
        aliases: other names ``legalize --target`` accepts for it (``tflite`` for ``litert``).
    """

    name: str
    label: str
    install: str
    activity: str
    order: int
    distributions: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether the runtime is installed here: every one of ``modules`` imports (an installed but broken
        package does not count)."""
        try:
            for module in self.modules:
                importlib.import_module(module)
        except ImportError:
            return False
        return True

    def missing(self) -> str:
        """Why ``available()`` is False, for messages: by default what installs the runtime; a runtime
        that looks for its environment in several places names them."""
        return self.install

    def version(self) -> str:
        """The installed version ('' if not installed): one distribution's version, or several as
        ``pnnx 20240819 -> ncnn 1.0.20240820``."""
        parts = []
        for dist in self.distributions:
            try:
                found = dist_version(dist)
            except PackageNotFoundError:
                return ""
            parts.append(f"{dist} {found}" if len(self.distributions) > 1 else found)
        return " -> ".join(parts)

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` (an ONNX ModelProto or file) run on ``feeds`` (input name to array): its outputs in
        order. Raises whatever the runtime raises when it refuses the model (a PoolportError where poolport
        can say more)."""
        raise NotImplementedError

    def run_batch(self, items: list[tuple[Model, Feeds]]) -> list[list[np.ndarray] | Exception]:
        """Each ``(model, feeds)`` of ``items``: its outputs, or the exception that says why the runtime
        refused it."""
        answers: list[list[np.ndarray] | Exception] = []
        for model, feeds in items:
            try:
                answers.append(self.run(model, feeds))
            except Exception as e:  # a refusal, reported per model
                answers.append(e)
        return answers

    def run_sizes(self, model: Model, feeds: list[Feeds]) -> tuple[list[list[np.ndarray] | Exception], str]:
        """One model on several input sets (a model with dynamic sizes, at each size verification picked):
        per set its outputs or the exception that says why the runtime refused it, and a note on how they
        were run where the caller should hear it ('' otherwise). By default ``run_batch``; a runtime that
        converts the model first (ncnn through pnnx) converts it once for every size where it can."""
        return self.run_batch([(model, f) for f in feeds]), ""

    def __repr__(self) -> str:
        return f"<runtime {self.name}>"
