"""The exported model against the PyTorch model: fresh inputs, the comparison, and the run in ONNX Runtime
and every other runtime asked for."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import PoolportError, VerificationError, is_interrupt, one_line
from ..onnxfile.files import require_onnx

# what the comparison of one output found (``OutputError.verdict``)
OK, WRONG, NOT_COMPARED, EMPTY = "ok", "WRONG", "not compared", "empty"


@dataclass
class OutputError:
    """One output tensor of a model against the reference, judged on its own scale.

    ``verdict`` is ``"ok"`` (max abs error within ``rtol`` x this output's scale, its largest finite
    reference magnitude), ``"WRONG"`` (beyond that, or the shape, the dtype or which cells are NaN, +inf
    or -inf differ: ``problem`` says which), ``"not compared"`` (cells there, but not one finite on either
    side: nothing was verified) or ``"empty"`` (zero-size on both sides, with the same shape)."""

    index: int
    name: str  # the output's name in the graph, or ""
    verdict: str
    max_abs_error: float | None = None  # None: no finite cell to measure (``not compared``, ``empty``)
    max_rel_error: float | None = None  # max abs error / this output's scale
    problem: str = ""

    @property
    def label(self) -> str:
        """``output 1 (scores)``."""
        return f"output {self.index}" + (f" ({self.name})" if self.name else "")

    def to_dict(self) -> dict:
        """The output's row as plain data."""
        return dict(self.__dict__)


@dataclass
class Comparison:
    """What ``compare_arrays`` found: one ``OutputError`` per output, or ``problem`` when the answer as a
    whole does not match (another number of outputs)."""

    outputs: list[OutputError]
    problem: str = ""

    @property
    def passed(self) -> bool:
        """Every output within tolerance or empty on both sides, and at least one compared: an answer with
        nothing compared (every output empty, or all NaN/inf on both sides) never passes."""
        return (not self.problem and all(o.verdict in (OK, EMPTY) for o in self.outputs)
                and any(o.verdict == OK for o in self.outputs))

    @property
    def verdict(self) -> str:
        """``"ok"`` (passed), ``"WRONG"`` (an output differs, or the number of outputs) or ``"not compared"``
        (nothing wrong, but no output had a finite value to compare, or every one was empty)."""
        if self.passed:
            return OK
        if self.problem or any(o.verdict == WRONG for o in self.outputs):
            return WRONG
        return NOT_COMPARED

    def _worst(self, attr: str) -> float | None:
        if self.problem:
            return float("inf")
        found = [getattr(o, attr) for o in self.outputs if getattr(o, attr) is not None]
        return max(found) if found else None

    @property
    def max_abs_error(self) -> float | None:
        """The largest absolute error over the outputs (inf where one does not match in count, shape, dtype
        or non-finite cells; None where no output had a finite cell to measure)."""
        return self._worst("max_abs_error")

    @property
    def max_rel_error(self) -> float | None:
        """The largest error over the outputs, each relative to its own output's scale."""
        return self._worst("max_rel_error")

    @property
    def reason(self) -> str:
        """Why the answer did not pass, in a sentence ('' when it passed)."""
        if self.passed:
            return ""
        if self.problem:
            return self.problem
        bad = [f"{o.label}: {o.problem}" for o in self.outputs if o.verdict not in (OK, EMPTY)]
        if bad:
            return "; ".join(bad)
        if self.outputs:
            return "nothing compared: every output is empty (zero-size) on both sides"
        return "nothing compared: there are no outputs"


@dataclass
class Check:
    """One comparison of the exported model (in a runtime) against the original PyTorch model."""

    inputs: str  # "example inputs" | "random inputs #1" ...
    runtime: str
    max_abs_error: float | None  # the largest over the outputs; None: nothing compared (no finite cell)
    max_rel_error: float | None  # the largest over the outputs, each relative to its own max |reference|
    passed: bool
    note: str = ""  # why it did not pass: the runtime could not run the model, or what differs where
    seed: int | None = None  # the seed of fresh random inputs (None: the example inputs)
    shapes: list | None = None  # the input shapes, where they differ from the example's
    ran: bool = True  # False: the runtime could not load, convert or run the model (``note`` says why)
    outputs: list[OutputError] = field(default_factory=list)  # per output, its own error and verdict

    @property
    def label(self) -> str:
        """The inputs, with the seed they were drawn with."""
        return self.inputs + (f" (seed {self.seed})" if self.seed is not None else "")

    @property
    def unjudged(self) -> bool:
        """It ran and nothing in it is wrong, yet it did not pass: an output had no finite value to compare
        (all NaN or inf on both sides), or every output was empty."""
        return (self.ran and not self.passed and self.max_abs_error != float("inf")
                and not any(o.verdict == WRONG for o in self.outputs))

    def to_dict(self) -> dict:
        """The check as plain data."""
        return {**self.__dict__, "outputs": [o.to_dict() for o in self.outputs]}


