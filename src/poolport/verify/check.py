"""``poolport check``: run an ONNX file in every selected runtime and compare each with a reference.

The reference is the ONNX reference evaluator (``onnx.reference``, written from the operator
definitions) for small graphs without an asymmetrically padded MaxPool (which it computes wrongly) and
whose computation meets no NaN (its pooling skips NaN, where ONNX Runtime and PyTorch carry it through),
else ONNX Runtime. A runtime that is not installed is listed and skipped; one that refuses the model
(conversion or loading) is reported with its own reason; one with an output that differs from the
reference's by more than ``rtol`` x that output's own scale is WRONG. The check fails closed: NaN or inf
where the reference has none (or none where it has), a wrong shape or dtype, another number of outputs,
a refusal, an output with no finite value to compare, or no runtime run at all is never "passed"."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PoolportError, one_line
from ..onnxfile.graph import output_types
from .compare import OutputError, compare_arrays

# how the summary line names a failed runtime's verdict
_FAILED = {"refused": "refused the model", "not compared": "nothing compared, so nothing was verified"}

DEFAULT_RTOL = 1e-4
# the reference evaluator is plain numpy: fast enough for pooling graphs and small models only
EVALUATOR_MAX_NODES = 300
EVALUATOR_MAX_WEIGHTS = 2_000_000


@dataclass
class RuntimeResult:
    """One runtime's row: did it convert and run the model, and how far from the reference."""

    runtime: str
    version: str
    verdict: str  # "ok" | "WRONG" | "not compared" | "refused" | "not installed" | "reference"
    converted: bool = False
    max_abs_error: float | None = None  # the largest over the outputs
    max_rel_error: float | None = None  # the largest over the outputs, each relative to its own scale
    reason: str = ""
    outputs: list[OutputError] = field(default_factory=list)  # per output, its own error and verdict

    @property
    def failed(self) -> bool:
        """Wrong numbers, a refusal, or nothing to compare (a runtime that is not installed is not a
        failure of the model)."""
        return self.verdict in ("WRONG", "not compared", "refused")

    def to_dict(self) -> dict:
        """The row as plain data."""
        return {**self.__dict__, "outputs": [o.to_dict() for o in self.outputs]}


@dataclass
class CheckReport:
    """What ``check_model`` found."""

    model: str
    inputs: dict[str, list[int]]
    reference: str
    rtol: float
    seed: int
    results: list[RuntimeResult] = field(default_factory=list)
    reference_note: str = ""  # why the reference is not the one asked for, if it is not

    @property
    def ran(self) -> list[RuntimeResult]:
        """The rows of runtimes that ran the model and were compared with the reference."""
        return [r for r in self.results if r.verdict in ("ok", "WRONG", "not compared")]

    @property
    def passed(self) -> bool:
        """Every selected, installed runtime converted and ran the model and agrees; at least one did."""
        return bool(self.ran) and not any(r.failed for r in self.results)

    def failure(self) -> str:
        """'' when the check passed, else one line that says what happened: each runtime that failed (a
        refusal with its reason), or, where none ran, why each selected runtime did not."""
        failed = [r for r in self.results if r.failed]
        if failed:
            return "check failed: " + "; ".join(
                f"{r.runtime} {_FAILED.get(r.verdict, r.verdict)}"
                + (f": {r.reason.rstrip('.')}" if r.reason else "") for r in failed)
        if self.passed:
            return ""
        why = {"not installed": "is not installed", "reference": "is the reference itself"}
        return "nothing was checked: " + "; ".join(
            f"{r.runtime} {why.get(r.verdict, r.verdict)}" + (f" ({r.reason.rstrip('.')})" if r.reason else "")
            for r in self.results)

    def to_dict(self) -> dict:
        """The report as plain data (``poolport check --json``)."""
        return {"model": self.model, "inputs": self.inputs, "reference": self.reference,
                "reference_note": self.reference_note, "rtol": self.rtol, "seed": self.seed, "passed": self.passed,
                "results": [r.to_dict() for r in self.results]}

    def table(self) -> str:
        """The report as a text table."""
        head = ("runtime", "version", "converted", "max abs", "max rel", "verdict")
        rows = [head]
        for r in self.results:
            rows.append((r.runtime, r.version or "-", "yes" if r.converted else "-" if r.verdict == "not installed"
                         else "no",
                         _figure(r.max_abs_error), _figure(r.max_rel_error),
                         r.verdict + (f": {r.reason}" if r.reason else "")))
        text = _aligned(rows)
        several = [r for r in self.results if len(r.outputs) > 1]
        if several:  # each output on its own scale
            per = [("runtime", "output", "max abs", "max rel", "verdict")]
            per += [(r.runtime, o.label, _figure(o.max_abs_error), _figure(o.max_rel_error), o.verdict)
                    for r in several for o in r.outputs]
            text += "\n\nper output:\n" + _aligned(per)
        return text


