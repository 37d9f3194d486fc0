"""Runtimes run in a process of their own, through the scripts in ``workers/``: a runtime whose converter
or kernels can crash the process on graphs they do not support (a crash must be a refusal, not the end of
poolport), or one that needs its own Python environment. ``IsolatedRuntime`` is their base class; the
functions here start a worker on a batch of jobs and read its answers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PoolportError
from ..onnxfile.files import Model, as_file
from .base import Feeds, Runtime

if TYPE_CHECKING:
    import numpy as np

WORKERS = Path(os.path.abspath(__file__)).parent / "workers"
TIMEOUT_S = 600
TAIL_LINES = 4  # how much of a worker's captured output a refusal quotes


def _expected_outputs(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[str], list[list[int]], list[str]]:
    """Output names, the output shapes for ``feeds`` (ONNX Runtime computes them: the LiteRT worker needs them
    to undo onnx2tf's channels-last layout) and the dtypes (numpy names) ONNX Runtime answers in."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from .onnxruntime_rt import quiet_session_options

    names = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    sess = ort.InferenceSession(str(path), quiet_session_options(), providers=["CPUExecutionProvider"])
    outs = [np.asarray(o) for o in sess.run(None, feeds)]
    return names, [list(o.shape) for o in outs], [o.dtype.name for o in outs]


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
    again one per process, so a crash is pinned on the model that caused it.

    The worker runs in a temporary folder: every path it is given is absolute (a model named relative to
    the caller's working folder included), and so is ``python``."""
    import numpy as np

    python = os.path.abspath(python) if os.sep in python else python  # not resolved: a venv's python is a link
    with contextlib.ExitStack() as stack:
        d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poolport-")))
        jobs = []
        for i, (model, feeds) in enumerate(items):
            # absolute, not resolved: a model's external data lies beside the path it was given
            source = Path(os.path.abspath(stack.enter_context(as_file(model, self_contained=True))))
            work = d / f"job{i}"
            work.mkdir()
            output_names, shapes, dtypes = _expected_outputs(source, feeds)
            np.savez(work / "inputs.npz", **feeds)
            job = {"onnx": str(source), "inputs": str(work / "inputs.npz"), "outputs": str(work / "outputs.npz"),
                   "result": str(work / "result.json"), "log": str(work / "log.txt"), "workdir": str(work),
                   "output_names": output_names, "expected_shapes": shapes, "expected_dtypes": dtypes}
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


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*(:\d+:\s*)?")  # MNN's "[20:53:55] :220: "


def output_tail(text: str, lines: int = TAIL_LINES, width: int = 200) -> str:
    """The last ``lines`` non-empty lines of a tool's output, without terminal colours and time stamps, each
    at most ``width`` characters, joined by " | " ('' for no output): what a converter said last is
    usually why it stopped."""
    kept = [TIMESTAMP.sub("", ANSI.sub("", line)).strip() for line in text.splitlines()]
    kept = [line if len(line) <= width else line[: width - 3] + "..." for line in kept if line]
    return " | ".join(kept[-lines:])


def _said(work: Path, label: str) -> str:
    """What the worker printed while on the job in ``work`` (its converter's own words), as a clause."""
    log = work / "log.txt"
    tail = output_tail(log.read_text(errors="replace")) if log.exists() else ""
    return f"; {label} printed: {tail}" if tail else ""


def _answer(work: Path, label: str, crash: str) -> list[np.ndarray] | PoolportError:
    import numpy as np

    result_file = work / "result.json"
    if not result_file.exists():
        return PoolportError((crash or f"{label} gave no answer") + _said(work, label))
    result = json.loads(result_file.read_text())
    if result["stage"] != "done":
        what = "could not convert the model" if result["stage"] == "convert" else "could not run the model"
        return PoolportError(f"{label} {what}: {result['error'].rstrip('.')}{_said(work, label)}")
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


@dataclass(frozen=True, repr=False)
class IsolatedRuntime(Runtime):
    """A runtime that converts and runs each model in a worker process: ``workers/<worker>.py`` (the
    standard library, numpy and the runtime only), started with ``python()``. A batch takes one process.

    Args:
        worker: the worker script's name in ``workers/``, without ``.py``.
    """

    worker: str = ""

    def python(self) -> str:
        """The Python that runs the worker (this one unless the runtime lives in an environment of its
        own). Raises PoolportError where there is none."""
        return sys.executable

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` converted and run on ``feeds`` in the worker; a PoolportError names the stage (convert
        or run) that refused or crashed, in the runtime's own words."""
        return run_worker(self.worker, self.python(), model, feeds, self.label)

    def run_batch(self, items: list[tuple[Model, Feeds]]) -> list[list[np.ndarray] | Exception]:
        """Each ``(model, feeds)`` of ``items`` in one worker process: its outputs or the PoolportError saying
        why the runtime refused it."""
        return run_many(self.worker, self.python(), items, self.label)