@contextlib.contextmanager
def failing_module(model: torch.nn.Module):
    """Yields the list of module paths being run; when a forward raises, its post-hooks never run, so the
    list then ends with the path of the module that failed."""
    names = {id(m): (n or "<root>") + f" ({type(m).__name__})" for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(module, args):
        if id(module) in names:
            stack.append(names[id(module)])

    def leave(module, args, output):
        if id(module) in names and stack:
            stack.pop()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class Refusal:
    """The PyTorch model itself failed at one of the other sizes verification picked: nothing to compare
    there. ``module`` is the module that raised (its path and class), ``error`` the model's own error."""

    inputs: str  # the input shapes, "1x3x65x97"
    module: str
    error: str

    def __str__(self) -> str:
        return f"at {self.inputs} the model raised in {self.module}: {self.error}"


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


def cloned(args):
    """A copy of ``args`` (tensors, and lists, tuples and dicts of them) that a model may change in place
    (``x.mul_(2)``, ``nn.ReLU(inplace=True)``) without touching the inputs as given."""
    if isinstance(args, torch.Tensor):
        return args.clone()
    if isinstance(args, (list, tuple)):
        return type(args)(cloned(a) for a in args)
    if isinstance(args, dict):
        return {k: cloned(v) for k, v in args.items()}
    return args


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
    of the finite cells, and ``scale`` the largest finite magnitude of the reference (both 0 where no
    cell is finite: ``compare_output`` calls that output "not compared", never right)."""
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


def _same_but_unit_dims(a: tuple, b: tuple) -> bool:
    return [d for d in a if d != 1] == [d for d in b if d != 1]


def compare_output(index: int, reference: np.ndarray, got, rtol: float, against: str = "the reference",
                   unit_dims: bool = False, name: str = "", dtype: str | None = None) -> OutputError:
    """One output ``got`` against ``reference``, on the reference's own scale (see ``compare_arrays``)."""
    reference, got = np.asarray(reference), np.asarray(got)
    expected = dtype or reference.dtype.name
    dtype_problem = f"dtype {got.dtype.name}, {against}'s {expected}" if got.dtype.name != expected else ""

    def wrong(*problems: str) -> OutputError:
        return OutputError(index, name, WRONG, float("inf"), float("inf"), "; ".join(p for p in problems if p))

    if got.shape != reference.shape:
        if not (unit_dims and _same_but_unit_dims(got.shape, reference.shape)):
            return wrong(f"shape {got.shape}, {against}'s {reference.shape}", dtype_problem)
        got = got.reshape(reference.shape)  # only unit dimensions added or dropped: the same cells, in order
    if not reference.size:
        return wrong(dtype_problem) if dtype_problem else OutputError(index, name, EMPTY)
    r, g = reference.astype(np.float64), got.astype(np.float64)
    err, scale, problem = difference(r, g)
    if problem:
        return wrong(problem, dtype_problem)
    if not np.isfinite(r).any():
        return wrong(dtype_problem) if dtype_problem else OutputError(index, name, NOT_COMPARED, problem=(
            f"no finite value to compare: all {r.size} cells are NaN or inf, in {against} and in the answer alike"))
    rel = err / scale if scale > 0 else err
    problems = [dtype_problem] if dtype_problem else []
    if rel > rtol:
        problems.append(f"max abs error {err:.3g} is {rel:.3g} x its scale {scale:.3g} (tolerance {rtol:g})")
    return OutputError(index, name, WRONG if problems else OK, err, rel, "; ".join(problems))


def compare_arrays(reference: list, got: list, *, rtol: float, against: str = "the reference",
                   unit_dims: bool = False, names: list[str] | None = None,
                   dtypes: list[str | None] | None = None) -> Comparison:
    """``got`` (a runtime's outputs, a list of arrays) against ``reference``: every output judged on its own.

    Output ``k`` passes when its max abs error is within ``rtol`` x its own scale (its largest finite
    reference magnitude; a large output never hides a wrong small one), its shape and dtype are the
    reference's (``dtypes[k]``, a numpy dtype name, where given: the type the model declares, when the
    reference was computed at another precision) and its NaN, +inf and -inf cells are exactly the
    reference's. An output with cells but no finite one on either side is ``not compared``; one that is
    empty on both sides is neither right nor wrong. The answer passes when every output passes or is
    empty and at least one was compared: nothing compared is never a pass (``Comparison.passed``).
    ``unit_dims``: accept an output that only adds or drops unit dimensions (ncnn drops the batch axis).
    ``names``: the outputs' names, for the report."""
    if len(got) != len(reference):
        return Comparison([], f"{len(got)} outputs, {against} has {len(reference)}")
    names, dtypes = list(names or ()), list(dtypes or ())
    return Comparison([
        compare_output(k, r, g, rtol, against, unit_dims, names[k] if k < len(names) else "",
                       dtypes[k] if k < len(dtypes) else None)
        for k, (r, g) in enumerate(zip(reference, got))
    ])


def torch_dtype_name(t: torch.Tensor) -> str:
    """``float32``, ``int64``, ``bool``, ``bfloat16``: the numpy name of a tensor's dtype."""
    return str(t.dtype).removeprefix("torch.")


def as_reference(t: torch.Tensor) -> np.ndarray:
    """A PyTorch output as a numpy array to compare with (floating types in float64, the others as they are)."""
    t = t.detach().cpu()
    return (t.double() if t.is_floating_point() else t).numpy()


def compare(reference: list[torch.Tensor], got: list, rtol: float, inputs: str, runtime: str,
            seed: int | None = None, shapes: list | None = None, names: list[str] | None = None,
            unit_dims: bool = False) -> Check:
    """``got`` (a runtime's outputs) against ``reference`` (PyTorch's), output by output
    (``compare_arrays``): each within ``rtol`` x its own scale, with PyTorch's shapes and dtypes and its
    NaN/inf cells, and something compared."""
    result = compare_arrays([as_reference(r) for r in reference], got, rtol=rtol, against="PyTorch",
                            unit_dims=unit_dims, names=names, dtypes=[torch_dtype_name(r) for r in reference])
    return Check(inputs, runtime, result.max_abs_error, result.max_rel_error, result.passed, result.reason,
                 seed=seed, shapes=shapes, outputs=result.outputs)


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
                       progress: Callable[[str], None] | None = None,
                       refused: list[Refusal] | None = None, wanted: int | None = None) -> list[Check]:
    """ONNX Runtime on the example inputs and ``random_checks`` random ones (seeds from ``FIRST_SEED``);
    each runtime in ``runtimes`` (openvino, ncnn, mnn, litert: see ``poolport.runtimes``) on the example inputs.
    ``example_output``: PyTorch's output for the example inputs, if already computed. ``sizes``: other
    input shapes (one per tensor input) a dynamic model must accept: each is checked with fresh inputs in
    ONNX Runtime and every runtime in ``runtimes``; a size the PyTorch model itself refuses is skipped
    (and, with ``refused``, appended to it as a ``Refusal``: the size, the module that raised, its error);
    with ``wanted``, the sizes after the first ``wanted`` that PyTorch ran are spares, for those it refused.
    A runtime, ONNX Runtime included, that cannot run the model fails its check (``ran=False``) with its
    reason.
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
    output_names = [o.name for o in sess.get_outputs()]
    rows: list[list[Check]] = []  # per input set: its check in ONNX Runtime, then those in ``runtimes``
    pending = []  # the sets the runtimes run: (row, label, seed, other size, reference, feeds)
    seeds = fresh_seeds(args)
    sets = [("example inputs", args, None, None)]
    for i in range(random_checks):
        seed = next(seeds)
        sets.append((f"random inputs #{i + 1}", random_like(args, seed), seed, None))
    for shapes in sizes or ():
        seed = next(seeds)
        inputs = random_like(args, seed, shapes)
        sets.append((f"random inputs at {shape_text(inputs)}", inputs, seed, [list(s) for s in shapes]))
    ran_at = 0  # other sizes PyTorch ran at
    for label, inputs, seed, other_size in sets:
        if other_size and wanted is not None and ran_at >= wanted:
            break  # enough sizes: the rest were spares
        tensors = [a for a in inputs if isinstance(a, torch.Tensor)]
        if len(tensors) != len(names):
            raise PoolportError(
                f"the exported model takes {len(names)} inputs ({', '.join(names)}) but {len(tensors)} "
                f"tensors were given; pass every model input as a tensor."
            )
        # the runtimes get the inputs as given: copied before PyTorch runs, which may change them in place
        feeds = {n: t.detach().cpu().numpy().copy() for n, t in zip(names, tensors)}
        if label == "example inputs" and example_output is not None:
            reference = flatten_outputs(example_output)
        else:
            try:
                with torch.no_grad(), failing_module(model) as path:
                    reference = flatten_outputs(model(*cloned(inputs)))
            except Exception as e:
                if is_interrupt(e) or isinstance(e, PoolportError) and not other_size:
                    raise
                first = (str(e).strip().splitlines() or [""])[0].rstrip(" .") + "."
                refusal = Refusal(shape_text(inputs), path[-1] if path else "the model's own forward",
                                  f"{type(e).__name__}: {one_line(first, 300)}")
                if not other_size:  # the model's own failure, at the example's size: not poolport's
                    raise PoolportError(
                        f"the model fails on {label} (seed {seed}, {refusal.inputs}) in {refusal.module}: "
                        f"{refusal.error} It ran on the example inputs: check that it accepts other values of "
                        f"this shape, or pass random_checks=0 (--random-checks 0)."
                    ) from None
                if refused is not None:  # the PyTorch model itself refuses this size: nothing to compare
                    refused.append(refusal)
                continue
        ran_at += bool(other_size)
        try:
            got = sess.run(None, feeds)
        except Exception as e:  # the exported graph fails where PyTorch ran: a failed check, with ORT's reason
            note = one_line(f"could not run it at {shape_text(inputs)}: {type(e).__name__}: {e}")
            rows.append([Check(label, "onnxruntime", float("inf"), float("inf"), False, note, seed, other_size,
                               ran=False)])
            continue
        rows.append([compare(reference, got, rtol, label, "onnxruntime", seed, other_size, output_names)])
        if runtimes and (label == "example inputs" or other_size):
            pending.append((rows[-1], label, seed, other_size, reference, feeds))
    for runtime in runtimes:
        if not pending:
            break
        # every size at once: ncnn converts a model with dynamic sizes once (pnnx), not once per size
        if progress is not None:
            what = pending[0][1] if len(pending) == 1 else f"{len(pending)} input sets"
            progress(f"verifying: {registry.get(runtime).activity} ({what})")
        try:
            answers, how = registry.run_sizes(runtime, model_path,
                                              [{k: v.copy() for k, v in p[5].items()} for p in pending])
        except Exception as e:  # refused before any size ran: every check says why
            answers, how = [e] * len(pending), ""
        for (row, label, seed, other_size, reference, _), got in zip(pending, answers):
            if isinstance(got, Exception):  # a runtime that refuses the model fails the check, with its reason
                note = one_line(got if isinstance(got, PoolportError) else f"{type(got).__name__}: {got}")
                check = Check(label, runtime, float("inf"), float("inf"), False, note, seed, other_size, ran=False)
            else:  # ncnn drops the batch axis: unit dimensions may differ, nothing else
                check = compare(reference, got, rtol, label, runtime, seed, other_size, output_names,
                                unit_dims=True)
            if how and check.ran:  # how the runtime ran them (pnnx refused a conversion for dynamic sizes):
                check.note = f"{check.note} ({how})" if check.note else how  # said once, where it ran
                how = ""
            row.append(check)
    checks = [c for row in rows for c in row]
    return checks


def verification_session_options():
    """ONNX Runtime's defaults (graph optimisations on, as deployments run it), without weight
    prepacking: a session that runs a few times does not repay copying every weight into packed form."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts
