"""ONNX Runtime static quantization (QDQ) of poolport's plans.

What ``onnxruntime.quantization.quantize_static`` does with a plan (measured with onnxruntime 1.32,
docs/quantization.md): Slice, MaxPool and AveragePool take the scale of their input when that input is
quantized, but Concat is calibrated on its own, and so is every input it quantizes. A plan's Concat then
joins runs quantized at other scales than its output, and each run is requantized (up to half a step of
the output scale each time, twice in a two-pass plan); where the plan's input is left in float (a graph
input, an op the quantizer skips), each run even gets a scale of its own.

``share_pooling_scales`` writes the Concat's output scale and zero point into the QuantizeLinear /
DequantizeLinear pair of each of its inputs when every input is the output of a Slice or a pooling node:
the runs are quantized once, at the scale they are concatenated at, and the Concat is a copy. The Concat's
calibrated range is the union of its inputs' ranges (the same calibration data flows through all of
them), so no run is clipped that was not clipped before. A user's Concat of other tensors is left alone.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from ..errors import PoolportError
from ..onnxfile.files import require_onnx

# the nodes whose outputs a plan concatenates
POOLED = ("Slice", "AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool")


def _quantized_source(name: str, producer: dict):
    """``(QuantizeLinear, op)`` if ``name`` is DequantizeLinear(QuantizeLinear(output of op)), else None."""
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    return q, producer.get(q.input[0])


def share_pooling_scales(model) -> int:
    """Make every Concat of pooled runs in a QDQ-quantized ONNX model take its inputs at its output's
    scale and zero point, in place.

    A Concat qualifies when its output is quantized (one QuantizeLinear) and each of its inputs is
    DequantizeLinear(QuantizeLinear(y)) with ``y`` the output of a Slice, AveragePool, MaxPool,
    GlobalAveragePool or GlobalMaxPool node: that QuantizeLinear and every DequantizeLinear reading it
    then use the Concat's output scale and zero point. Nothing else changes.

    Args:
        model: an ``onnx.ModelProto`` quantized in the QDQ format (``quantize_static(...,
            quant_format=QuantFormat.QDQ)``), s8 or u8 activations.

    Returns:
        The number of Concat inputs rewritten (0: nothing to do).
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Concat":
            continue
        out_q = [c for c in consumers[node.output[0]] if c.op_type == "QuantizeLinear"]
        if len(out_q) != 1 or len(out_q[0].input) < 3:
            continue
        sources = [_quantized_source(name, producer) for name in node.input]
        if not all(s is not None and s[1] is not None and s[1].op_type in POOLED for s in sources):
            continue
        params = list(out_q[0].input[1:3])
        for q, _ in sources:
            if list(q.input[1:3]) == params:
                continue
            q.input[1:3] = params
            for dq in consumers[q.output[0]]:
                if dq.op_type == "DequantizeLinear":
                    dq.input[1:3] = params
            rewritten += 1
    return rewritten


def quantize_static(model_input: str | os.PathLike, model_output: str | os.PathLike, calibration_data_reader,
                    **kwargs) -> int:
    """``onnxruntime.quantization.quantize_static`` in the QDQ format, then ``share_pooling_scales`` on
    the quantized model, written to ``model_output``.

    Args:
        model_input: the float ONNX model (e.g. written by ``poolport.export_onnx``).
        model_output: where the quantized model goes.
        calibration_data_reader: an ``onnxruntime.quantization.CalibrationDataReader``.
        **kwargs: passed to ``quantize_static`` (``activation_type``, ``weight_type``, ``per_channel``,
            ``extra_options``, ...); ``quant_format`` must be QDQ (the default here).

    Returns:
        The number of Concat inputs ``share_pooling_scales`` rewrote.

    Raises:
        PoolportError: onnx or onnxruntime missing, or a ``quant_format`` other than QDQ.
    """
    onnx, _ = require_onnx()
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    fmt = kwargs.setdefault("quant_format", QuantFormat.QDQ)
    if fmt != QuantFormat.QDQ:
        raise PoolportError(f"quantization: poolport shares scales in the QDQ format only, not {fmt}: "
                            "pass quant_format=QuantFormat.QDQ (the default here).")
    ort_quantize_static(os.fspath(model_input), os.fspath(model_output), calibration_data_reader, **kwargs)
    model = onnx.load(os.fspath(model_output))
    rewritten = share_pooling_scales(model)
    if rewritten:
        onnx.save(model, os.fspath(Path(model_output)),
                  save_as_external_data=bool(kwargs.get("use_external_data_format")))
    return rewritten
