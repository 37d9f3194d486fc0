"""The job format both workers share (standard library only, so a worker in another Python environment
can import it by path).

A job is a JSON file: ``{"onnx": path, "inputs": npz path, "outputs": npz path, "result": json path,
"log": text path, "workdir": folder, "expected_shapes": [[...], ...]}``, every path absolute. The worker
writes ``result``: ``{"stage": "convert" | "run" | "done", "error": str, "version": str, "converted":
bool}`` and, when done, the outputs in order as ``out0, out1, ...`` in ``outputs``. What the converter and
the runtime print while on the job (to the standard output and error, from Python or C++) goes to ``log``,
where the parent reads why a converter refused a model."""

import contextlib
import json
import os
import sys
import traceback


@contextlib.contextmanager
def captured(log_path):
    """File descriptors 1 and 2 (what Python and C++ code print) go to ``log_path`` meanwhile."""
    if not log_path:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    with open(log_path, "ab") as log:
        for fd, _ in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def run_job(job_path, convert, run, version):
    """Read the job, ``convert(job) -> artefact``, ``run(job, artefact, inputs) -> [arrays]``, write the
    result; every exception is caught and reported with the stage it happened in."""
    import numpy as np

    with open(job_path) as f:
        job = json.load(f)
    result = {"stage": "convert", "error": "", "version": "", "converted": False}
    try:
        with captured(job.get("log")):
            result["version"] = version()
            artefact = convert(job)
            result["converted"] = True
            result["stage"] = "run"
            with np.load(job["inputs"]) as data:
                inputs = [(name, np.ascontiguousarray(data[name])) for name in data.files]
            outputs = run(job, artefact, inputs)
        np.savez(job["outputs"], **{f"out{i}": np.asarray(o) for i, o in enumerate(outputs)})
        result["stage"] = "done"
    except BaseException as e:  # noqa: BLE001 - the parent reports it
        lines = traceback.format_exception_only(type(e), e)
        result["error"] = "".join(lines).strip()[-1500:]
    with open(job["result"], "w") as f:
        json.dump(result, f)
    return 0


def main(convert, run, version):
    """``python worker.py JOB.json [JOB.json ...]``: the jobs in turn, in one process (LiteRT's worker
    spends seconds importing TensorFlow; a batch pays that once)."""
    for job in sys.argv[1:]:
        run_job(job, convert, run, version)
    sys.exit(0)
