"""Load the MODEL argument of ``poolport convert``: a Python factory, a torch.export archive (.pt2)
or a TorchScript file. Never unpickles arbitrary objects unless explicitly allowed.

TorchScript files keep their graphs out of Python's reach: their adaptive pooling is converted by
custom ONNX symbolics (``backend.onnx_symbolic``) during the TorchScript exporter."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import PoolportError, one_line


@dataclass
class Loaded:
    """A model loaded from the command line, with what poolport learnt while loading it."""

    model: torch.nn.Module
    kind: str  # "factory" | "torch.export" | "torchscript" | "pickle"
    name: str
    example_inputs: tuple | None = None
    notes: list[str] = field(default_factory=list)


def parse_kwargs(text: str | None) -> dict:
    """``--kwargs`` JSON as a dict of keyword arguments for a factory."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as e:
        raise PoolportError(f"--kwargs is not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(kwargs, dict):
        raise PoolportError(f"--kwargs must be a JSON object such as '{{\"num_classes\": 10}}', got {text!r}.")
    return kwargs


def raised(e: BaseException) -> str:
    """What the user's code raised, in one line: the exception's type and the first line of its message
    (a SyntaxError's names the file and the line)."""
    if isinstance(e, SystemExit):
        return f"it called exit({e.code!r})"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def load_factory(spec: str, kwargs: dict) -> Loaded:
    """``package.module:callable`` or ``path/to/file.py:callable``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise PoolportError(f"{spec!r} is not a factory like torchvision.models:vgg11 or models.py:build.")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise PoolportError(f"{path} does not exist.")
        mspec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mspec)
        try:
            mspec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # the user's code: its errors are input errors, not poolport's
            raise PoolportError(f"cannot load {path} for {spec!r}: {raised(e)}") from None
    else:
        try:
            module = importlib.import_module(target)
        except (Exception, SystemExit) as e:  # a missing module, or one that fails as it runs
            raise PoolportError(f"cannot import {target!r} for {spec!r}: {raised(e)}") from None
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise PoolportError(f"{target!r} has no attribute {attr!r}.")
        factory = getattr(factory, part)
    if isinstance(factory, torch.nn.Module):
        model = factory
    elif callable(factory):
        try:
            model = factory(**kwargs)
        except (Exception, SystemExit) as e:  # wrong keyword arguments, or the factory's own failure
            raise PoolportError(f"{spec}(**{kwargs}) failed: {raised(e)}") from None
    else:
        raise PoolportError(f"{spec!r} is neither a callable nor an nn.Module.")
    if not isinstance(model, torch.nn.Module):
        raise PoolportError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module.")
    return Loaded(model.eval(), "factory", attr.split(".")[-1])


def load_export_archive(path: Path) -> Loaded:
    """A torch.export archive as a GraphModule, its adaptive pooling nodes rewritten to poolport's."""
    from ..routing.fx_graph import rewrite_adaptive

    try:
        ep = torch.export.load(str(path))
    except Exception as e:
        raise PoolportError(f"{path} is not a loadable torch.export archive: {type(e).__name__}: {e}") from None
    gm = ep.module()
    changes = rewrite_adaptive(gm)
    example = None
    if getattr(ep, "example_inputs", None):
        args, _kwargs = ep.example_inputs
        example = tuple(args)
    return Loaded(gm, "torch.export", path.stem, example, [str(c) for c in changes])


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with code/ and constants.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names) and any(
        n.endswith("constants.pkl") for n in names
    )


ARCHIVE_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".zip")  # TorchScript or a pickle


def named_file(spec: str) -> Path | None:
    """The file MODEL ``spec`` names itself (a ``.pt2`` archive, a TorchScript or pickle file), or None
    for a factory."""
    path = Path(spec)
    if path.suffix == ".pt2" or path.suffix in ARCHIVE_SUFFIXES or (path.is_file() and ":" not in spec):
        return path
    return None


def module_origin(name: str) -> Path | None:
    """The source file of module ``name``, found the way ``import`` finds it (``sys.meta_path``) but
    without running any of it (None if it is not found or has no file)."""
    module = sys.modules.get(name)
    if module is not None:
        origin = getattr(module, "__file__", None)
        return Path(origin) if origin else None
    spec, search, parts = None, None, name.split(".")
    for i in range(len(parts)):
        if i and search is None:
            return None  # a module, not a package, with a dotted name below it
        spec = _find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
    return Path(spec.origin) if spec.has_location and spec.origin else None


