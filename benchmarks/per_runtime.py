"""Adaptive pooling per runtime: one table each for ONNX Runtime, OpenVINO, ncnn, MNN and LiteRT.

Per shape: poolport's plan for that runtime's target (``export_onnx(..., target=RUNTIME)`` writes the same
nodes: the style ``routing.targets.style_for`` gives it), the runtime's own adaptive op where it has one
(OpenVINO: ``openvino.convert_model`` of the torch module; ncnn: pnnx of the TorchScript module, which keeps
ncnn's adaptive Pooling), torch's dynamo export of the native module (where it exports), one read (a
GlobalAveragePool of the same input: the floor any pooling graph pays) and, in ONNX Runtime, poolport's
size-generic graph (dynamic H/W, exported at another size; also in OpenVINO) against the static one. Every runtime on one
thread; medians of interleaved rounds in a new shuffled order each round (``timing.interleaved_medians``), in
CPU time (ONNX Runtime: the calling thread's, where it computes with one thread; the others: the process's),
so time spent descheduled on a shared machine does not count. Compare ratios within one table.

    .venv/bin/python benchmarks/per_runtime.py [--repeat 100] [--runtime ort ...] [--markdown docs/bench-runtimes.md]

``--forms`` adds, for ONNX Runtime only, the formulations measured against the default one for small maps
(``FORMS``: the facts behind the planner's choice, see docs/pooling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from timing import interleaved_medians  # noqa: E402

import poolport  # noqa: E402
from poolport.cli import terminal  # noqa: E402
from poolport.functional.dispatch import emitting  # noqa: E402
from poolport.plan import plan_pool  # noqa: E402
from poolport.routing.targets import style_for  # noqa: E402

HERE = Path(__file__).parent
# (op, input shape, output size): small maps (the vgg/alexnet heads at small inputs) and large ones
CASES = [
    ("avg", (1, 512, 9, 9), 7),
    ("avg", (1, 2048, 10, 10), 7),
    ("avg", (1, 512, 11, 11), 7),
    ("max", (1, 512, 11, 11), 7),
    ("avg", (1, 512, 16, 16), 7),
    ("avg", (1, 64, 100, 100), 23),
    ("avg", (1, 64, 128, 128), 14),
    ("max", (1, 64, 128, 128), 14),
]
RUNTIMES = ("ort", "openvino", "ncnn", "mnn", "litert")
TARGET = {"ort": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn", "mnn": "mnn", "litert": "litert"}
LABEL = {"ort": "ONNX Runtime", "openvino": "OpenVINO", "ncnn": "ncnn (pnnx)", "mnn": "MNN", "litert": "LiteRT (onnx2tf)"}
NATIVE = {"avg": torch.nn.AdaptiveAvgPool2d, "max": torch.nn.AdaptiveMaxPool2d}
PORTABLE = {"avg": poolport.nn.AdaptiveAvgPool2d, "max": poolport.nn.AdaptiveMaxPool2d}


def quiet(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the exporters' and converters' output off the terminal."""
    with terminal.quiet():
        return fn(*args, **kwargs)


def save(proto: onnx.ModelProto, path: Path) -> Path:
    proto.ir_version = min(proto.ir_version, 8)  # what pnnx's bundled ONNX Runtime and onnx2tf load
    onnx.save(proto, str(path))
    return path


def export_poolport(op, x, out, style, path: Path) -> Path:
    """poolport's static plan in ``style``, through torch's dynamo exporter (what export_onnx writes)."""
    with emitting(style):
        quiet(torch.onnx.export, PORTABLE[op](out), (x,), str(path), dynamo=True, opset_version=18, verbose=False)
    return save(onnx.load(str(path)), path)


def export_torch(op, x, out, path: Path) -> Path | None:
    """torch's own dynamo export of the native module, or None where it fails (non-divisible max)."""
    try:
        quiet(torch.onnx.export, NATIVE[op](out), (x,), str(path), dynamo=True, opset_version=18, verbose=False)
    except Exception:
        return None
    return save(onnx.load(str(path)), path)


def export_dynamic(op, x, out, path: Path) -> Path:
    """poolport's size-generic graph: exported at a smaller size with H/W dynamic."""
    small = torch.randn(*x.shape[:2], out + 3, out + 3)
    h, w = torch.export.Dim("h", min=1, max=4096), torch.export.Dim("w", min=1, max=4096)
    quiet(poolport.export_onnx, NATIVE[op](out), small, path, overwrite=True, random_checks=0,
          dynamic_shapes=({2: h, 3: w},))
    return path


def one_read(shape, path: Path) -> Path:
    """A GlobalAveragePool of the input: one read of it."""
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    graph = helper.make_graph([node], "one_read", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


# ---- per runtime: a callable per file ------------------------------------------------------------------

def ort_calls(paths, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    calls = []
    for p in paths:
        s = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        calls.append(lambda s=s, name=s.get_inputs()[0].name: s.run(None, {name: x}))
    return calls


def openvino_compile(model, x):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1,
                                                 "NUM_STREAMS": 1})
    req = compiled.create_infer_request()
    return lambda: req.infer({0: x})


def ncnn_call(param: Path, binary: Path, x):
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    if net.load_param(str(param)) != 0 or net.load_model(str(binary)) != 0:
        raise RuntimeError("ncnn refused the converted model")

    def call():
        with net.create_extractor() as ex:
            ex.input("in0", ncnn.Mat(x[0]).clone())
            ret, out = ex.extract("out0")
            if ret != 0:
                raise RuntimeError("ncnn could not compute the model")
            return out
    call._net = net  # keep the net alive
    return call


def pnnx(source: Path, shape) -> tuple[Path, Path]:
    import pnnx as pnnx_module

    cmd = [pnnx_module.EXEC_PATH, source.name, f"inputshape=[{','.join(map(str, shape))}]", "fp16=0"]
    proc = subprocess.run(cmd, cwd=source.parent, capture_output=True, text=True, timeout=300)
    stem = source.parent / source.stem
    param, binary = Path(f"{stem}.ncnn.param"), Path(f"{stem}.ncnn.bin")
    if proc.returncode != 0 or not param.exists():
        raise RuntimeError(f"pnnx: {(proc.stderr or proc.stdout)[-200:]}")
    from poolport.runtimes.ncnn_rt import unknown_ncnn_layers

    unknown = unknown_ncnn_layers(param.read_text())
    if unknown:
        raise RuntimeError(f"pnnx left {', '.join(unknown)} unconverted")
    return param, binary


