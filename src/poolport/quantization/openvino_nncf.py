"""OpenVINO post-training quantization with NNCF of poolport's ONNX models.

What ``nncf.quantize`` does with adaptive average pooling (measured with nncf 3.4.0 and openvino 2026.4.1,
docs/quantization.md): OpenVINO's own AdaptiveAvgPool (``openvino.convert_model`` of the PyTorch model)
is left in float: the dequantized input is pooled exactly and rounded once, at the next quantized layer.
In poolport's plan NNCF quantizes each run's AvgPool and the Concat between two passes, so a two-pass
plan rounds after each pass: about 10% more model error on a VGG-style classifier whose pooled values go
straight into its linear layers (a PSPNet-style head: 1%).

``quantize`` is ``nncf.quantize`` with the average-pooling plans added to the ignored scope, so that they
compute in float as OpenVINO's own op does; everything else (the user's layers, max pooling, whose int8
form is exact) is quantized as NNCF would. ``plan_nodes`` lists what it ignores.
"""

from __future__ import annotations

from ..errors import PoolportError

SLICES = ("StridedSlice", "Slice")


def _producer(port):
    return port.get_source_output().get_node()


def _readers(node):
    return [target.get_node() for output in node.outputs() for target in output.get_target_inputs()]


def plan_nodes(model) -> list[str]:
    """The friendly names of the average-pooling plans' nodes in an ``openvino.Model``: each AvgPool fed
    by a slice, the slices feeding them, and each Concat whose every input is such an AvgPool. A lone
    AvgPool on an unsliced tensor (a uniform plan, or the user's own) is not listed: NNCF quantizes it as
    it would the user's.

    Args:
        model: an ``openvino.Model`` (e.g. ``openvino.Core().read_model("model.onnx")``).
    """
    names: list[str] = []
    seen: set[str] = set()

    def add(node):
        name = node.get_friendly_name()
        if name not in seen:
            seen.add(name)
            names.append(name)

    pools = []
    for node in model.get_ordered_ops():
        if node.get_type_name() == "AvgPool" and _producer(node.input(0)).get_type_name() in SLICES:
            pools.append(node)
            add(node)
            add(_producer(node.input(0)))
    pooled = {p.get_friendly_name() for p in pools}
    for node in model.get_ordered_ops():
        if node.get_type_name() == "Concat" and all(_producer(i).get_friendly_name() in pooled
                                                    for i in node.inputs()):
            add(node)
    return names


def quantize(model, calibration_dataset, **kwargs):
    """``nncf.quantize(model, calibration_dataset, **kwargs)`` with ``plan_nodes(model)`` added to the
    ignored scope (the user's ``ignored_scope``, if any, is kept and extended).

    Args:
        model: an ``openvino.Model`` read from poolport's ONNX file.
        calibration_dataset: an ``nncf.Dataset``.
        **kwargs: passed to ``nncf.quantize`` (``preset``, ``subset_size``, ``ignored_scope``, ...).

    Returns:
        The quantized ``openvino.Model``.

    Raises:
        PoolportError: nncf is not installed.
    """
    try:
        import nncf
    except ImportError as exc:
        raise PoolportError("quantization: nncf is not installed: pip install 'poolport[nncf]' "
                            "(nncf 3.4.0, measured with openvino 2026.4.1).") from exc
    names = plan_nodes(model)
    user = kwargs.pop("ignored_scope", None)
    if user is None:
        scope = nncf.IgnoredScope(names=names, validate=False)
    else:
        scope = nncf.IgnoredScope(names=list(user.names) + [n for n in names if n not in user.names],
                                  patterns=list(user.patterns), types=list(user.types),
                                  subgraphs=list(user.subgraphs), validate=user.validate)
    return nncf.quantize(model, calibration_dataset, ignored_scope=scope, **kwargs)
