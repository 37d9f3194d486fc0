"""What poolport costs: export_onnx wall time (including its verification) against plain
torch.onnx.export of the same model writing the same kind of output, and eager latency of
make_portable(model) against the original model.

Compared like with like:
* torchscript exporter: one self-contained .onnx file on both sides;
* dynamo exporter, graph + .data file (torch.onnx.export's default; poolport ``external_data=True``);
* dynamo exporter, one self-contained file (torch ``external_data=False``; poolport's default).

Each export is timed ``--export-repeat`` times, plain and poolport interleaved, after one warm-up
round; the table gives medians and the part of poolport's time spent verifying (PyTorch forward
passes, onnx.checker, ONNX Runtime session and runs).

    .venv/bin/python benchmarks/export_overhead.py [--export-repeat 3] [--repeat 30] [--markdown docs/bench-export.md]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from timing import interleaved_medians

import poolport
from poolport.cli.terminal import quiet

MODELS = [("resnet18", 224), ("densenet121", 224), ("mobilenet_v3_small", 224), ("efficientnet_b0", 224),
          ("squeezenet1_0", 224), ("vgg11", 224)]

# label, exporter, torch.onnx.export keyword arguments, poolport.export_onnx keyword arguments
SETUPS = [
    ("torchscript, one file", "torchscript", {"dynamo": False}, {"exporter": "torchscript"}),
    # what the user can trade: no random input set, only the example inputs are verified
    ("torchscript, one file, --random-checks 0", "torchscript", {"dynamo": False},
     {"exporter": "torchscript", "random_checks": 0}),
    ("dynamo, graph + .data", "dynamo", {"dynamo": True}, {"exporter": "dynamo", "external_data": True}),
    ("dynamo, one file", "dynamo", {"dynamo": True, "external_data": False}, {"exporter": "dynamo"}),
]


def build(name):
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def time_exports(model, x, plain_kwargs, poolport_kwargs, repeat: int) -> tuple[float, float, float]:
    """Median seconds of plain export and of poolport's, and poolport's median verification seconds."""
    plain, ours, verify = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(repeat + 1):  # round 0 warms up both
            t = time.perf_counter()
            with quiet(), torch.no_grad():
                torch.onnx.export(model, (x,), f"{d}/plain{i}.onnx", **plain_kwargs)
            p = time.perf_counter() - t
            t = time.perf_counter()
            report = poolport.export_onnx(model, (x,), f"{d}/poolport{i}.onnx", **poolport_kwargs)
            q = time.perf_counter() - t
            for f in Path(d).iterdir():
                f.unlink()
            if i:
                plain.append(p)
                ours.append(q)
                verify.append(report.verify_seconds)
    return statistics.median(plain), statistics.median(ours), statistics.median(verify)


def eager_latency(models, x, repeat: int) -> list[float]:
    """Median ms per model, interleaved so machine noise hits all alike."""
    with torch.no_grad():
        return [t * 1e3 for t in interleaved_medians([lambda m=m: m(x) for m in models], repeat, warmup=3)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30, help="eager rounds")
    ap.add_argument("--export-repeat", type=int, default=3, help="timed export rounds per setup")
    ap.add_argument("--models", help="comma-separated torchvision names (default: the six below)")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = [(m, 224) for m in args.models.split(",")] if args.models else MODELS
    export_rows, eager_rows = [], []
    for name, size in models:
        model = build(name)
        x = torch.randn(1, 3, size, size)
        for label, _exporter, plain_kwargs, poolport_kwargs in SETUPS:
            plain, ours, verify = time_exports(model, x, plain_kwargs, poolport_kwargs, args.export_repeat)
            row = [name, label, f"{plain:.2f}", f"{ours:.2f}", f"{ours / plain:.2f}", f"{verify:.2f}"]
            export_rows.append(row)
            print(" | ".join(row), flush=True)
        portable = poolport.make_portable(model)
        orig_ms, port_ms = eager_latency([model, portable], x, args.repeat)
        eager_rows.append([name, str(size), f"{orig_ms:.1f}", f"{port_ms:.1f}", f"{port_ms / orig_ms:.3f}"])
        print(" | ".join(eager_rows[-1]), flush=True)
    lines = [
        "Export wall time, median of the timed rounds (seconds; one CPU thread, input 1x3x224x224):",
        "",
        "| model | exporter, output | plain torch.onnx.export | poolport.export_onnx | ratio | of which verification |",
        "|---|---|---|---|---|---|",
        *["| " + " | ".join(r) + " |" for r in export_rows],
        "",
        "Eager latency (ms, median of interleaved rounds):",
        "",
        "| model | input | original | make_portable | ratio |",
        "|---|---|---|---|---|",
        *["| " + " | ".join(r) + " |" for r in eager_rows],
    ]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