def isolated(runtime: str, paths, x, repeat: int, work: Path) -> list[float | None]:
    """MNN and LiteRT time in a process of their own (``runtime_timer.py``); LiteRT in its own Python."""
    np.save(work / "x.npy", x)
    job = work / f"{runtime}.json"
    job.write_text(json.dumps({"runtime": runtime, "files": [str(p) for p in paths], "input": str(work / "x.npy"),
                               "repeat": repeat, "workdir": str(work)}))
    python = sys.executable
    if runtime == "litert":
        from poolport.runtimes.litert_rt import litert_python

        python = litert_python()
        if python is None:
            raise RuntimeError("no LiteRT environment (make litert)")
    proc = subprocess.run([python, str(HERE / "runtime_timer.py"), str(job)], capture_output=True, text=True,
                          timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{runtime} timer failed: {proc.stderr[-300:]}")
    return json.loads(lines[-1])["us"]


# ---- one case in one runtime ---------------------------------------------------------------------------

def measure(runtime: str, op: str, shape, out: int, repeat: int, work: Path) -> dict:
    """Microseconds per column (None: that form does not exist or fails there) and the plan's summary."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    xn = x.numpy()
    tag = f"{runtime}_{op}_{'x'.join(map(str, shape[2:]))}_{out}"
    style = style_for(TARGET[runtime])
    files = {
        "poolport": export_poolport(op, x, out, style, work / f"{tag}_pp.onnx"),
        "torch export": export_torch(op, x, out, work / f"{tag}_tv.onnx"),
        "one read": one_read(shape, work / f"{tag}_read.onnx"),
    }
    if runtime in ("ort", "openvino"):
        files["dynamic"] = export_dynamic(op, x, out, work / f"{tag}_dyn.onnx")
    plan = plan_pool(op, tuple(shape[2:]), (out, out), style)
    row = {"plan": plan.summary() + ("" if style == "default" else f" [{style}]")}
    names = [k for k, p in files.items() if p is not None]
    calls, notes = {}, {}
    if runtime in ("mnn", "litert"):
        us = isolated(runtime, [files[k] for k in names], xn, repeat, work)
        row.update({k: v for k, v in zip(names, us)})
        return row
    for k in names:
        try:
            if runtime == "ort":
                calls[k] = ort_calls([files[k]], xn)[0]
            elif runtime == "openvino":
                calls[k] = openvino_compile(str(files[k]), xn)
            else:
                calls[k] = ncnn_call(*pnnx(files[k], shape), xn)
            calls[k]()
        except Exception as e:  # a form the runtime refuses
            calls.pop(k, None)
            notes[k] = f"{type(e).__name__}: {str(e)[:120]}"
    if runtime == "openvino":
        import openvino as ov

        calls["native"] = openvino_compile(quiet(ov.convert_model, NATIVE[op](out).eval(), example_input=x), xn)
    elif runtime == "ncnn":
        pt = work / f"{tag}_native.pt"
        torch.jit.trace(NATIVE[op](out).eval(), x).save(str(pt))
        try:
            calls["native"] = ncnn_call(*pnnx(pt, shape), xn)
            calls["native"]()
        except Exception as e:
            calls.pop("native", None)
            notes["native"] = str(e)[:120]
    keys = list(calls)
    clock = time.thread_time if runtime == "ort" else time.process_time
    us = interleaved_medians([calls[k] for k in keys], repeat, clock=clock)
    row.update({k: v * 1e6 for k, v in zip(keys, us)})
    row["notes"] = notes
    return row


# ---- formulations measured for small maps (ONNX Runtime) ----------------------------------------------

def form_graph(op: str, shape, out: int, form: str) -> onnx.ModelProto:
    """The default plan's windows written as ``form``: "runs" (poolport's default: per run Slice + pool,
    Concat), "interleave" (per axis, outputs split by index mod m into m uniform streams, one pool each, then
    interleaved by Concat on the next axis + Reshape, after a zero Pad where stream counts differ),
    "shared" (one pool per (kernel, stride, start mod stride) over the whole axis, runs sliced from its
    output), "3d" (the runs form on a (N, C, 1, H, W) view: 3-D pools, which ONNX Runtime does not move to its
    NCHWc layout)."""
    pool = "AveragePool" if op == "avg" else "MaxPool"
    nodes, inits = [], []

    def node(kind, inputs, **attrs):
        name = f"v{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [name], **attrs))
        return name

    def ints(values):
        name = f"c{len(inits)}"
        inits.append(onnx.numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def cut(x, start, stop, dim):
        return node("Slice", [x, ints([start]), ints([stop]), ints([dim])])

    plan = plan_pool(op, tuple(shape[2:]), (out, out))
    x, size = "x", list(shape[2:])
    lift = 1 if form == "3d" else 0
    if lift:
        x = node("Reshape", [x, ints([0, 0, 1, *size])])
    for p in plan.passes:
        a = p.runs_axis
        n, dim = size[a], 2 + lift + a

        def params(k, s):
            kernel, stride = [1] * len(size), [1] * len(size)
            for f in p.folded:
                kernel[f], stride[f] = plan.axes[f].kernel, plan.axes[f].stride
            kernel[a], stride[a] = k, s
            return dict(kernel_shape=[1] * lift + kernel, strides=[1] * lift + stride)

        streams = interleave_streams(n, out) if form == "interleave" else None
        pieces = []
        if streams:
            m, count = len(streams), max(c for *_, c in streams)
            step = next(s for _, _, s, c in streams if c > 1)
            pad = max(0, max(st + (count - 1) * step + k for st, k, _, _ in streams) - n)
            if pad:
                pads = [0] * (2 * (2 + len(size)))
                pads[2 + len(size) + dim] = pad
                x = node("Pad", [x, ints(pads)], mode="constant")
            for st, k, s, c in streams:
                stop = st + (count - 1) * step + k
                part = x if st == 0 and stop == n + pad else cut(x, st, stop, dim)
                part = node(pool, [part], **params(k, step))
                pieces.append(node("Unsqueeze", [part, ints([dim + 1])]) if a == len(size) - 1 else part)
            size[a] = count * m
            for f in p.folded:
                size[f] = plan.axes[f].o
            x = node("Reshape", [node("Concat", pieces, axis=dim + 1), ints([0, 0, *size])])
            if count * m != out:
                x = cut(x, 0, out, dim)
        else:
            pooled = {}
            for r in p.runs:
                s = r.pool_stride
                if form == "shared":
                    key = (r.kernel, s, r.start % s)
                    if key not in pooled:
                        src = x if key[2] == 0 else cut(x, key[2], n, dim)
                        pooled[key] = (node(pool, [src], **params(r.kernel, s)), (n - key[2] - r.kernel) // s + 1)
                    t, total = pooled[key]
                    first, cnt = (r.start - key[2]) // s, 1 if r.stride == 0 else r.count
                    part = t if first == 0 and cnt == total else cut(t, first, first + cnt, dim)
                else:
                    part = x if r.start == 0 and r.stop == n else cut(x, r.start, r.stop, dim)
                    part = node(pool, [part], **params(r.kernel, s))
                pieces.extend([part] * r.copies)
            x = node("Concat", pieces, axis=dim) if len(pieces) > 1 else pieces[0]
        size[a] = out
        for f in p.folded:
            size[f] = plan.axes[f].o
    if lift:
        x = node("Reshape", [x, ints([0, 0, *size])])
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, form, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def interleave_streams(n: int, o: int, most: int = 4):
    """The fewest streams (2..``most``) into which outputs ``i mod m`` split with one window length and one
    step each, as (start, kernel, step, count); None where there is none."""
    from poolport.plan.windows import adaptive_windows

    windows = adaptive_windows(n, o)
    for m in range(2, min(o, most) + 1):
        streams = []
        for r in range(m):
            ws = windows[r::m]
            k = ws[0][1] - ws[0][0]
            steps = {b[0] - a[0] for a, b in zip(ws, ws[1:])}
            if any(b - a != k for a, b in ws) or len(steps) > 1:
                break
            streams.append((ws[0][0], k, steps.pop() if steps else 0, len(ws)))
        else:
            if len({s for *_, s, c in streams if c > 1}) == 1:
                return streams
    return None


FORMS = ("runs", "interleave", "shared", "3d")


def measure_forms(op, shape, out, repeat) -> dict:
    x = torch.randn(*shape)
    xn = x.numpy()
    want = (torch.nn.functional.adaptive_avg_pool2d if op == "avg" else torch.nn.functional.adaptive_max_pool2d)(x, out)
    models, row = {}, {}
    for form in FORMS:
        if form == "interleave" and not any(interleave_streams(n, out) for n in shape[2:]):
            continue
        models[form] = form_graph(op, shape, out, form)
        row[f"{form} nodes"] = len(models[form].graph.node)
    path = Path(tempfile.mkdtemp())
    files = [save(m, path / f"{f}.onnx") for f, m in models.items()] + [one_read(shape, path / "read.onnx")]
    calls = ort_calls(files, xn)
    for form, call in zip(models, calls):
        err = float(np.abs(call()[0] - want.numpy()).max())
        assert err < 1e-5, (form, err)  # every form computes PyTorch's windows
    us = interleaved_medians(calls, repeat, clock=time.thread_time)
    row.update({f: u * 1e6 for f, u in zip([*models, "one read"], us)})
    return row


# ---- tables -------------------------------------------------------------------------------------------

def fmt(v, base=None):
    if v is None:
        return "-"
    return f"{v:.0f}" + (f" ({v / base:.1f}x)" if base else "")


def table(runtime: str, rows) -> list[str]:
    cols = ["poolport", "native", "torch export", "dynamic"]
    cols = [c for c in cols if any(r.get(c) is not None for _, r in rows)]
    head = {"poolport": "poolport", "native": "runtime's own adaptive op", "torch export": "torch dynamo export",
            "dynamic": "poolport dynamic H/W"}
    lines = [f"## {LABEL[runtime]}", "",
             "| op | input -> output | poolport's plan | one read (us) | "
             + " | ".join(f"{head[c]} (us, x one read)" for c in cols)
             + (" | poolport / own op" if "native" in cols else "")
             + (" | poolport / torch export" if "torch export" in cols else "") + " |",
             "|" + "---|" * (4 + len(cols) + ("native" in cols) + ("torch export" in cols))]
    for (op, shape, out), r in rows:
        base = r.get("one read")
        cells = [op, f"{tuple(shape)} -> {out}x{out}", r["plan"], fmt(base)] + [fmt(r.get(c), base) for c in cols]
        pp = r.get("poolport")
        if "native" in cols:
            cells.append(f"{pp / r['native']:.2f}" if pp and r.get("native") else "-")
        if "torch export" in cols:
            cells.append(f"{pp / r['torch export']:.2f}" if pp and r.get("torch export") else "export fails")
        lines.append("| " + " | ".join(cells) + " |")
    notes = {f"{op} {'x'.join(map(str, shape[2:]))}: {k}": v for (op, shape, out), r in rows
             for k, v in r.get("notes", {}).items()}
    if notes:
        lines += [""] + [f"- {k}: {v}" for k, v in notes.items()]
    return lines + [""]


def forms_table(rows) -> list[str]:
    lines = ["## ONNX Runtime: formulations for small maps", "",
             "Same windows, written four ways (`form_graph` in the script; every one checked against torch "
             "here): `runs` is poolport's default form. Microseconds (x one read); nodes in brackets.", "",
             "| op | input -> output | one read | " + " | ".join(FORMS) + " |",
             "|" + "---|" * (3 + len(FORMS))]
    for (op, shape, out), r in rows:
        base = r["one read"]
        cells = [f"{fmt(r[f], base)} [{r[f + ' nodes']}]" if f in r else "-" for f in FORMS]
        lines.append(f"| {op} | {tuple(shape)} -> {out}x{out} | {base:.0f} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--runtime", action="append", choices=RUNTIMES, help="only these runtimes (repeatable)")
    ap.add_argument("--forms", action="store_true", help="also the small-map formulations in ONNX Runtime")
    ap.add_argument("--markdown", help="write the tables to this file")
    args = ap.parse_args()
    from poolport.runtimes.registry import available

    work = Path(tempfile.mkdtemp())
    out = []
    for runtime in args.runtime or RUNTIMES:
        name = {"ort": "onnxruntime"}.get(runtime, runtime)
        if not available(name):
            out += [f"## {LABEL[runtime]}", "", "not installed here", ""]
            continue
        rows = []
        for op, shape, size in CASES:
            r = measure(runtime, op, shape, size, args.repeat, work)
            rows.append(((op, shape, size), r))
            print(runtime, op, shape, size, {k: (round(v) if isinstance(v, float) else v) for k, v in r.items()},
                  flush=True)
        out += table(runtime, rows)
    if args.forms:
        rows = []
        for op, shape, size in CASES:
            r = measure_forms(op, shape, size, args.repeat)
            rows.append(((op, shape, size), r))
            print("forms", op, shape, size, {k: round(v) for k, v in r.items()}, flush=True)
        out += forms_table(rows)
    text = "\n".join(out)
    print(text)
    if args.markdown:
        import openvino

        head = [
            "# Adaptive pooling per runtime: poolport's plan, the runtime's own op, torch's export, one read",
            "",
            f"`.venv/bin/python benchmarks/per_runtime.py --forms --repeat {args.repeat} --markdown {args.markdown}` "
            "(part of `make bench`). One thread everywhere; median CPU time of interleaved, shuffled rounds "
            f"({args.repeat} per graph; ONNX Runtime: the calling thread's CPU time, the others the process's). "
            "\"One read\" is a GlobalAveragePool of the same input: the floor every graph pays (session call, one "
            "pass over the input); \"x one read\" divides by it. poolport's plan is the one `export_onnx(..., "
            "target=RUNTIME)` writes (LiteRT: the edge style). The runtime's own adaptive op: OpenVINO's from "
            "`openvino.convert_model` of the torch module, ncnn's from pnnx of the TorchScript module (both exact "
            "only at the size they were converted at, see input-sizes.md). MNN's converter is called through its "
            "binding on the ONNX files; it has no torch path here. Shared 2-core machine: compare ratios within "
            "one table.",
            "",
            f"Versions: onnxruntime {ort.__version__}, openvino {openvino.__version__.split('-')[0]}, torch "
            f"{torch.__version__.split('+')[0]}.",
            "",
        ]
        Path(args.markdown).write_text("\n".join(head) + "\n" + text + "\n")


if __name__ == "__main__":
    main()
