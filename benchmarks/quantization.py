"""int8 quantization of poolport's plans against the native path, per path x model (issue 18): the table
in docs/quantization.md.

Models (the issue's, from poolport.demo): VGG-style at 320x320 (AdaptiveAvgPool2d(7) on 10x10), the
PSPNet-style model at 120x120 (bins 1, 2, 3, 6 on 15x15), the VGG-style model with AdaptiveMaxPool2d(7).
``--calibration`` inputs calibrate, ``--evaluation`` others are compared with the float model:
error = ||y_int8 - y|| / ||y||, averaged over ``--seeds`` draws of both sets (min-max in brackets).

Paths: ONNX Runtime static QDQ (s8 and u8 activations; poolport's export through
``poolport.quantization.onnxruntime_qdq.quantize_static``, and through plain ``quantize_static`` as
"before"), ExecuTorch PT2E + XNNPACK and litert-torch PT2E (``PoolingQuantizer``, and the plain quantizer
as "before"), OpenVINO with NNCF (``poolport.quantization.openvino_nncf.quantize``, plain ``nncf.quantize``
as "before"). Native: torch's own path on the unmodified model (none for adaptive max pooling), for
OpenVINO ``openvino.convert_model`` (OpenVINO's own adaptive ops, max pooling too).

"outside": ONNX Runtime: pooling-related nodes that still compute in float after ORT's graph
optimisations (fed by a DequantizeLinear); OpenVINO: the compiled model's pooling, concatenation,
slicing and gathering layers by runtime precision; ExecuTorch: ops outside the XNNPACK delegate, and average
pools run in fp32 inside it; LiteRT: ops outside LiteRT's XNNPACK delegate and its partitions. Latency:
median of ``--repeat`` interleaved runs (one thread where the runtime lets us choose).

    .venv/bin/python benchmarks/quantization.py [--seeds 3] [--repeat 50] [--markdown docs/bench-quantization.md]
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import interleaved_medians

import poolport
from poolport.cli.terminal import quiet
from poolport.demo.models import PSPNetStyle, VGGStyle
from poolport.testing.delegates import outside_delegate, run_float


def vgg_avg():
    return VGGStyle(), (1, 3, 320, 320)


def psp():
    return PSPNetStyle(), (1, 3, 120, 120)


def vgg_max():
    model = VGGStyle()
    model.avgpool = torch.nn.AdaptiveMaxPool2d(7)
    return model, (1, 3, 320, 320)


MODELS = [("VGG-style avg 10->7", vgg_avg, "avg"), ("PSPNet-style bins 1,2,3,6 on 15", psp, "avg"),
          ("VGG-style max 10->7", vgg_max, "max")]
CACHE = tempfile.TemporaryDirectory()
EXPORTED: dict = {}
POOLING_ONNX = {"Slice", "AveragePool", "MaxPool", "Concat", "GlobalAveragePool", "ReduceMean", "GatherND",
                "Gather", "Where", "Div", "Transpose", "Reshape", "Flatten"}


def error(got, want) -> float:
    got = np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in got])
    want = np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in want])
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


class Reader:
    def __init__(self, xs):
        self.feeds = iter([{"x": x.numpy()} for x in xs])

    def get_next(self):
        return next(self.feeds, None)


# ---------------------------------------------------------------------------------------------------------
def onnxruntime_path(model, cal, ev, folder, activation, variant):
    """variant: 'poolport' (helper), 'before' (poolport's export, plain quantize_static), 'native'."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as plain_quantize

    from poolport.quantization.onnxruntime_qdq import quantize_static

    src = EXPORTED.get((id(model.__class__), str(model.avgpool if hasattr(model, "avgpool") else ""), variant))
    if src is None:  # the float export does not depend on the data: once per model and variant
        src = Path(CACHE.name) / f"{len(EXPORTED)}-{variant}.onnx"
        with quiet():
            if variant == "native":
                torch.onnx.export(model, (cal[0],), src, input_names=["x"], dynamo=True, external_data=False)
            else:
                poolport.export_onnx(model, cal[0], src, input_names=["x"], random_checks=0, overwrite=True)
        EXPORTED[(id(model.__class__), str(model.avgpool if hasattr(model, "avgpool") else ""), variant)] = src
    out = folder / f"{variant}-{activation}.onnx"
    kwargs = dict(activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
                  weight_type=QuantType.QInt8)
    if variant == "poolport":
        quantize_static(src, out, Reader(cal), **kwargs)
    else:
        plain_quantize(str(src), str(out), Reader(cal), quant_format=QuantFormat.QDQ, **kwargs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(folder / f"{variant}-{activation}-optimized.onnx")
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    got = [session.run(None, {"x": x.numpy()})[0] for x in ev]
    optimized = onnx.load(options.optimized_model_filepath)
    producer = {o: n for n in optimized.graph.node for o in n.output}

    def dequantized(name):  # a float tensor made by DequantizeLinear (through ORT's NCHWc reorder too)
        node = producer.get(name)
        if node is not None and node.op_type == "ReorderInput":
            node = producer.get(node.input[0])
        return node is not None and node.op_type == "DequantizeLinear"

    floating = collections.Counter(
        n.op_type for n in optimized.graph.node if n.op_type in POOLING_ONNX and any(dequantized(i) for i in n.input))
    feed = {"x": ev[0].numpy()}
    return got, dict(floating), lambda: session.run(None, feed)


def pt2e(model, cal, quantizer, fold=True):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(torch.export.export(model, (cal[0],)).module(), quantizer)
    for x in cal:
        prepared(x)
    return convert_pt2e(prepared, fold_quantize=fold)


def executorch_path(model, cal, ev, variant):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from poolport.quantization.pt2e import PoolingQuantizer

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    if variant == "poolport":
        quantizer = PoolingQuantizer(quantizer)
    if variant != "native":
        model = poolport.make_portable(model, (cal[0],))
    quantized = pt2e(model, cal, quantizer)
    fp32_pools = sum(n.op == "call_function" and n.target == torch.ops.aten.avg_pool2d.default
                     for n in quantized.graph.nodes)
    lowered = to_edge_transform_and_lower(torch.export.export(quantized, (cal[0],)), partitioner=[XnnpackPartitioner()])
    graph = lowered.exported_program().graph_module.graph
    outside = collections.Counter(str(n.target).split(">")[0].replace("<EdgeOpOverload: ", "")
                                  for n in graph.nodes if n.op == "call_function" and "getitem" not in str(n.target)
                                  and "executorch_call_delegate" not in str(n.target))
    partitions = sum("executorch_call_delegate" in str(n.target) for n in graph.nodes)
    buffer = lowered.to_executorch().buffer
    program = Runtime.get().load_program(buffer)
    method = program.load_method("forward")
    got = [method.execute([x])[0].numpy() for x in ev]
    facts = dict(outside)
    if fp32_pools:
        facts["avg_pool2d in fp32"] = fp32_pools
    facts["partitions"] = partitions
    x0 = ev[0]
    return got, facts, lambda: (program, buffer, method.execute([x0]))


def litert_path(model, cal, ev, variant):
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig

    from poolport.quantization.pt2e import PoolingQuantizer

    base = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    quantizer = PoolingQuantizer(base) if variant == "poolport" else base
    if variant != "native":
        model = poolport.make_portable(model, (cal[0],))
    quantized = pt2e(model, cal, quantizer, fold=False)
    with quiet():
        edge = litert_torch.convert(quantized, (cal[0],), quant_config=QuantConfig(pt2e_quantizer=base))
    content = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.AUTO, num_threads=1)
    interpreter.allocate_tensors()
    outside, partitions = outside_delegate(interpreter)
    facts = dict(outside)
    facts["partitions"] = partitions
    def invoke(x):
        return run_float(interpreter, x)

    got = [invoke(x) for x in ev]
    return got, facts, lambda: invoke(ev[0])


def openvino_path(model, cal, ev, variant):
    """variant: 'poolport' (openvino_nncf.quantize on poolport's ONNX), 'before' (nncf.quantize on it),
    'native' (nncf.quantize on openvino.convert_model of the unmodified model: OpenVINO's own op)."""
    import nncf
    import openvino as ov

    from poolport.quantization.openvino_nncf import quantize

    core = ov.Core()
    if variant == "native":
        source = ov.convert_model(model, example_input=cal[0])
    else:
        path = Path(CACHE.name) / f"ov-{id(model)}.onnx"
        if not path.exists():
            with quiet():
                poolport.export_onnx(model, cal[0], path, input_names=["x"], random_checks=0, overwrite=True)
        source = core.read_model(path)
    with quiet():
        quantized = (quantize if variant == "poolport" else nncf.quantize)(
            source, nncf.Dataset(cal, lambda x: x.numpy()), subset_size=len(cal))
    compiled = core.compile_model(quantized, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    got = [compiled(x.numpy())[0] for x in ev]
    facts = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind in ("Pooling", "AdaptivePooling", "Concatenation", "StridedSlice", "Gather", "Reduce"):
            facts[f"{kind} {info['runtimePrecision'].astype(str)}"] += 1
    x0 = ev[0].numpy()
    return got, dict(facts), lambda: compiled(x0)


def paths():
    found = [("ONNX Runtime QDQ s8", "ort", "s8"), ("ONNX Runtime QDQ u8", "ort", "u8")]
    if importlib.util.find_spec("nncf"):
        found.append(("OpenVINO + NNCF", "openvino", None))
    if importlib.util.find_spec("executorch"):
        found.append(("ExecuTorch XNNPACK", "executorch", None))
    if importlib.util.find_spec("litert_torch"):
        found.append(("litert-torch (LiteRT XNNPACK)", "litert", None))
    return found


def measure(path, activation, factory, kind, seeds, calibration, evaluation, repeat):
    variants = ["poolport", "before"] + (["native"] if kind == "avg" or path == "openvino" else [])
    errors = {v: [] for v in variants}
    facts, timers = {}, {}
    for seed in range(seeds):
        torch.manual_seed(0)
        model, shape = factory()
        model.eval()
        g = torch.Generator().manual_seed(100 + seed)
        cal = [torch.randn(*shape, generator=g) for _ in range(calibration)]
        ev = [torch.randn(*shape, generator=g) for _ in range(evaluation)]
        with torch.no_grad():
            want = [model(x).numpy() for x in ev]
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
                if path == "ort":
                    got, fact, timer = onnxruntime_path(model, cal, ev, Path(tmp), activation, variant)
                elif path == "openvino":
                    got, fact, timer = openvino_path(model, cal, ev, variant)
                elif path == "executorch":
                    got, fact, timer = executorch_path(model, cal, ev, variant)
                else:
                    got, fact, timer = litert_path(model, cal, ev, variant)
                errors[variant].append(error(got, want))
                if seed == 0:
                    facts[variant] = fact
                    if variant != "before":
                        timers[variant] = timer
                        if len(timers) == len([v for v in variants if v != "before"]):
                            medians = interleaved_medians(list(timers.values()), repeat)
                            timers = dict(zip(timers, medians))
    return errors, facts, timers


def fmt_error(values):
    return f"{statistics.mean(values):.3%} ({min(values):.3%}-{max(values):.3%})"


def fmt_facts(fact):
    return ", ".join(f"{k} {v}" for k, v in sorted(fact.items())) or "none"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--evaluation", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--paths", default="", help="comma-separated subset: ort, openvino, executorch, litert")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["| path | model | poolport error | before (plain quantizer) | native error | poolport: outside int8 / "
             "delegate | native: outside | latency poolport / native |", "|---|---|---|---|---|---|---|---|"]
    for label, path, activation in paths():
        if args.paths and path not in args.paths.split(","):
            continue
        for model_label, factory, kind in MODELS:
            errors, facts, timers = measure(path, activation, factory, kind, args.seeds, args.calibration,
                                            args.evaluation, args.repeat)
            native = fmt_error(errors["native"]) if "native" in errors else "no native path"
            native_facts = fmt_facts(facts["native"]) if "native" in facts else "-"
            latency = (f"{timers['poolport'] * 1e3:.2f} / {timers['native'] * 1e3:.2f} ms" if "native" in timers
                       else f"{timers['poolport'] * 1e3:.2f} ms / -")
            line = (f"| {label} | {model_label} | {fmt_error(errors['poolport'])} | {fmt_error(errors['before'])} | "
                    f"{native} | {fmt_facts(facts['poolport'])} | {native_facts} | {latency} |")
            print(line, flush=True)
            lines.append(line)
    if args.markdown:
        header = ("# int8 quantization: poolport against the native path\n\nWritten by `benchmarks/quantization.py` "
                  f"(seeds {args.seeds}, calibration {args.calibration}, evaluation {args.evaluation}, "
                  f"repeat {args.repeat}); read with [quantization.md](quantization.md).\n\n")
        args.markdown.write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.exit(main())
