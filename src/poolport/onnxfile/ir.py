"""The IR version policy: a model is published at the oldest ONNX IR version that carries its opset (the
version the most runtimes load; pnnx's ONNX Runtime takes IR <= 13), unless onnx.checker finds that the
model needs a newer one."""

from __future__ import annotations

from ..errors import PoolportError
from .graph import opset_of
from .staging import Staged, check


def minimal_ir_version(opset: int) -> int:
    """The oldest ONNX IR version that carries ``opset``: what the most runtimes load."""
    import onnx

    return min(ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset)


def check_lowest_ir(staged: Staged) -> None:
    """onnx.checker on the staged model, at the oldest IR version that carries its opset (what the
    most runtimes load: pnnx's ONNX Runtime takes IR <= 13) when the model allows, else at the
    exporter's own version."""
    original = staged.proto.ir_version
    opset = opset_of(staged.proto)
    if opset is not None and minimal_ir_version(opset) < original:
        staged.set_ir_version(minimal_ir_version(opset))
        try:
            check(staged)
            return
        except PoolportError:  # a newer-IR feature is in use: keep the exporter's version
            staged.set_ir_version(original)
    check(staged)
