"""The runtimes poolport knows how to legalize for (``poolport legalize --target``): ``all`` (every rule),
``auto`` (probe the installed runtimes with ``poolport probe`` and rewrite what they get wrong) and every
runtime of the registry, by its name or an alias (``tflite`` is ``litert``). A separate, import-light module
so the command line can list them without importing onnx."""

from ..runtimes.registry import NAMES, get

TARGETS = ("all", "auto", *(n for runtime in NAMES for n in (runtime, *get(runtime).aliases)))
