"""What poolport costs: export_onnx wall time (including verification) against plain
torch.onnx.export where the latter succeeds, and eager latency of make_portable(model) against the
original model.

    .venv/bin/python benchmarks/export_overhead.py [--repeat 30] [--markdown docs/bench-export.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import poolport
from timing import interleaved_medians
from poolport.export.onnx_export import quiet

MODELS = [("resnet18", 224), ("densenet121", 224), ("mobilenet_v3_small", 224), ("efficientnet_b0", 224),
          ("squeezenet1_0", 224), ("vgg11", 224)]


def build(name):
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def time_export(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def eager_latency(models, x, repeat: int) -> list[float]:
    """Median ms per model, interleaved so machine noise hits all alike."""
    with torch.no_grad():
        return [t * 1e3 for t in interleaved_medians([lambda m=m: m(x) for m in models], repeat, warmup=3)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, size in MODELS:
        model = build(name)
        x = torch.randn(1, 3, size, size)
        row = [name, str(size)]
        for exporter in ("torchscript", "dynamo"):
            with tempfile.TemporaryDirectory() as d:
                with quiet(), torch.no_grad():
                    plain = time_export(lambda: torch.onnx.export(model, (x,), f"{d}/p.onnx", dynamo=exporter == "dynamo"))
                pp = time_export(lambda: poolport.export_onnx(model, (x,), f"{d}/q.onnx", exporter=exporter))
            row += [f"{plain:.2f}", f"{pp:.2f}", f"{pp / plain:.2f}"]
        portable = poolport.make_portable(model)
        orig_ms, port_ms = eager_latency([model, portable], x, args.repeat)
        row += [f"{orig_ms:.1f}", f"{port_ms:.1f}", f"{port_ms / orig_ms:.3f}"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ("| model | input | plain TS export (s) | poolport TS (s) | ratio | plain dynamo export (s) | "
              "poolport dynamo (s) | ratio | eager original (ms) | eager make_portable (ms) | ratio |")
    lines = [header, "|" + "---|" * 11] + ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
