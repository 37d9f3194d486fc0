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

``s8_plans_to_u8`` is for ONNX Runtime's CPU provider with s8 activations. That provider runs them as u8:
its QDQS8ToU8Transformer turns each QuantizeLinear -> DequantizeLinear pair into u8, but only a pair
whose QuantizeLinear has one reader. A plan's input fans out to its runs (and ORT merges identical
QuantizeLinear nodes first), so that tensor stayed s8 while the pairs after each Slice and pool became
u8; a node between two types is not fused, and every Slice of a plan, the Concat between two passes and
the layer that made the plan's input (a MaxPool, a Conv) ran in float between a dequantize and a quantize
(measured with onnxruntime 1.32; u8 activations were not affected). ``s8_plans_to_u8`` writes the pairs
around the plans' nodes in u8 (zero point + 128, same scale: the same real values, exactly), as the
provider would: then every pair meets its neighbours in one type and ORT fuses the plan into integer
Slice, QLinearAveragePool, MaxPool and Concat as it does with u8 activations. Other execution providers
(TensorRT takes symmetric s8 only) keep the s8 model: ``quantize_static(..., execution_provider=...)``.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from ..errors import PoolportError
from ..onnxfile.files import require_onnx
from ..onnxfile.paths import WritePlan

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


def s8_plans_to_u8(model) -> int:
    """Write the s8 QuantizeLinear / DequantizeLinear pairs around pooling plans in u8, in place, for
    ONNX Runtime's CPU provider (why: the module's docstring).

    A pair qualifies when its QuantizeLinear has an int8 zero point and quantizes the output of a Slice,
    pooling or Concat node, or a tensor that such a node reads (through a DequantizeLinear). Its zero
    point becomes uint8 (+128) in the QuantizeLinear and in every DequantizeLinear reading it; the scale
    and the real values stay the same.

    Args:
        model: an ``onnx.ModelProto`` in the QDQ format.

    Returns:
        The number of QuantizeLinear nodes rewritten (0: none qualified, e.g. u8 activations).
    """
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    plan_ops = POOLED + ("Concat",)
    made: dict = {}
    rewritten = 0
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or len(q.input) < 3:
            continue
        zero_point = consts.get(q.input[2])
        if zero_point is None or zero_point.dtype != np.int8:
            continue
        source = producer.get(q.input[0])
        dqs = [r for r in readers[q.output[0]] if r.op_type == "DequantizeLinear"]
        if len(dqs) != len(readers[q.output[0]]):
            continue  # something reads the integers themselves: leave the type alone
        later = [r for dq in dqs for r in readers[dq.output[0]]]
        if not ((source is not None and source.op_type in plan_ops) or any(r.op_type in plan_ops for r in later)):
            continue
        if any(len(dq.input) < 3 or dq.input[2] != q.input[2] for dq in dqs):
            continue
        name = made.get(q.input[2])
        if name is None:
            name = made[q.input[2]] = f"{q.input[2]}_u8"
            graph.initializer.append(numpy_helper.from_array((zero_point.astype(np.int16) + 128).astype(np.uint8),
                                                             name))
        q.input[2] = name
        for dq in dqs:
            dq.input[2] = name
        rewritten += 1
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name in made and i.name not in used]:
        graph.initializer.remove(init)  # an s8 zero point nothing reads any more
    return rewritten


def quantize_static(model_input: str | os.PathLike, model_output: str | os.PathLike, calibration_data_reader,
                    execution_provider: str = "CPUExecutionProvider", **kwargs) -> int:
    """``onnxruntime.quantization.quantize_static`` in the QDQ format, then ``share_pooling_scales`` on
    the quantized model, written to ``model_output``.

    Args:
        model_input: the float ONNX model (e.g. written by ``poolport.export_onnx``).
        model_output: where the quantized model goes.
        calibration_data_reader: an ``onnxruntime.quantization.CalibrationDataReader``.
        execution_provider: where the model will run. ``"CPUExecutionProvider"`` (the default): with s8
            activations the pairs around the plans are written in u8, as that provider runs them
            (``s8_plans_to_u8``); any other provider keeps the s8 model as quantized.
        **kwargs: passed to ``quantize_static`` (``activation_type``, ``weight_type``, ``per_channel``,
            ``extra_options``, ...); ``quant_format`` must be QDQ (the default here).

    Returns:
        The number of Concat inputs ``share_pooling_scales`` rewrote plus the number of pairs
        ``s8_plans_to_u8`` wrote in u8.

    Raises:
        PoolportError: onnx or onnxruntime missing, a ``quant_format`` other than QDQ, or a
            ``model_output`` (or its ``.data`` file) that is ``model_input`` or one of its data files.
    """
    onnx, _ = require_onnx()
    plan = WritePlan(overwrite=True)  # ORT replaces an existing output; never an input (the model, its data)
    plan.reads_model(model_input, "model_input")
    plan.writes(model_output, "model_output", data=True if kwargs.get("use_external_data_format") else None)
    plan.check()
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    fmt = kwargs.setdefault("quant_format", QuantFormat.QDQ)
    if fmt != QuantFormat.QDQ:
        raise PoolportError(f"quantization: poolport shares scales in the QDQ format only, not {fmt}: "
                            "pass quant_format=QuantFormat.QDQ (the default here).")
    ort_quantize_static(os.fspath(model_input), os.fspath(model_output), calibration_data_reader, **kwargs)
    model = onnx.load(os.fspath(model_output))
    rewritten = share_pooling_scales(model)
    if execution_provider == "CPUExecutionProvider":
        rewritten += s8_plans_to_u8(model)
    if rewritten:
        onnx.save(model, os.fspath(Path(model_output)),
                  save_as_external_data=bool(kwargs.get("use_external_data_format")))
    return rewritten