def _find_spec(name: str, search):
    for finder in sys.meta_path:
        try:
            spec = finder.find_spec(name, search)
        except (AttributeError, ImportError, ValueError, TypeError):
            continue
        if spec is not None:
            return spec
    return None


def model_files(spec: str) -> list[Path]:
    """The files loading MODEL ``spec`` reads, which a command must never write over: the file MODEL
    names (``.pt2``, TorchScript, pickle), a factory's ``.py`` file, or the source file of a factory's
    module."""
    path = named_file(spec)
    if path is not None:
        return [path]
    target = spec.rpartition(":")[0]
    if target.endswith(".py"):
        return [Path(target)]
    origin = module_origin(target) if target else None
    return [origin] if origin else []


def load_model(spec: str, kwargs: dict | None = None, allow_pickle: bool = False) -> Loaded:
    """Load MODEL: ``package.module:callable``, ``file.py:callable``, a ``.pt2`` archive, a TorchScript
    file or (only with ``allow_pickle``) a pickled ``nn.Module``."""
    path = named_file(spec)
    if path is None:
        return load_factory(spec, kwargs or {})
    if path.is_dir():
        raise PoolportError(f"{path} is a folder, not a file: give the model file itself.")
    if not path.is_file():
        raise PoolportError(f"{path} does not exist.")
    if path.suffix == ".pt2":
        return load_export_archive(path)
    unreadable = damaged(path)
    if unreadable:
        raise PoolportError(f"{path} {unreadable}: not a TorchScript archive nor a torch.save file poolport can "
                            f"load. Save it again (torch.jit.save, torch.save) or give the factory that builds "
                            f"the model (package.module:callable).")
    if is_torchscript(path):
        return load_torchscript(path)
    return load_pickle(path, allow_pickle)


ZIP_MAGIC = b"PK\x03\x04"  # TorchScript and torch.save (since PyTorch 1.6) write zip archives


def damaged(path: Path) -> str:
    """What is wrong with a model file that cannot be a model at all ('' if nothing visible): empty, or
    a zip archive (as TorchScript and torch.save write) that is truncated or corrupt."""
    if path.stat().st_size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as z:
                z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            return f"is a damaged zip archive, truncated or corrupt ({e})"
    return ""


UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")  # torch's weights-only refusal


def load_failure(e: BaseException) -> str:
    """Why torch.load failed, in a few words: the weights-only unpickler's own finding, else the first
    line of the message (torch.load's go on for paragraphs of advice)."""
    text = str(e)
    _, found, finding = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (finding if found else text).splitlines() if line.strip()]
    return f"{type(e).__name__}: {one_line(lines[0] if lines else '', 200).rstrip('.')}"


def load_pickle(path: Path, allow_pickle: bool) -> Loaded:
    """A pickled ``nn.Module``, loaded weights-only unless the user trusts the file."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:
        # only a class the weights-only unpickler will not import (an nn.Module's) is worth --trust-pickle;
        # anything else is a file torch.load cannot read either way
        refused = None if allow_pickle else UNSUPPORTED_GLOBAL.search(str(e))
        if refused is None:
            raise PoolportError(f"{path} cannot be read by torch.load: it is corrupt or not a PyTorch file "
                                f"({load_failure(e)}).") from None
        raise PoolportError(
            f"{path} is a pickled object (it names {refused[1]}) that a weights-only load refuses. Unpickling "
            f"runs arbitrary code: if you trust the file, pass --trust-pickle; otherwise export it as a "
            f"factory (package.module:callable), a torch.export archive (.pt2) or TorchScript."
        ) from None
    if isinstance(obj, torch.nn.Module):
        return Loaded(obj.eval(), "pickle", path.stem)
    if isinstance(obj, dict):
        raise PoolportError(
            f"{path} holds a state_dict (weights without the architecture); give the factory that builds "
            f"the model instead, e.g. torchvision.models:resnet18."
        )
    raise PoolportError(f"{path} holds a {type(obj).__name__}, not a model.")


def load_torchscript(path: Path) -> Loaded:
    """A TorchScript file, in eval mode."""
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise PoolportError(f"{path} is not a loadable TorchScript file: {type(e).__name__}: {e}") from None
    return Loaded(model.eval(), "torchscript", path.stem, notes=["TorchScript: pooling converted by ONNX symbolics"])


def is_scripted(model) -> bool:
    """Whether ``model`` is a TorchScript module (exported with the TorchScript exporter only)."""
    return isinstance(model, torch.jit.ScriptModule)
