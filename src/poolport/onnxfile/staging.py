"""How an export reaches its destination: staged in a hidden folder beside it, checked there, then
published by renames, so a failed or interrupted export never leaves half a model behind.

In the staging folder a model is a file ``<name>``, with its weights either inside (a TorchScript
export, as torch wrote it) or in ``<name>.data`` beside it (ONNX's external-data format: the dynamo
exporter writes its weights there directly, and models over protobuf's 2 GB limit always go that way).
onnx.checker and ONNX Runtime read the model by path; from a data file ONNX Runtime maps the weights
instead of copying each one out of a protobuf message, and the graph stays small to re-save.

Publishing writes either one self-contained ``.onnx`` file (the default when the model fits in 2 GB:
every runtime loads it) or the graph plus ``<name>.data`` beside it (``external_data=True``, and
always for larger models). The weights are published byte for byte as they were verified.

Which IR version a model is published at is ``ir``'s decision; whether a destination may be written,
``paths``'.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PoolportError, one_line
from .files import data_file, has_external_data

MAX_PROTO_BYTES = 2**31 - 1  # protobuf cannot serialise a message larger than this
EXTERNAL_THRESHOLD = 1024  # tensors of at least this many bytes go to the data file


def _place(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``dst`` atomically; without ``overwrite``, fail if ``dst`` exists (even if it
    appeared meanwhile)."""
    if overwrite:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)  # atomic, and fails if `dst` exists
    except FileExistsError:
        raise PoolportError(f"{dst} already exists; pass overwrite=True (--force) to replace it.") from None
    except OSError:  # no hard links on this file system
        if dst.exists():
            raise PoolportError(f"{dst} already exists; pass overwrite=True (--force) to replace it.") from None
        os.replace(src, dst)
        return
    src.unlink()


def write_atomically(data: bytes, path: Path, overwrite: bool) -> None:
    """Write to a fresh temporary file in the same folder, then rename: readers never see half a file,
    and an interrupted write leaves nothing behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _place(tmp, path, overwrite)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def staging_folder(destination: Path):
    """A hidden folder beside ``destination`` (same file system, so publishing is a rename), removed
    afterwards whatever happens."""
    # the name first, then the folder inside the try: a Ctrl-C that lands just after the folder is made
    # (inside mkdtemp, before it returns) would leave it behind
    folder: Path | None = destination.parent / f".{destination.name}.poolport-{secrets.token_hex(6)}"
    try:
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # another's folder: never removed here
            folder = None
            raise
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Staged:
    """A model in the staging folder. ``path`` holds the graph; its weights are either inside it
    (``self_contained``: a file exactly as the exporter wrote it) or in ``data_file(path)``.
    ``proto`` is the graph in memory; after editing it call ``save_graph``."""

    path: Path
    proto: object  # onnx.ModelProto
    self_contained: bool = False

    @property
    def size(self) -> int:
        """Bytes of the model on disk, weights included."""
        data = data_file(self.path)
        return self.path.stat().st_size + (0 if self.self_contained or not data.exists() else data.stat().st_size)

    def save_graph(self) -> None:
        """Write ``proto`` back to ``path`` (the weights stay where they are)."""
        import onnx

        onnx.save_model(self.proto, str(self.path))

    def set_ir_version(self, ir_version: int) -> None:
        """Set the model's IR version, patching the file's header in place where it can."""
        if self.proto.ir_version == ir_version:
            return
        self.proto.ir_version = ir_version
        if not (self.self_contained and _patch_ir_version(self.path, ir_version)):
            self.save_graph()

    def externalize(self) -> None:
        """Move the weights of a self-contained model out to ``data_file(path)``."""
        if self.self_contained:
            move_weights_out(self.proto, data_file(self.path))
            self.self_contained = False
            self.save_graph()


def _patch_ir_version(path: Path, ir_version: int) -> bool:
    """Rewrite the IR version of a serialised ModelProto in place. Protobuf writes fields in number
    order, so ``ir_version`` (field 1, a varint) is the first two bytes: tag 0x08, then the value.
    Returns False (nothing written) if the file does not start that way."""
    if not 0 < ir_version < 128:
        return False
    with open(path, "r+b") as f:
        head = f.read(2)
        if len(head) != 2 or head[0] != 0x08 or head[1] >= 128:
            return False
        f.seek(1)
        f.write(bytes([ir_version]))
    return True


def stage_proto(proto, folder: Path, name: str) -> Staged:
    """Stage an in-memory ModelProto (weights inline) as ``name`` + ``name.data``."""
    staged = Staged(folder / name, proto)
    move_weights_out(proto, data_file(staged.path))
    staged.save_graph()
    return staged


def stage_file(exported: Path) -> Staged:
    """Stage an ONNX file an exporter wrote in the staging folder. A self-contained file stays as it
    is (it is published byte for byte); a model over 2 GB, for which torch wrote one file per tensor
    beside it, gets its weights gathered into ``data_file(exported)``."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    proto = onnx.load(str(exported), load_external_data=False)
    if not has_external_data(proto):
        return Staged(exported, proto, self_contained=True)
    load_external_data_for_model(proto, str(exported.parent))
    return stage_proto(proto, exported.parent, exported.name)


