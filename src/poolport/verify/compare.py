"""The exported model against the PyTorch model: fresh inputs, the comparison, and the run in ONNX Runtime
and every other runtime asked for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import PoolportError, VerificationError, one_line
from ..onnxfile.files import require_onnx


@dataclass
class Check:
    """One comparison of the exported model (in a runtime) against the original PyTorch model."""

    inputs: str  # "example inputs" | "random inputs #1" ...
    runtime: str
    max_abs_error: float
    max_rel_error: float  # relative to max |reference output|
    passed: bool
    note: str = ""  # why the runtime could not run the model, if it could not
    seed: int | None = None  # the seed of fresh random inputs (None: the example inputs)
    shapes: list | None = None  # the input shapes, where they differ from the example's
    ran: bool = True  # False: the runtime could not load or convert the model (``note`` says why)

    @property
    def label(self) -> str:
        """The inputs, with the seed they were drawn with."""
        return self.inputs + (f" (seed {self.seed})" if self.seed is not None else "")

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


def random_like(args: tuple, seed: int, shapes: list[tuple] | None = None) -> tuple:
    """Fresh inputs with the dtypes of ``args`` (integers stay within the examples' range) and their
    shapes, or ``shapes`` (one per tensor argument)."""
    g = torch.Generator().manual_seed(seed)
    fresh, k = [], 0
    for a in args:
        if not isinstance(a, torch.Tensor):
            fresh.append(a)
            continue
        shape = a.shape if shapes is None else shapes[k]
        k += 1
        if a.dtype.is_floating_point:
            fresh.append(torch.randn(shape, generator=g, dtype=torch.float32).to(a.dtype))
        elif a.dtype == torch.bool:
            fresh.append(torch.rand(shape, generator=g) > 0.5)
        else:
            lo, hi = (int(a.min()), int(a.max())) if a.numel() else (0, 1)
            fresh.append(torch.randint(lo, hi + 1, shape, generator=g, dtype=a.dtype))
    return tuple(fresh)


def shape_text(inputs: tuple) -> str:
    """``1x3x40x47`` (several inputs joined by ``, ``)."""
    return ", ".join("x".join(map(str, t.shape)) for t in inputs if isinstance(t, torch.Tensor))


# Seeds of fresh inputs start here: the command line draws its example inputs with seed 0, and a
# check on the example again would prove nothing new.
FIRST_SEED = 1


def _kind(a: np.ndarray) -> np.ndarray:
    """Per cell: 0 finite, 2 NaN, 1 +inf, -1 -inf."""
    return np.where(np.isfinite(a), 0.0, np.nan_to_num(a, nan=2.0, posinf=1.0, neginf=-1.0))


def difference(reference: np.ndarray, got: np.ndarray) -> tuple[float, float, str]:
    """``(max abs error, scale, problem)`` of ``got`` against ``reference`` (same shape).

    NaN and inf never hide an error: where the two disagree about a cell being finite, NaN, +inf or
    -inf, the error is ``inf`` and ``problem`` says where; elsewhere the error is the largest difference
    of the finite cells, and ``scale`` the largest finite magnitude of the reference."""
    mismatch = _kind(reference) != _kind(got)
    if mismatch.any():
        where = tuple(int(i) for i in np.argwhere(mismatch)[0])
        count = int(mismatch.sum())
        return float("inf"), 0.0, (f"non-finite values differ at index {where}: expected {float(reference[where])}, "
                                   f"got {float(got[where])} ({count} cell{'s' if count != 1 else ''})")
    finite = np.isfinite(reference)
    if not finite.any():
        return 0.0, 0.0, ""
    return float(np.abs(reference[finite] - got[finite]).max()), float(np.abs(reference[finite]).max()), ""


def compare_arrays(reference: list, got: list, against: str = "the reference",
                   unit_dims: bool = False) -> tuple[float, float, str]:
    """``(max abs error, relative to the output scale, problem)`` of ``got`` against ``reference`` (lists of
    arrays). ``problem`` is '' unless the output count, a shape or which cells are finite differ; then both
    errors are inf. ``unit_dims``: accept an output that only adds or drops unit dimensions (ncnn drops the
    batch axis)."""
    def failed(note: str) -> tuple[float, float, str]:
        return float("inf"), float("inf"), note

    if len(got) != len(reference):
        return failed(f"{len(got)} outputs, {against} has {len(reference)}")
    max_abs, scale = 0.0, 0.0
    for k, (r, g) in enumerate(zip(reference, got)):
        r, g = np.asarray(r, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if r.shape != g.shape:
            if not (unit_dims and r.size == g.size and r.ndim != g.ndim):
                return failed(f"output {k} has shape {g.shape}, {against}'s {r.shape}")
            g = g.reshape(r.shape)
        if r.size:
            err, out_scale, problem = difference(r, g)
            if problem:
                return failed(f"output {k}: {problem}")
            max_abs, scale = max(max_abs, err), max(scale, out_scale)
    return max_abs, (max_abs / scale if scale > 0 else max_abs), ""


def compare(reference: list[torch.Tensor], got: list, rtol: float, inputs: str, runtime: str,
            seed: int | None = None, shapes: list | None = None) -> Check:
    """``got`` (a runtime's outputs) against ``reference`` (PyTorch's): max abs error, relative to the
    output scale, passed if within ``rtol``. A count, shape or non-finite mismatch fails, with the reason."""
    max_abs, rel, problem = compare_arrays([r.detach().double().numpy() for r in reference], got, "PyTorch")
    return Check(inputs, runtime, max_abs, rel, not problem and rel <= rtol, problem, seed=seed, shapes=shapes)


def fresh_seeds(args: tuple):
    """Seeds from ``FIRST_SEED`` on, skipping any whose inputs would equal the example inputs (a model's
    example drawn with the same seed would otherwise be checked twice and called fresh)."""
    seed = FIRST_SEED
    while True:
        drawn = random_like(args, seed)
        if not all(torch.equal(a, b) for a, b in zip(drawn, args) if isinstance(a, torch.Tensor)):
            yield seed
        seed += 1


def verify_in_runtimes(model_path: Path, model, args: tuple, random_checks: int, rtol: float,
                       runtimes: tuple[str, ...] = (), example_output=None,
                       sizes: list[list[tuple]] | None = None,
                       progress: Callable[[str], None] | None = None) -> list[Check]:
    """ONNX Runtime on the example inputs and ``random_checks`` random ones (seeds from ``FIRST_SEED``);
    each runtime in ``runtimes`` (openvino, ncnn, mnn, litert: see ``poolport.runtimes``) on the example inputs.
    ``example_output``: PyTorch's output for the example inputs, if already computed. ``sizes``: other
    input shapes (one per tensor input) a dynamic model must accept: each is checked with fresh inputs in
    ONNX Runtime and every runtime in ``runtimes``; a size the PyTorch model itself refuses is skipped.
    ``progress`` hears which runtime is working (converting with pnnx and running ncnn can take a while)."""
    from ..runtimes import registry

    _, ort = require_onnx()
    unknown = [r for r in runtimes if r not in registry.NAMES or r == "onnxruntime"]
    if unknown:
        raise PoolportError(f"cannot verify in {unknown}: choose from {sorted(set(registry.NAMES) - {'onnxruntime'})}.")
    missing = [r for r in runtimes if not registry.available(r)]
    if missing:
        raise PoolportError("; ".join(f"{r} not installed ({registry.get(r).install})" for r in missing) + ".")
    try:
        sess = ort.InferenceSession(str(model_path), verification_session_options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # e.g. NOT_IMPLEMENTED: no kernel for this dtype
        raise VerificationError(
            f"ONNX Runtime cannot load the exported model, so it cannot be verified: {one_line(e)} "
            f"(ONNX Runtime's CPU kernels cover float32 best: verify a float32 copy, e.g. model.float() with "
            f"float32 inputs, or pass verify=False / --no-verify to skip the check.)"
        ) from None
    names = [i.name for i in sess.get_inputs()]
    checks = []
    seeds = fresh_seeds(args)
    sets = [("example inputs", args, None, None)]
    for i in range(random_checks):
        seed = next(seeds)
        sets.append((f"random inputs #{i + 1}", random_like(args, seed), seed, None))
    for shapes in sizes or ():
        seed = next(seeds)
        inputs = random_like(args, seed, shapes)
        sets.append((f"random inputs at {shape_text(inputs)}", inputs, seed, [list(s) for s in shapes]))
    for label, inputs, seed, other_size in sets:
        tensors = [a for a in inputs if isinstance(a, torch.Tensor)]
        if len(tensors) != len(names):
            raise PoolportError(
                f"the exported model takes {len(names)} inputs ({', '.join(names)}) but {len(tensors)} "
                f"tensors were given; pass every model input as a tensor."
            )
        if label == "example inputs" and example_output is not None:
            reference = flatten_outputs(example_output)
        else:
            try:
                with torch.no_grad():
                    reference = flatten_outputs(model(*inputs))
            except Exception:
                if not other_size:
                    raise
                continue  # the PyTorch model itself refuses this size: nothing to compare

        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
        checks.append(compare(reference, sess.run(None, feeds), rtol, label, "onnxruntime", seed, other_size))
        if label != "example inputs" and not other_size:
            continue
        for runtime in runtimes:
            if progress is not None:
                progress(f"verifying: {registry.get(runtime).activity} ({label})")
            try:
                got = registry.run(runtime, model_path, feeds)
            except Exception as e:  # a runtime that refuses the model fails the check, with its own reason
                note = one_line(e if isinstance(e, PoolportError) else f"{type(e).__name__}: {e}")
                checks.append(Check(label, runtime, float("inf"), float("inf"), False, note, seed, other_size,
                                    ran=False))
                continue
            got = [np.asarray(g).reshape(r.shape) if np.asarray(g).size == r.numel() else g for g, r in zip(got, reference)]
            checks.append(compare(reference, got, rtol, label, runtime, seed, other_size))
    return checks


def verification_session_options():
    """ONNX Runtime's defaults (graph optimisations on, as deployments run it), without weight
    prepacking: a session that runs a few times does not repay copying every weight into packed form."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts
