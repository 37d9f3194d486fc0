"""Runtimes run in a separate process, through the scripts in ``workers/``: MNN (its converter and some
kernels crash the process on graphs they do not support: a crash must be a refusal, not the end of
poolport) and LiteRT via onnx2tf (pinned to old onnx/onnxruntime/numpy: its own Python environment).

Where LiteRT's environment is: ``POOLPORT_LITERT_PYTHON`` (a Python with onnx2tf and ai-edge-litert),
else this Python if it has both, else ``.venv-litert`` in the working folder (``make litert`` builds it)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..errors import PoolportError
from ..onnxfile.files import Model, as_file

WORKERS = Path(__file__).parent / "workers"
TIMEOUT_S = 600


def litert_python() -> str | None:
    """The Python that runs onnx2tf and LiteRT, or None if there is none."""
    env = os.environ.get("POOLPORT_LITERT_PYTHON")
    if env:
        return env if _has_litert(env) else None
    if find_spec("onnx2tf") is not None and find_spec("ai_edge_litert") is not None:
        return sys.executable
    local = str(Path.cwd() / ".venv-litert" / "bin" / "python")
    return local if _has_litert(local) else None


@functools.lru_cache(maxsize=None)
def _has_litert(python: str) -> bool:
    """Whether ``python`` exists and has onnx2tf and ai-edge-litert installed (without importing them)."""
    if not Path(python).exists():
        return False
    code = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('onnx2tf') and u.find_spec('ai_edge_litert') else 1)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def mnn_available() -> bool:
    """Whether MNN and its converter binding can be imported here."""
    return find_spec("MNN") is not None and find_spec("_tools") is not None


def _expected_shapes(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[str], list[list[int]]]:
    """Output names and the output shapes for ``feeds`` (ONNX Runtime computes them: the LiteRT worker
    needs them to undo onnx2tf's channels-last layout)."""
    import onnx
    import onnxruntime as ort

    names = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return names, [list(np.shape(o)) for o in sess.run(None, feeds)]


def run_worker(worker: str, python: str, model: Model, feeds: dict[str, np.ndarray], label: str) -> list[np.ndarray]:
    """Run ``workers/<worker>.py`` with ``python`` on ``model`` and ``feeds``; its outputs, or a
    PoolportError that says at which stage ``label`` refused or crashed, in the runtime's own words."""
    (answer,) = run_many(worker, python, [(model, feeds)], label)
    if isinstance(answer, PoolportError):
        raise answer
    return answer


def run_many(worker: str, python: str, items: list[tuple[Model, dict[str, np.ndarray]]],
             label: str) -> list[list[np.ndarray] | PoolportError]:
    """Each ``(model, feeds)`` of ``items`` in one worker process (one start-up for all); per item its
    outputs or the PoolportError saying why ``label`` refused it. Items a crash left unanswered are run
    again one per process, so a crash is pinned on the model that caused it."""
    with contextlib.ExitStack() as stack:
        d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poolport-")))
        jobs = []
        for i, (model, feeds) in enumerate(items):
            source = Path(stack.enter_context(as_file(model, self_contained=True)))
            work = d / f"job{i}"
            work.mkdir()
            output_names, shapes = _expected_shapes(source, feeds)
            np.savez(work / "inputs.npz", **feeds)
            job = {"onnx": str(source), "inputs": str(work / "inputs.npz"), "outputs": str(work / "outputs.npz"),
                   "result": str(work / "result.json"), "workdir": str(work), "output_names": output_names,
                   "expected_shapes": shapes}
            (work / "job.json").write_text(json.dumps(job))
            jobs.append(work)
        crash = _start(worker, python, jobs, d, label)
        if crash and len(jobs) > 1:
            for work in jobs:
                if not (work / "result.json").exists():
                    _start(worker, python, [work], d, label)
        return [_answer(work, label, crash) for work in jobs]


def _start(worker: str, python: str, jobs: list[Path], cwd: Path, label: str) -> str:
    """Run the worker on ``jobs``; '' or what went wrong with the process itself."""
    env = dict(os.environ)
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")  # onnx2tf calls onnxsim
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    cmd = [python, str(WORKERS / f"{worker}.py")] + [str(w / "job.json") for w in jobs]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S * len(jobs))
    except subprocess.TimeoutExpired:
        return f"{label} did not finish within {TIMEOUT_S} s per model"
    if proc.returncode < 0:
        return f"{label} crashed ({signal.Signals(-proc.returncode).name}) converting or running the model"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return f"{label} failed before reporting (exit {proc.returncode}): {' | '.join(tail)}"
    return ""


def _answer(work: Path, label: str, crash: str) -> list[np.ndarray] | PoolportError:
    result_file = work / "result.json"
    if not result_file.exists():
        return PoolportError(crash or f"{label} gave no answer")
    result = json.loads(result_file.read_text())
    if result["stage"] != "done":
        what = "could not convert the model" if result["stage"] == "convert" else "could not run the model"
        return PoolportError(f"{label} {what}: {result['error']}")
    with np.load(work / "outputs.npz") as data:
        return [data[f"out{i}"] for i in range(len(data.files))]


def worker_version(worker: str, python: str) -> str:
    """The version a worker reports for its runtime ('' if it cannot say)."""
    code = (f"import sys; sys.path.insert(0, {str(WORKERS)!r}); import {worker}; print({worker}.version())")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else ""


def run_mnn(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``model`` converted by MNN's converter binding and run on MNN's CPU backend (fp32), in a separate
    process."""
    return run_worker("mnn_worker", sys.executable, model, feeds, "MNN")


def run_litert(model: Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``model`` converted by onnx2tf and run in LiteRT's interpreter, in LiteRT's own environment."""
    python = litert_python()
    if python is None:
        raise PoolportError("LiteRT is not installed: set POOLPORT_LITERT_PYTHON to a Python with onnx2tf and "
                            "ai-edge-litert (make litert builds one in .venv-litert).")
    return run_worker("litert_worker", python, model, feeds, "LiteRT (onnx2tf)")
