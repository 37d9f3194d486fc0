"""Convert an ONNX model with MNN's converter binding (``_tools.mnnconvert``: never the ``mnnconvert``
script or ``MNN.tools``, which install packages and send usage data) and run it on MNN's CPU backend
(fp32, ``precision: high``). Run as ``python mnn_worker.py JOB.json`` (see ``protocol.py``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402


def version():
    import MNN

    return MNN.version()


def convert(job):
    import _tools

    out = os.path.join(job["workdir"], "model.mnn")
    ok = _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", job["onnx"], "--MNNModel", out,
                            "--bizCode", "poolport"])
    if not ok or not os.path.exists(out):
        raise RuntimeError("MNN's converter refused the model")  # the parent quotes what it printed
    return out


def run(job, path, inputs):
    import MNN.expr as F
    import MNN.nn as nn
    import numpy as np

    runtime = nn.create_runtime_manager(({"backend": "CPU", "precision": "high", "numThread": 1},))
    names = [name for name, _ in inputs]
    module = nn.load_module_from_file(path, names, job["output_names"], runtime_manager=runtime)
    feeds = [F.const(a.astype(np.float32) if a.dtype == np.float64 else a, list(a.shape), F.NCHW)
             for _, a in inputs]
    outs = module.forward(feeds)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    got = [np.array(F.convert(o, F.NCHW).read()) for o in outs]
    # MNN holds int64 tensors as int32 (its converter narrows them): an output the model gives as int64 is
    # widened back, its values as MNN computed them
    wants = job.get("expected_dtypes", [])
    return [a.astype(np.int64) if a.dtype == np.int32 and k < len(wants) and wants[k] == "int64" else a
            for k, a in enumerate(got)]


if __name__ == "__main__":
    protocol.main(convert, run, version)
