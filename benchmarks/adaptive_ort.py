"""Latency of exported adaptive pooling graphs in ONNX Runtime (CPU, one thread).

poolport's export of poolport.nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d in its two styles -- the default
form (what ``export_onnx`` writes without a target, and for ONNX Runtime, OpenVINO, ncnn, MNN) and the edge
form (``target="litert"``; what every export wrote before plans were chosen per target) -- against torch's
own dynamo export of the native module (which fails for non-divisible max pooling). Interleaved medians
of the calling thread's CPU time (ONNX Runtime with one thread runs there): the sessions of one shape run
in turn, and time the process spends descheduled on a shared machine does not count. The operator
counts are the counting backend's (``poolport.backend.counting``), checked against the exported graph.

    .venv/bin/python benchmarks/adaptive_ort.py [--repeat 200] [--markdown docs/bench-adaptive-ort.md]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from timing import interleaved_medians

import poolport
from poolport.backend.counting import count_ops, describe_counts
from poolport.functional.dispatch import emitting

CASES = [
    ((1, 64, 128, 128), 14),
    ((1, 512, 9, 9), 7),
    ((1, 2048, 10, 10), 7),
    ((1, 512, 11, 11), 7),
    ((1, 64, 100, 100), 23),
    ((1, 32, 257, 257), 33),
    ((1, 256, 60, 60), 6),
    ((1, 512, 14, 14), 7),  # divisible: both single AveragePool
]
STYLES = ("default", "edge")


def export(module, x, path, dynamo=True) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (x,), str(path), dynamo=dynamo, opset_version=18, verbose=False)
            return True
        except Exception:
            return False


def graph_ops(path) -> dict[str, int]:
    """The operators of the exported graph (constants aside)."""
    return dict(collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Constant"))


def time_sessions(paths, x, repeat: int) -> list[float]:
    """Median microseconds per path; the sessions run interleaved so machine noise hits all alike."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in paths]
    calls = [lambda s=s: s.run(None, {s.get_inputs()[0].name: x.numpy()}) for s in sessions]
    return [t * 1e6 for t in interleaved_medians(calls, repeat, clock=time.thread_time)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for shape, out in CASES:
        x = torch.randn(*shape)
        for op, native_cls, pp_cls in [
            ("avg", torch.nn.AdaptiveAvgPool2d, poolport.nn.AdaptiveAvgPool2d),
            ("max", torch.nn.AdaptiveMaxPool2d, poolport.nn.AdaptiveMaxPool2d),
        ]:
            ref = native_cls(out)(x).numpy()
            plans = {s: poolport.plan.plan_pool(op, tuple(shape[2:]), (out, out), s) for s in STYLES}
            paths, err = [], 0.0
            for style in STYLES:
                path = tmp / f"pp_{op}_{style}.onnx"
                with emitting(style):
                    assert export(pp_cls(out), x, path)
                counted = dict(count_ops(plans[style]))
                assert graph_ops(path) == counted, (style, graph_ops(path), counted)
                sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                err = max(err, float(np.abs(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] - ref).max()))
                paths.append(path)
            tv_path = tmp / f"tv_{op}.onnx"
            if export(native_cls(out), x, tv_path):
                *pp_us, tv_us = time_sessions([*paths, tv_path], x, args.repeat)
            else:
                pp_us, tv_us = time_sessions(paths, x, args.repeat), None
            ops = {s: describe_counts(count_ops(plans[s])) for s in STYLES}
            rows.append((op, shape, out, ops, tv_us, pp_us, err))
            ratio = f"{pp_us[0] / tv_us:.2f}" if tv_us else "-"
            print(f"{op} {shape} -> {out}: torch {tv_us and round(tv_us)} us, poolport default {pp_us[0]:.0f} us, "
                  f"edge {pp_us[1]:.0f} us, default/edge {pp_us[0] / pp_us[1]:.2f}, default/torch {ratio}, "
                  f"err {err:.1e}", flush=True)
    lines = [
        "| op | input -> output | default form: ONNX ops | edge form: ONNX ops | torch dynamo export (us) "
        "| poolport default (us) | poolport edge (us) | default / edge | default / torch | max abs err vs torch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op, shape, out, ops, tv, (pp, edge), err in rows:
        tv_s = f"{tv:.0f}" if tv else "export fails"
        ratio = f"{pp / tv:.2f}" if tv else "-"
        same = "same" if ops["edge"] == ops["default"] else ops["edge"]
        lines.append(f"| {op} | {tuple(shape)} -> {out}x{out} | {ops['default']} | {same} | {tv_s} | {pp:.0f} "
                     f"| {edge:.0f} | {pp / edge:.2f} | {ratio} | {err:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        head = [
            "# Adaptive pooling in ONNX Runtime: the default form, the edge form, torch's export",
            "",
            "`.venv/bin/python benchmarks/adaptive_ort.py --markdown docs/bench-adaptive-ort.md` (part of `make bench`):",
            f"ONNX Runtime {ort.__version__}, torch {torch.__version__.split('+')[0]}, CPU, one thread, median "
            f"CPU time of {args.repeat} interleaved runs per graph. The default form is what `export_onnx` writes without a "
            "target (and for ONNX Runtime, OpenVINO, ncnn, MNN); the edge form is `target=\"litert\"`'s, and what "
            "every export wrote before plans were chosen per target. Operator counts: the counting backend's, "
            "checked against each exported graph. Shared 2-core machine: compare ratios within one run; where both "
            "forms are the same graph, their ratio is the noise.",
            "",
        ]
        Path(args.markdown).write_text("\n".join(head) + "\n" + table + "\n")


if __name__ == "__main__":
    main()
