"""What the default export (no target) of a dilated MaxPool costs in ONNX Runtime (CPU, one thread).

Without a target poolport writes the sub-lattice form (``plan.dilated``): MNN computes torch's one dilated
MaxPool node silently wrong. ``--target onnxruntime`` (or OpenVINO) writes the one node. Interleaved medians
of the calling thread's CPU time (``timing.interleaved_medians``) for: poolport without a target, poolport
with target onnxruntime, and torch's own dynamo export.

    .venv/bin/python benchmarks/dilated_default.py [--repeat 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import onnx
import torch
from timing import interleaved_medians
from torch import nn

import poolport
from poolport.cli.terminal import quiet
from poolport.runtimes.onnxruntime_rt import quiet_session_options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=100)
    args = ap.parse_args()
    import onnxruntime as ort

    cases = [("MaxPool2d(3, 1, 1, dilation=2), 1x64x56x56", nn.MaxPool2d(3, 1, 1, dilation=2), (1, 64, 56, 56)),
             ("MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), 1x32x64x64",
              nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), (1, 32, 64, 64))]
    rows = ["| layer | no target | --target onnxruntime | torch's own export | no target / torch |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d, quiet():
        for label, pool, shape in cases:
            model = nn.Sequential(nn.Conv2d(shape[1], shape[1], 1), pool).eval()
            x = torch.randn(*shape)
            paths = [Path(d, f"{n}.onnx") for n in ("default", "ort", "torch")]
            for p in paths:
                p.unlink(missing_ok=True)
            poolport.export_onnx(model, (x,), paths[0])
            poolport.export_onnx(model, (x,), paths[1], target="onnxruntime")
            torch.onnx.export(model, (x,), str(paths[2]), dynamo=True)
            options = quiet_session_options()
            options.intra_op_num_threads = 1
            sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
            feeds = [{s.get_inputs()[0].name: x.numpy()} for s in sessions]
            ms = [t * 1e3 for t in interleaved_medians([lambda s=s, f=f: s.run(None, f) for s, f in
                                                        zip(sessions, feeds)], args.repeat, clock=time.thread_time)]
            pools = [sum(n.op_type == "MaxPool" for n in onnx.load(str(p)).graph.node) for p in paths]
            rows.append(f"| {label} | {ms[0]:.3f} ms ({pools[0]} MaxPool) | {ms[1]:.3f} ms ({pools[1]}) | "
                        f"{ms[2]:.3f} ms ({pools[2]}) | {ms[0] / ms[2]:.2f}x |")
    print("\n".join(rows))  # after quiet(), which keeps other libraries' output off the terminal


if __name__ == "__main__":
    main()
