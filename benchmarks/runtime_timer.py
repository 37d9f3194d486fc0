"""Times ONNX files in MNN or LiteRT, for ``per_runtime.py``: run as ``PYTHON runtime_timer.py JOB.json`` with a
Python that has the runtime (LiteRT: onnx2tf's own environment, ``.venv-litert``). Each file is converted the
way poolport's checks convert it (``src/poolport/runtimes/workers``: MNN's converter binding, onnx2tf), then all
run in interleaved, shuffled rounds (process CPU time, one thread). Prints one JSON line: microseconds per file
(null where conversion or loading failed, with the reason in ``errors``).

JOB.json: ``{"runtime": "mnn" | "litert", "files": [...], "input": "x.npy", "repeat": N, "workdir": DIR}``.
"""

import json
import os
import random
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.join(HERE, "..", "src", "poolport", "runtimes", "workers")


def medians(calls, repeat, warmup=5):
    """Median process CPU seconds per call (see ``timing.interleaved_medians``: same rounds, this Python)."""
    times = [[] for _ in calls]
    order, rng = list(range(len(calls))), random.Random(0)
    for i in range(warmup + repeat):
        rng.shuffle(order)
        for j in order:
            t = time.process_time()
            calls[j]()
            if i >= warmup:
                times[j].append(time.process_time() - t)
    return [statistics.median(t) for t in times]


def mnn_call(path, x):
    import _tools
    import MNN.expr as F
    import MNN.nn as nn

    out = path + ".mnn"
    if not _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", path, "--MNNModel", out, "--bizCode",
                              "poolport"]) or not os.path.exists(out):
        raise RuntimeError("MNN's converter refused the model")
    import onnx

    m = onnx.load(path, load_external_data=False)
    runtime = nn.create_runtime_manager(({"backend": "CPU", "precision": "high", "numThread": 1},))
    module = nn.load_module_from_file(out, [m.graph.input[0].name], [m.graph.output[0].name],
                                      runtime_manager=runtime)

    def call():
        y = module.forward([F.const(x, list(x.shape), F.NCHW)])
        y = y[0] if isinstance(y, (list, tuple)) else y
        return F.convert(y, F.NCHW).read()
    return call


def litert_call(path, x, workdir):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    sys.path.insert(0, WORKERS)
    import litert_worker

    job = {"workdir": os.path.join(workdir, os.path.basename(path) + ".d"), "onnx": path}
    os.makedirs(job["workdir"], exist_ok=True)
    tflite = litert_worker.convert(job)
    interp = Interpreter(model_path=tflite, num_threads=1)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    feed = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if list(d["shape"]) != list(x.shape) else x
    out = interp.get_output_details()[0]["index"]

    def call():
        interp.set_tensor(d["index"], feed)
        interp.invoke()
        return interp.get_tensor(out)
    return call


def main():
    import numpy as np

    job = json.load(open(sys.argv[1]))
    x = np.load(job["input"])
    calls, errors = [], {}
    here = os.getcwd()
    for f in job["files"]:
        try:
            calls.append(mnn_call(f, x) if job["runtime"] == "mnn" else litert_call(f, x, job["workdir"]))
            calls[-1]()
        except Exception as e:  # a runtime that refuses a form: reported, not fatal
            calls.append(None)
            errors[f] = f"{type(e).__name__}: {str(e)[:200]}"
            traceback.print_exc(file=sys.stderr)
        os.chdir(here)
    live = [c for c in calls if c is not None]
    times = iter(medians(live, job["repeat"]))
    result = [None if c is None else next(times) * 1e6 for c in calls]
    print(json.dumps({"us": result, "errors": errors}))


if __name__ == "__main__":
    main()
