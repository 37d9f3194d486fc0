"""The runtimes poolport knows: every module ``*_rt.py`` in this package, each with its ``RUNTIME``
(a ``poolport.runtimes.base.Runtime``). Adding a runtime is adding such a module; every command,
report and check asks here.

Import-light: no runtime is imported until one is asked whether it is installed, or to run."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PoolportError
from ..onnxfile.files import Model
from .base import Feeds, Runtime

if TYPE_CHECKING:
    import numpy as np


def _discover() -> dict[str, Runtime]:
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.endswith("_rt"):
            found.append(importlib.import_module(f"{__package__}.{info.name}").RUNTIME)
    return {rt.name: rt for rt in sorted(found, key=lambda rt: (rt.order, rt.name))}


RUNTIMES: dict[str, Runtime] = _discover()
NAMES: tuple[str, ...] = tuple(RUNTIMES)  # "onnxruntime", "openvino", "ncnn", "mnn", "litert"
ALIASES: dict[str, str] = {alias: rt.name for rt in RUNTIMES.values() for alias in rt.aliases}  # tflite: litert
RUNNERS: dict[str, Callable[[Model, Feeds], list[np.ndarray]]] = {name: rt.run for name, rt in RUNTIMES.items()}


def get(name: str) -> Runtime:
    """The runtime called ``name``. Raises PoolportError for a name poolport does not know."""
    select((name,))
    return RUNTIMES[name]


def select(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, each a runtime poolport knows. Raises PoolportError naming the others."""
    names = tuple(names)
    unknown = [r for r in names if r not in RUNTIMES]
    if unknown:
        raise PoolportError(f"unknown runtime {', '.join(unknown)}: choose from {', '.join(NAMES)}.")
    return names


def available(name: str) -> bool:
    """Whether the runtime ``name`` (one of ``NAMES``) is installed here (False for a name it does not know)."""
    return name in RUNTIMES and RUNTIMES[name].available()


def version(name: str) -> str:
    """The installed version of runtime ``name`` ('' if not installed)."""
    return RUNTIMES[name].version() if name in RUNTIMES else ""


def run(name: str, model: Model, feeds: Feeds) -> list[np.ndarray]:
    """``model`` run on ``feeds`` in runtime ``name``: its outputs (the runtime's exception if it refuses)."""
    return RUNNERS[name](model, feeds)


def run_batch(name: str, items: list[tuple[Model, Feeds]]) -> list[list[np.ndarray] | Exception]:
    """Each ``(model, feeds)`` of ``items`` in runtime ``name``: its outputs, or the exception that says why
    the runtime refused it. MNN and LiteRT run the whole batch in one worker process."""
    return get(name).run_batch(items)


def run_sizes(name: str, model: Model, feeds: list[Feeds]) -> tuple[list[list[np.ndarray] | Exception], str]:
    """``model`` on each of ``feeds`` (one model at several input sizes) in runtime ``name``: per set its
    outputs or the exception that says why the runtime refused it, and a note on how ('' if nothing to
    say). ncnn converts a model with dynamic sizes once for all of them where pnnx can."""
    return get(name).run_sizes(model, feeds)
