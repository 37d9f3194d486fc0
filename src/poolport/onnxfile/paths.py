"""Where a command may write: the one place that decides every path a command writes (its outputs, the
data files beside them, the folders it fills), against everything the command reads, before any work.

A command builds one ``WritePlan``: ``reads`` each file it reads (``reads_model`` for an ONNX model, which
brings the external data files the model names), ``writes`` each file it writes (a model brings
``<name>.data`` beside it, see ``onnxfile.files.data_file``), ``fills`` a folder it creates if missing,
then ``check``\\s once. The plan refuses, with a PoolportError naming both paths:

* an output that is a file the command reads, with or without ``overwrite`` (``--force`` never replaces an
  input);
* two outputs on one file;
* an existing file without ``overwrite``, a folder where a file goes, a missing or read-only folder.

Files are compared as the file system sees them: by device and inode where they exist (so symlinks and
hard links count as the file they lead to), else by their real path. The staging folders and temporary
files a command writes beside an output are made by ``tempfile`` with fresh names (``staging``): they can
never be an existing file; the check that their folder is writable is the output's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PoolportError
from .files import data_file, external_data_files


@dataclass(frozen=True)
class Named:
    """A path a command reads or writes. ``what`` says which argument names it and ``label`` is the two
    together, for messages. ``certain``: the file is written whatever happens (False: only in some cases,
    e.g. a model's data file when the model turns out to be over 2 GB)."""

    path: Path
    what: str
    label: str
    certain: bool = True


def _label(what: str, path: Path) -> str:
    return f"{what} {path}" if what else str(path)


def identity(path: Path):
    """What makes two paths one file: device and inode of an existing file (through symlinks), else the
    real path."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return os.path.normcase(os.path.realpath(path))
    return (st.st_dev, st.st_ino)


@dataclass
class WritePlan:
    """Every file one command invocation reads and writes, checked together before it does any work.

    Args:
        overwrite: whether an existing output may be replaced (``--force``; never an input).

    Example::

        plan = WritePlan(overwrite=args.force)
        plan.reads_model(args.input, "MODEL")
        out = plan.writes(args.output, "-o", data=None)
        plan.check()      # raises PoolportError before anything runs
    """

    overwrite: bool = False
    inputs: list[Named] = field(default_factory=list)
    outputs: list[Named] = field(default_factory=list)
    folders: list[Named] = field(default_factory=list)

    def reads(self, path: str | os.PathLike, what: str) -> Path:
        """Record a file the command reads (``what``: the argument that names it). Returns it as a Path. A
        path that is not a file is left to the command to report."""
        path = Path(path)
        if path.is_file():
            self.inputs.append(Named(path, what, _label(what, path)))
        return path

    def reads_model(self, path: str | os.PathLike, what: str) -> Path:
        """Record an ONNX model the command reads, with every external data file it names."""
        path = self.reads(path, what)
        if path.is_file():
            owner = f"the external data of {_label(what, path)}"
            self.inputs += [Named(f, owner, f"{f} ({owner})") for f in external_data_files(path)]
        return path

    def writes(self, path: str | os.PathLike, what: str, data: bool | None = False) -> Path:
        """Record a file the command writes (``what``: the argument that names it); with ``data`` (a
        model), also its data file ``<name>.data``: ``True`` written for sure, ``None`` only if the model
        needs it (over 2 GB), ``False`` never. Returns the path as a Path."""
        path = Path(path)
        label = _label(what, path)
        self.outputs.append(Named(path, what, label))
        if data is not False:
            beside = f"the weights file beside {label}"
            self.outputs.append(Named(data_file(path), beside, f"{data_file(path)} ({beside})", certain=bool(data)))
        return path

    def fills(self, folder: str | os.PathLike, what: str) -> Path:
        """Record a folder the command writes files into, made (with its parents) if missing: it must not
        be a file, and the nearest existing folder above it must be writable. Files in it go by
        ``writes``."""
        folder = Path(folder)
        self.folders.append(Named(folder, what, _label(what, folder)))
        return folder

    def check(self) -> None:
        """Refuse, before any work, what would lose a file or fail half-way.

        Raises:
            PoolportError: an output that is an input (even with ``overwrite``), two outputs on one file,
                an existing output without ``overwrite``, a folder where a file goes (or a file where a
                folder goes), a missing or read-only folder.
        """
        read = {}
        for i in self.inputs:
            read.setdefault(identity(i.path), i)
        written: dict = {}
        for out in self.outputs:
            key = identity(out.path)
            source = read.get(key)
            if source is not None:
                same = "" if os.path.abspath(source.path) == os.path.abspath(out.path) else " (the same file)"
                raise PoolportError(
                    f"{out.label} is {source.label}{same}, which this command reads; "
                    + ("--force never replaces an input file; " if self.overwrite else "")
                    + "write to another path."
                )
            other = written.get(key)
            if other is not None:
                maybe = "" if other.certain and out.certain else " (where the weights go for a model over 2 GB)"
                raise PoolportError(f"{out.what or out.path} and {other.what or other.path} would both be {out.path}"
                                    f"{maybe}; give them different names.")
            written[key] = out
        for folder in self.folders:
            self._check_folder(folder)
        filled = {identity(f.path) for f in self.folders}
        for out in self.outputs:
            self._check_file(out, identity(out.path.parent) in filled)

    def _check_file(self, out: Named, made: bool) -> None:
        path = out.path
        if not out.certain:
            return  # written only in some cases: it must not clash (checked), the rest is the model's check
        if path.is_dir():
            raise PoolportError(f"{out.label} is a folder; give a file name such as {path / 'model.onnx'}.")
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            raise PoolportError(f"{path} already exists; pass overwrite=True (--force) to replace it.")
        if made and not path.parent.exists():
            return  # in a folder the command makes; checked by _check_folder
        if not path.parent.exists():
            raise PoolportError(f"folder {path.parent} does not exist.")
        if not path.parent.is_dir():
            raise PoolportError(f"{path.parent} is a file, not a folder; choose another path for {out.label}.")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise PoolportError(f"cannot write to folder {path.parent}; choose another output path.")

    @staticmethod
    def _check_folder(folder: Named) -> None:
        path = folder.path
        if path.exists() and not path.is_dir():
            raise PoolportError(f"{folder.label} is a file, not a folder; give a folder (made if missing).")
        existing = path
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise PoolportError(f"cannot make folder {path}: {existing} is a file.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PoolportError(f"cannot write to folder {existing}; choose another folder than {folder.label}.")

