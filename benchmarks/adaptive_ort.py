"""Latency of exported adaptive pooling graphs in ONNX Runtime (CPU, one thread).

poolport's export of poolport.nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d against torch's own dynamo
export of the native module (which fails for non-divisible max pooling). Median of repeated runs.

    .venv/bin/python benchmarks/adaptive_ort.py [--repeat 200] [--markdown docs/bench-adaptive-ort.md]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from timing import interleaved_medians

import poolport

CASES = [
    ((1, 64, 128, 128), 14),
    ((1, 512, 9, 9), 7),
    ((1, 2048, 10, 10), 7),
    ((1, 32, 257, 257), 33),
    ((1, 256, 60, 60), 6),
    ((1, 512, 14, 14), 7),  # divisible: both single AveragePool
]


def export(module, x, path, dynamo=True) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (x,), str(path), dynamo=dynamo, opset_version=18, verbose=False)
            return True
        except Exception:
            return False


def time_sessions(paths, x, repeat: int) -> list[float]:
    """Median microseconds per path; the sessions run interleaved so machine noise hits all alike."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in paths]
    calls = [lambda s=s: s.run(None, {s.get_inputs()[0].name: x.numpy()}) for s in sessions]
    return [t * 1e6 for t in interleaved_medians(calls, repeat)]


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
            plan = poolport.plan.plan_pool(op, tuple(shape[2:]), (out, out))
            pp_path, tv_path = tmp / f"pp_{op}.onnx", tmp / f"tv_{op}.onnx"
            assert export(pp_cls(out), x, pp_path)
            sess = ort.InferenceSession(str(pp_path), providers=["CPUExecutionProvider"])
            err = float(np.abs(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] - ref).max())
            if export(native_cls(out), x, tv_path):
                pp_us, tv_us = time_sessions([pp_path, tv_path], x, args.repeat)
            else:
                (pp_us,), tv_us = time_sessions([pp_path], x, args.repeat), None
            rows.append((op, shape, out, plan.describe_ops(), tv_us, pp_us, err))
            ratio = f"{pp_us / tv_us:.2f}" if tv_us else "-"
            print(f"{op} {shape} -> {out}: torch {tv_us and round(tv_us)} us, poolport {pp_us:.0f} us, ratio {ratio}, err {err:.1e}", flush=True)
    lines = [
        "| op | input -> output | poolport ONNX ops | torch dynamo export (us) | poolport (us) | poolport / torch | max abs err vs torch |",
        "|---|---|---|---|---|---|---|",
    ]
    for op, shape, out, ops, tv, pp, err in rows:
        tv_s = f"{tv:.0f}" if tv else "export fails"
        ratio = f"{pp / tv:.2f}" if tv else "-"
        lines.append(f"| {op} | {tuple(shape)} -> {out}x{out} | {ops} | {tv_s} | {pp:.0f} | {ratio} | {err:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