def _figure(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _aligned(rows: list[tuple[str, ...]]) -> str:
    """Rows as columns, the last one unpadded (it holds reasons)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows)


def missing_external_data(path: Path) -> list[str]:
    """External data files the model at ``path`` names that are missing or too short (MNN, given a
    graph without its data, silently reads zeros: such a model must be refused, not checked)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    problems = {}
    for t in proto.graph.initializer:
        if not uses_external_data(t):
            continue
        info = {e.key: e.value for e in t.external_data}
        f = path.parent / info.get("location", "")
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        if not f.is_file():
            problems[str(f)] = "missing"
        elif f.stat().st_size < end:
            problems.setdefault(str(f), f"shorter than the model says ({f.stat().st_size} < {end} bytes)")
    return [f"{f} ({why})" for f, why in problems.items()]


def input_shapes(proto, given: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Every graph input's shape: the model's static dims, or ``given`` (by name; the key "" means the
    only input). A dynamic dimension nobody gave is an error naming the input."""
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = [vi for vi in proto.graph.input if vi.name not in inits]
    given = dict(given)
    if "" in given:
        if len(graph_inputs) != 1:
            raise PoolportError(f"the model has {len(graph_inputs)} inputs ({', '.join(v.name for v in graph_inputs)}): "
                                f"give each as --input NAME=1x3x224x224.")
        given[graph_inputs[0].name] = given.pop("")
    unknown = set(given) - {v.name for v in graph_inputs}
    if unknown:
        raise PoolportError(f"the model has no input named {', '.join(sorted(unknown))}; its inputs are "
                            f"{', '.join(v.name for v in graph_inputs)}.")
    shapes = {}
    for vi in graph_inputs:
        dims = vi.type.tensor_type.shape.dim
        static = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
        if vi.name in given:
            shape = tuple(given[vi.name])
            if len(shape) != len(static):
                raise PoolportError(f"input {vi.name} has rank {len(static)}, --input gives {len(shape)} dims "
                                    f"({'x'.join(map(str, shape))}).")
            clash = [i for i, (s, g) in enumerate(zip(static, shape)) if s is not None and s != g]
            if clash:
                raise PoolportError(f"input {vi.name} is fixed at {'x'.join(str(s or '?') for s in static)}; "
                                    f"--input gives {'x'.join(map(str, shape))}.")
        elif any(s is None for s in static):
            raise PoolportError(f"input {vi.name} has dynamic dimensions ({'x'.join(str(s or '?') for s in static)}): "
                                f"give its size, e.g. --input {vi.name}={'x'.join(str(s or 1) for s in static)}.")
        else:
            shape = tuple(static)
        shapes[vi.name] = shape
    return shapes


def random_inputs(proto, shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """N(0, 1) for floating inputs, 0/1 for integer and boolean ones."""
    import onnx

    rng = np.random.default_rng(seed)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in proto.graph.input}
    feeds = {}
    for name, shape in shapes.items():
        dtype = onnx.helper.tensor_dtype_to_np_dtype(types[name])
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def evaluator_computes(proto) -> bool:
    """Whether onnx's reference evaluator can be trusted with ``proto``: onnx 1.23's evaluator reads MaxPool's
    ``pads`` per axis pair instead of begins-then-ends, so a MaxPool that pads asymmetrically (explicitly or
    by auto_pad SAME_*) gets a wrong output size there; and it computes a padded MaxPool's Indices output
    wrongly (measured: -1 and indices of other cells for k3 s1 pads 1 on 4x4, where ONNX Runtime and torch
    agree). Nor an LpPool with ceil_mode: the evaluator multiplies the average of a ceil_mode overhang window's
    real cells by the kernel's cell count, where ONNX Runtime sums the real cells (padding adds nothing to the
    sum)."""
    from onnx import helper

    for node in proto.graph.node:
        if node.op_type == "LpPool" and any(at.name == "ceil_mode" and at.i for at in node.attribute):
            return False
        if node.op_type != "MaxPool":
            continue
        a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        if a.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", b"SAME_LOWER", "SAME_UPPER", "SAME_LOWER"):
            return False
        pads = list(a.get("pads", []))
        if pads and pads[: len(pads) // 2] != pads[len(pads) // 2:]:
            return False
        if any(pads) and len(node.output) > 1 and node.output[1]:
            return False
    return True


def _use_evaluator(proto) -> bool:
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    return len(proto.graph.node) <= EVALUATOR_MAX_NODES and weights <= EVALUATOR_MAX_WEIGHTS and evaluator_computes(proto)


def run_evaluator(proto, feeds) -> tuple[list[np.ndarray], str]:
    """The ONNX reference evaluator's outputs for ``feeds``, and the first value of its computation that
    holds NaN ('' if none). Such a run must not judge: the evaluator's pooling pads with NaN and drops NaN
    from every window, where ONNX Runtime and PyTorch carry a NaN through."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):
        values = ReferenceEvaluator(proto).run(None, feeds, intermediate=True)
    nan_in = next((name for name, v in values.items()
                   if isinstance(v, np.ndarray) and v.dtype.kind in "fc" and np.isnan(v).any()), "")
    return [np.asarray(values[o.name]) for o in proto.graph.output], nan_in


def reference_outputs(path: Path, proto, feeds, reference: str) -> tuple[str, list[np.ndarray], str]:
    """``(which reference, its outputs, why not the evaluator)``: ``reference`` is "auto", "evaluator" or
    "onnxruntime". "auto" takes the evaluator for small graphs it computes right, unless its computation
    meets NaN (then ONNX Runtime, and the last item says why); "evaluator" refuses such a model.

    Raises:
        PoolportError: no reference can run the model, or the evaluator was asked for and cannot judge it.
    """
    if reference not in ("auto", "evaluator", "onnxruntime"):
        raise PoolportError(f"reference must be auto, evaluator or onnxruntime, got {reference!r}.")
    if reference == "evaluator" and not evaluator_computes(proto):
        raise PoolportError("the ONNX reference evaluator computes MaxPool with asymmetric pads wrongly (onnx "
                            "1.23); use --reference onnxruntime or auto.")
    note = ""
    if reference == "evaluator" or (reference == "auto" and _use_evaluator(proto)):
        try:
            full = proto if not proto.graph.initializer or not _has_external(proto) else _load_full(path)
            outputs, nan_in = run_evaluator(full, feeds)
        except Exception as e:
            if reference == "evaluator":
                raise PoolportError(f"the ONNX reference evaluator cannot run the model: {one_line(e)}") from None
        else:
            if not nan_in:
                return "onnx reference evaluator", outputs, ""
            note = (f"the model computes NaN on these inputs (first in {nan_in!r}), and the ONNX reference "
                    f"evaluator's pooling skips NaN where ONNX Runtime and PyTorch carry it through")
            if reference == "evaluator":
                raise PoolportError(f"the ONNX reference evaluator cannot judge this model: {note}; use "
                                    f"--reference onnxruntime or auto.")
    from ..runtimes.onnxruntime_rt import run_onnxruntime

    try:
        return "onnxruntime", [np.asarray(o) for o in run_onnxruntime(path, feeds)], note
    except Exception as e:
        raise PoolportError(f"no reference: ONNX Runtime cannot run the model either: {one_line(e)}") from None


def _has_external(proto) -> bool:
    from ..onnxfile.files import has_external_data

    return has_external_data(proto)


def _load_full(path: Path):
    import onnx

    return onnx.load(str(path))


def check_model(path: str | Path, inputs: dict[str, tuple[int, ...]] | None = None,
                runtimes: tuple[str, ...] | None = None, reference: str = "auto", rtol: float = DEFAULT_RTOL,
                seed: int = 0, progress=None) -> CheckReport:
    """Run the ONNX file ``path`` in each of ``runtimes`` (default: every runtime poolport knows) that is
    installed, compare with the reference on random inputs (``seed``), and return a CheckReport.

    Raises:
        PoolportError: a file that is not an ONNX model, missing external data, an input size that is
            missing or wrong, or no reference.
    """
    import onnx

    from ..runtimes import registry

    path = Path(path)
    if not path.is_file():
        raise PoolportError(f"{path} does not exist.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise PoolportError(f"{path} is not an ONNX model: {one_line(e)}") from None
    if not proto.graph.node and not proto.graph.output:
        raise PoolportError(f"{path} is not an ONNX model (no graph).")
    missing = missing_external_data(path)
    if missing:
        raise PoolportError(f"{path} keeps weights in external data that is not there: {'; '.join(missing)}. "
                            f"Put the data file beside the model (some runtimes, MNN among them, would silently "
                            f"read zeros instead).")
    selected = registry.select(runtimes) if runtimes else registry.NAMES
    shapes = input_shapes(proto, inputs or {})
    feeds = random_inputs(proto, shapes, seed)
    ref_name, want, note = reference_outputs(path, proto, feeds, reference)
    report = CheckReport(str(path), {k: list(v) for k, v in shapes.items()}, ref_name, rtol, seed,
                         reference_note=note)
    declared = output_types(proto)
    for runtime in selected:
        if not registry.available(runtime):
            report.results.append(RuntimeResult(runtime, "", "not installed", reason=registry.get(runtime).missing()))
            continue
        ver = registry.version(runtime)
        if runtime == "onnxruntime" and ref_name == "onnxruntime":
            report.results.append(RuntimeResult(runtime, ver, "reference", converted=True))
            continue
        if progress is not None:
            progress(f"checking in {runtime}")
        try:
            got = registry.run(runtime, path, {k: v.copy() for k, v in feeds.items()})
        except Exception as e:
            reason = one_line(e)
            # the isolated runtimes say which stage refused: a model that converted but would not run
            report.results.append(RuntimeResult(runtime, ver, "refused", "could not run" in reason, reason=reason))
            continue
        # ncnn drops the batch axis: unit dimensions may differ, nothing else
        result = compare_arrays(want, got, rtol=rtol, against=ref_name, unit_dims=True,
                                names=[name for name, _ in declared], dtypes=[dtype for _, dtype in declared])
        report.results.append(RuntimeResult(runtime, ver, result.verdict, True, result.max_abs_error,
                                            result.max_rel_error, result.reason, result.outputs))
    return report