def move_weights_out(proto, data: Path, alignment: int = 4096) -> None:
    """Write every initializer of at least EXTERNAL_THRESHOLD bytes to ``data`` (ONNX external data,
    its location relative to the model) and drop it from ``proto``. Offsets are page-aligned, so
    ONNX Runtime can map the weights instead of reading them. (One copy of each tensor's bytes, where
    onnx's own helpers take two and reopen the file per tensor.)"""
    import onnx

    with open(data, "wb") as f:
        for t in proto.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or not t.HasField("raw_data"):
                continue
            raw = t.raw_data
            if len(raw) < EXTERNAL_THRESHOLD:
                continue
            offset = -(-f.tell() // alignment) * alignment
            if offset > f.tell():
                f.write(b"\0" * (offset - f.tell()))
            f.write(raw)
            del raw
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            for key, value in (("location", data.name), ("offset", offset), ("length", f.tell() - offset)):
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
    if data.stat().st_size == 0:
        data.unlink()


def check(staged: Staged) -> None:
    """onnx.checker on the staged model, by path; a PoolportError with its whole finding if it fails."""
    import onnx

    try:
        onnx.checker.check_model(str(staged.path))
    except onnx.checker.ValidationError as e:
        raise PoolportError(f"the exported model fails onnx.checker: {one_line(e)}") from e


def publish(staged: Staged, destination: Path, overwrite: bool, external_data: bool | None = None) -> Path | None:
    """Move the staged model to ``destination``: one self-contained file, or (``external_data``, or
    ``None`` and the model is over 2 GB) the graph plus its data file. Returns the data file written,
    if any."""
    import onnx
    from onnx.external_data_helper import convert_model_from_external_data

    too_big = staged.size > MAX_PROTO_BYTES
    if external_data is None:
        external_data = too_big
    if not external_data:
        if too_big:
            raise PoolportError(
                f"the model is {staged.size / 2**30:.1f} GiB, over protobuf's 2 GB limit for one file; "
                "export with external_data=True (--external-data): the weights then go to "
                f"{data_file(destination).name} beside it."
            )
        if staged.self_contained:
            _place(staged.path, destination, overwrite)
            return None
        full = onnx.load(str(staged.path))  # reads the data file back into the graph
        convert_model_from_external_data(full)
        write_atomically(full.SerializeToString(), destination, overwrite)
        return None
    if staged.path.name != destination.name:
        raise PoolportError(f"internal: staged as {staged.path.name}, publishing as {destination.name}")
    staged.externalize()
    staged_data = data_file(staged.path)
    if not overwrite and destination.exists():
        raise PoolportError(f"{destination} already exists; pass overwrite=True (--force) to replace it.")
    if staged_data.exists():
        _place(staged_data, data_file(destination), overwrite)
    else:  # no tensor was big enough to go external
        staged_data = None
    try:
        _place(staged.path, destination, overwrite)  # the graph last: once it is there, so are its weights
    except BaseException:  # Ctrl-C too: no data file without its graph
        if staged_data is not None:
            data_file(destination).unlink(missing_ok=True)
        raise
    return data_file(destination) if staged_data is not None else None
