"""What dynamic H/W costs in ONNX Runtime (CPU, one thread): poolport's size-generic graph (exported at
another size, H/W dynamic) against poolport's static graph planned for the size it runs at, both run at
the same size. Latency: median of interleaved runs (a new random order every round), in this thread's CPU
time (ONNX Runtime with one intra-op thread computes on the calling thread; CPU time is what other
processes on a shared machine disturb least; ``--clock wall`` for wall time). Memory: peak resident memory
of a fresh process that runs the graph, minus that of one that only opens the session.

``--baseline SRC`` also exports the dynamic graphs with another checkout's poolport (its ``src`` folder,
e.g. ``/work/main/src``) and times them in the same interleaved rounds, so "before" and "after" are
compared on the same machine state. The graphs fed one NaN ("one NaN in the input") show the cost of the
exact fallback (the ``If`` branch that runs only on non-finite input).

    .venv/bin/python benchmarks/dynamic_ort.py [--repeat 200] [--baseline SRC] [--markdown docs/bench-dynamic.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import onnxruntime as ort
import torch
from timing import interleaved_medians
from torch import nn

import poolport
from poolport.demo.models import PyramidHead


class PyramidPools(nn.Module):
    """The pooling sites of ``PyramidHead`` alone (average bins 1, 2, 3, 6 and max (3, 5)), no upsampling."""

    def __init__(self):
        super().__init__()
        self.pools = nn.ModuleList([*(nn.AdaptiveAvgPool2d(b) for b in (1, 2, 3, 6)), nn.AdaptiveMaxPool2d((3, 5))])

    def forward(self, x):
        return tuple(p(x) for p in self.pools)


# (label, module, shape it runs at, shape the dynamic graph is exported at)
CASES = [
    ("PSPNet-style head", PyramidHead, (1, 256, 60, 60), (1, 256, 15, 15)),
    ("its pooling sites alone", PyramidPools, (1, 256, 60, 60), (1, 256, 15, 15)),
    ("vgg11 head AdaptiveAvgPool2d(7)", lambda: nn.AdaptiveAvgPool2d(7), (1, 512, 10, 10), (1, 512, 7, 7)),
    ("AdaptiveMaxPool2d(7)", lambda: nn.AdaptiveMaxPool2d(7), (1, 512, 10, 10), (1, 512, 7, 7)),
    ("AdaptiveAvgPool2d(14)", lambda: nn.AdaptiveAvgPool2d(14), (1, 64, 128, 128), (1, 64, 32, 32)),
    ("AdaptiveMaxPool2d(14)", lambda: nn.AdaptiveMaxPool2d(14), (1, 64, 128, 128), (1, 64, 32, 32)),
]
EXPORTERS = {"TorchScript": "torchscript", "dynamo": "dynamo"}

NOTES = """
How to read it: "static" is poolport's graph planned for the size it runs at (exported at that size,
static H/W); the dynamic graphs were exported at another size (15x15, 7x7 or 32x32) with H/W dynamic and
run at the same size as the static one, by poolport.export_onnx with either exporter (the dynamo exporter
through poolport's translation table, `poolport.onnx_translations()`). "baseline" rows are the same
exports made with the checkout given to `--baseline`; "/ baseline" compares each graph with its baseline
row, timed in the same interleaved rounds. "one NaN in the input" runs the same dynamic graph on an input
holding one NaN, which takes the exact fallback (the ONNX `If` branch). "Extra peak memory" is how much
running the graph raises the peak resident memory of a process that has opened its session (Linux
`VmHWM`, reset before the runs).

- Average pooling: a MatMul by the window matrix per axis (no transposes on H and W), whose output is
  checked for a non-finite value (one sum of the small output); only then does the `If` recompute it
  with one Slice + ReduceMean per window (PyTorch's semantics: inf stays inf, inf and -inf give NaN).
- Max pooling: one Slice per window with run-time bounds + ReduceMax + Concat (reads the tensor once);
  the input's sum is checked for NaN (ONNX Runtime's ReduceMax may drop a NaN), and only then does the
  `If` take the NaN-exact form.
- Both exporters write the same nodes (`backend.onnx_generic`), so their rows differ by noise only.
"""

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

BASELINE = """
import sys
sys.path.insert(0, sys.argv[1])
import dynamic_ort
dynamic_ort.export_case(int(sys.argv[2]), sys.argv[3], sys.argv[4], dynamic=True)
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


def export_case(index: int, path: str, exporter: str, dynamic: bool) -> None:
    """Export case ``index`` (by whichever poolport is imported: ``--baseline`` runs this in another process)."""
    _, factory, shape, exported_at = CASES[index]
    torch.manual_seed(0)
    export(factory().eval(), exported_at if dynamic else shape, Path(path), exporter, dynamic)


def export_baseline(src: str, index: int, path: Path, exporter: str) -> None:
    env = {**os.environ, "PYTHONPATH": src}
    subprocess.run([sys.executable, "-c", BASELINE, str(Path(__file__).parent), str(index), str(path), exporter],
                   env=env, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--baseline", help="another checkout's src folder: its dynamic graphs are timed alongside")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    ap.add_argument("--case", action="append", help="only the cases whose label contains this (repeatable)")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for index, (label, _, shape, _) in enumerate(CASES):
        if args.case and not any(c in label for c in args.case):
            continue
        paths = {"static": tmp / f"{index}_static.onnx"}
        export_case(index, str(paths["static"]), "torchscript", dynamic=False)
        for name, exporter in EXPORTERS.items():
            paths[f"dynamic, {name} exporter"] = tmp / f"{index}_{exporter}.onnx"
            export_case(index, str(paths[f"dynamic, {name} exporter"]), exporter, dynamic=True)
        if args.baseline:
            for name, exporter in EXPORTERS.items():
                paths[f"dynamic, {name} exporter, baseline"] = tmp / f"{index}_{exporter}_base.onnx"
                export_baseline(args.baseline, index, paths[f"dynamic, {name} exporter, baseline"], exporter)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        x = torch.randn(*shape)
        nan = x.clone()
        nan[0, 0, shape[2] // 2, shape[3] // 2] = float("nan")
        feeds = {kind: x.numpy() for kind in paths}
        for name in EXPORTERS:  # the exact fallback, on one NaN
            paths[f"dynamic, {name} exporter, one NaN in the input"] = paths[f"dynamic, {name} exporter"]
            feeds[f"dynamic, {name} exporter, one NaN in the input"] = nan.numpy()
        sessions = {p: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in set(paths.values())}
        calls = [lambda s=sessions[p], f=feeds[k]: s.run(None, {s.get_inputs()[0].name: f}) for k, p in paths.items()]
        times = [t * 1e6 for t in interleaved_medians(calls, args.repeat, clock=clock)]
        by_kind = dict(zip(paths, times))
        for (kind, path), t in zip(paths.items(), times):
            base = by_kind.get(f"{kind}, baseline")
            rows.append({"case": label, "run at": "x".join(map(str, shape)), "graph": kind, "us": round(t, 1),
                         "ratio": round(t / times[0], 2), "vs baseline": round(t / base, 2) if base else None,
                         "peak KiB": None if args.no_memory or "NaN" in kind else peak_kib(path, shape)})
            print(json.dumps(rows[-1]), flush=True)
    head = ["case", "run at", "graph", "median us", "/ static"]
    head += ["/ baseline"] if args.baseline else []
    head += [] if args.no_memory else ["extra peak memory (KiB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["case"], r["run at"], r["graph"], f"{r['us']:.0f}", f"{r['ratio']:.2f}"]
        cells += [f"{r['vs baseline']:.2f}" if r["vs baseline"] else ""] if args.baseline else []
        cells += [] if args.no_memory else [str(r["peak KiB"]) if r["peak KiB"] is not None else ""]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        command = " ".join(["benchmarks/dynamic_ort.py", *sys.argv[1:]])
        Path(args.markdown).write_text(
            f"# Dynamic H/W in ONNX Runtime\n\n`.venv/bin/python {command}` (ONNX Runtime CPU, one thread, median "
            f"of interleaved runs in {'CPU' if args.clock == 'cpu' else 'wall'} time; a shared 2-core machine, so "
            f"ratios matter more than absolute numbers).\n\n" + table + "\n" + NOTES)


if __name__ == "__main__":
    main()
