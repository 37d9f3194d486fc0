"""The exported model against the PyTorch model: fresh inputs, the comparison, and the run in ONNX Runtime
and every other runtime asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import PoolportError
from .model_files import require_onnx


@dataclass
class Check:
    """One comparison of the exported model (in a runtime) against the original PyTorch model."""

    inputs: str  # "example inputs" | "random inputs #1" ...
    runtime: str
    max_abs_error: float
    max_rel_error: float  # relative to max |reference output|
    passed: bool
    note: str = ""  # why the runtime could not run the model, if it could not

    def to_dict(self) -> dict:
        """The check as plain data."""
        return dict(self.__dict__)


def flatten_outputs(out) -> list[torch.Tensor]:
    """Every tensor in a model output (tensors, lists, tuples, dicts), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    if out is None:
        return []
    raise PoolportError(f"cannot verify a model output of type {type(out).__name__}; return tensors.")


def random_like(args: tuple, seed: int, batch: int | None = None) -> tuple:
    """Fresh inputs with the shapes and dtypes of ``args`` (integers stay within the examples' range);
    ``batch`` replaces dimension 0 of every tensor."""
    g = torch.Generator().manual_seed(seed)
    fresh = []
    for a in args:
        if not isinstance(a, torch.Tensor):
            fresh.append(a)
            continue
        shape = a.shape if batch is None or a.dim() == 0 else (batch, *a.shape[1:])
        if a.dtype.is_floating_point:
            fresh.append(torch.randn(shape, generator=g, dtype=torch.float32).to(a.dtype))
        elif a.dtype == torch.bool:
            fresh.append(torch.rand(shape, generator=g) > 0.5)
        else:
            lo, hi = (int(a.min()), int(a.max())) if a.numel() else (0, 1)
            fresh.append(torch.randint(lo, hi + 1, shape, generator=g, dtype=a.dtype))
    return tuple(fresh)


def compare(reference: list[torch.Tensor], got: list, rtol: float, inputs: str, runtime: str) -> Check:
    """``got`` (a runtime's outputs) against ``reference`` (PyTorch's): max abs error, relative to the output scale, passed if within ``rtol``."""
    if len(reference) != len(got):
        return Check(inputs, runtime, float("inf"), float("inf"), False)
    max_abs, scale = 0.0, 0.0
    for r, g in zip(reference, got):
        r = r.detach().double().numpy()
        g = np.asarray(g, dtype=np.float64)
        if r.shape != g.shape:
            return Check(inputs, runtime, float("inf"), float("inf"), False)
        if r.size:
            max_abs = max(max_abs, float(np.abs(r - g).max()))
            scale = max(scale, float(np.abs(r).max()))
    rel = max_abs / scale if scale > 0 else max_abs
    return Check(inputs, runtime, max_abs, rel, bool(rel <= rtol))


def verify_in_runtimes(model_path: Path, model, args: tuple, random_checks: int, rtol: float,
                       runtimes: tuple[str, ...] = (), example_output=None, other_batch: int | None = None) -> list[Check]:
    """ONNX Runtime on the example inputs and ``random_checks`` random ones; each runtime in
    ``runtimes`` (openvino, ncnn: see ``poolport.verify.runtimes``) on the example inputs.
    ``example_output``: PyTorch's output for the example inputs, if already computed.
    ``other_batch``: the last random set uses this batch size (checks a dynamic batch dimension)."""
    from .runtimes import RUNNERS, available

    _, ort = require_onnx()
    unknown = [r for r in runtimes if r not in RUNNERS or r == "onnxruntime"]
    if unknown:
        raise PoolportError(f"cannot verify in {unknown}: choose from {sorted(set(RUNNERS) - {'onnxruntime'})}.")
    missing = [r for r in runtimes if not available(r)]
    if missing:
        raise PoolportError(f"{', '.join(missing)} not installed: pip install 'poolport[runtimes]'.")
    sess = ort.InferenceSession(str(model_path), verification_session_options(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    checks = []
    sets = [("example inputs", args)] + [(f"random inputs #{i + 1}", random_like(args, i)) for i in range(random_checks)]
    if other_batch is not None:
        sets.append((f"random inputs, batch {other_batch}", random_like(args, random_checks, other_batch)))
    for label, inputs in sets:
        tensors = [a for a in inputs if isinstance(a, torch.Tensor)]
        if len(tensors) != len(names):
            raise PoolportError(
                f"the exported model takes {len(names)} inputs ({', '.join(names)}) but {len(tensors)} "
                f"tensors were given; pass every model input as a tensor."
            )
        if label == "example inputs" and example_output is not None:
            reference = flatten_outputs(example_output)
        else:
            with torch.no_grad():
                reference = flatten_outputs(model(*inputs))
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
        checks.append(compare(reference, sess.run(None, feeds), rtol, label, "onnxruntime"))
        if label != "example inputs":
            continue
        for runtime in runtimes:
            try:
                got = RUNNERS[runtime](model_path, feeds)
            except Exception as e:  # a runtime that refuses the model fails the check, with the reason
                note = f"{type(e).__name__}: {str(e)[:80]}"
                checks.append(Check(label, runtime, float("inf"), float("inf"), False, note))
                continue
            got = [np.asarray(g).reshape(r.shape) if np.asarray(g).size == r.numel() else g for g, r in zip(got, reference)]
            checks.append(compare(reference, got, rtol, label, runtime))
    return checks


def verification_session_options():
    """ONNX Runtime's defaults (graph optimisations on, as deployments run it), without weight
    prepacking: a session that runs a few times does not repay copying every weight into packed form."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts
