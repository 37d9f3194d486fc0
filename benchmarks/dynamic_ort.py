"""What dynamic H/W costs in ONNX Runtime (CPU, one thread): poolport's size-generic graph (exported at
another size, H/W dynamic) against poolport's static graph planned for the size it runs at, both run at
the same size. Latency: median of interleaved runs. Memory: peak resident memory of a fresh process that
runs the graph, minus that of one that only opens the session.

    .venv/bin/python benchmarks/dynamic_ort.py [--repeat 200] [--markdown docs/bench-dynamic.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import onnxruntime as ort
import torch
from timing import interleaved_medians
from torch import nn

import poolport
from poolport.demo.models import PyramidHead

# (label, module, shape it runs at, shape the dynamic graph is exported at)
CASES = [
    ("PSPNet-style head", PyramidHead, (1, 256, 60, 60), (1, 256, 15, 15)),
    ("vgg11 head AdaptiveAvgPool2d(7)", lambda: nn.AdaptiveAvgPool2d(7), (1, 512, 10, 10), (1, 512, 7, 7)),
    ("AdaptiveMaxPool2d(7)", lambda: nn.AdaptiveMaxPool2d(7), (1, 512, 10, 10), (1, 512, 7, 7)),
    ("AdaptiveAvgPool2d(14)", lambda: nn.AdaptiveAvgPool2d(14), (1, 64, 128, 128), (1, 64, 32, 32)),
]

PEAK = """
import sys, numpy as np, onnxruntime as ort
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal(tuple(int(v) for v in sys.argv[2].split("x"))).astype("float32")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
before = status("VmRSS:")
for _ in range(3):
    s.run(None, {s.get_inputs()[0].name: x})
print(status("VmHWM:") - before)
"""


def peak_kib(path: Path, shape: tuple) -> int:
    """KiB by which running the graph raises the peak resident memory of a process that has opened its
    session (Linux: /proc/self/status, after resetting the peak)."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(path), "x".join(map(str, shape))],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def export(model, shape, path: Path, exporter: str, dynamic: bool) -> None:
    x = torch.randn(*shape)
    h, w = torch.export.Dim("h", min=1, max=4096), torch.export.Dim("w", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        poolport.export_onnx(model, x, path, exporter=exporter, overwrite=True, random_checks=0,
                             dynamic_shapes=({2: h, 3: w},) if dynamic else None)
        logging.disable(logging.NOTSET)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for label, factory, shape, exported_at in CASES:
        model = factory().eval()
        paths = {
            "static": tmp / "static.onnx",
            "dynamic, TorchScript exporter": tmp / "dyn_ts.onnx",
            "dynamic, dynamo exporter": tmp / "dyn_dy.onnx",
        }
        export(model, shape, paths["static"], "torchscript", dynamic=False)
        export(model, exported_at, paths["dynamic, TorchScript exporter"], "torchscript", dynamic=True)
        export(model, exported_at, paths["dynamic, dynamo exporter"], "dynamo", dynamic=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        x = torch.randn(*shape).numpy()
        sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in paths.values()]
        calls = [lambda s=s: s.run(None, {s.get_inputs()[0].name: x}) for s in sessions]
        times = [t * 1e6 for t in interleaved_medians(calls, args.repeat)]
        for (kind, path), t in zip(paths.items(), times):
            rows.append({"case": label, "run at": "x".join(map(str, shape)), "graph": kind,
                         "us": round(t, 1), "ratio": round(t / times[0], 2), "peak KiB": peak_kib(path, shape)})
            print(json.dumps(rows[-1]), flush=True)
    head = ["case", "run at", "graph", "median us", "/ static", "extra peak memory (KiB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['case']} | {r['run at']} | {r['graph']} | {r['us']:.0f} | {r['ratio']:.2f} | {r['peak KiB']} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(
            "# Dynamic H/W in ONNX Runtime\n\n`.venv/bin/python benchmarks/dynamic_ort.py --markdown "
            "docs/bench-dynamic.md` (ONNX Runtime CPU, one thread, median of interleaved runs; a shared 2-core "
            "machine, so ratios matter more than absolute numbers).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
