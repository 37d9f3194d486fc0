"""The legalizer driver: find pooling nodes that match a rule for the target, replace each by its
explicit form, check with onnx.checker, and verify against the original model with the ONNX reference
evaluator and ONNX Runtime on random inputs. The input model (or file) is never modified."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import PoolportError, VerificationError, one_line
from ..onnxfile.graph import output_types
from ..runtimes.registry import ALIASES, NAMES, available
from ..verify.check import evaluator_computes, run_evaluator
from ..verify.compare import NOT_COMPARED, compare_arrays
from .apply import POOL_OPS, Kept, PoolRewrite, apply_rules  # noqa: F401  (re-exported)
from .rules import TARGETS, rules_for


class KeptNodesError(VerificationError):
    """``legalize`` left pooling nodes as they were that a rule for the target matches (the target
    computes them wrongly or refuses them) and was not asked to keep such nodes: nothing is written
    (``poolport legalize`` exits with 1). ``.result`` is the LegalizeResult, ``.result.kept`` the nodes."""

    def __init__(self, message: str, result: LegalizeResult):
        super().__init__(message)
        self.result = result


@dataclass
class LegalizeResult:
    """What ``legalize`` returns: the legalized model and, per matched node, what was done with it."""

    model: onnx.ModelProto
    changes: list  # PoolRewrite | Kept, in graph order
    target: str
    verified: bool  # compared with the original under the reference evaluator and ONNX Runtime
    rules: tuple[str, ...] = ()  # the rules that were applied
    probe: object = None  # for target "auto": the ProbeReport the rules came from

    @property
    def rewritten(self) -> list[PoolRewrite]:
        """The nodes replaced by their explicit form."""
        return [c for c in self.changes if isinstance(c, PoolRewrite)]

    @property
    def kept(self) -> list[Kept]:
        """The nodes a rule matched but that were left as they were."""
        return [c for c in self.changes if isinstance(c, Kept)]


def load(model) -> onnx.ModelProto:
    """A copy of ``model`` (a ModelProto or a path) with its weights loaded."""
    if isinstance(model, onnx.ModelProto):
        return copy.deepcopy(model)
    path = Path(model)
    if not path.is_file():
        raise PoolportError(f"{path} does not exist.")
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise PoolportError(f"{path} is not an ONNX model: {type(e).__name__}: {str(e)[:200]}") from None
    if not proto.graph.node and not proto.graph.input:
        raise PoolportError(f"{path} is not an ONNX model (no graph).")
    return proto


def legalize(model: onnx.ModelProto | str | Path, target: str = "all", *, verify: bool = True,
             seed: int = 0, runtimes: tuple[str, ...] | None = None, progress=None,
             rules: tuple[str, ...] | None = None, keep_unfixed: bool = False,
             reprobe: bool = False) -> LegalizeResult:
    """Rewrite the AveragePool/MaxPool nodes of ``model`` (a ModelProto or a path; never modified) that
    ``target`` computes wrongly into explicit equivalent forms. ``target``: "all" (every rule), a runtime
    ("onnxruntime", "openvino", "litert" or "tflite", "ncnn", "mnn": the rules measured for it) or "auto":
    probe ``runtimes`` (default: every installed one) with ``poolport.legalizer.probe`` and apply the
    rules whose patterns they got wrong and whose rewrite they compute right; the probe of each runtime
    is cached per runtime version and poolport version (``legalizer.probe_cache``; ``reprobe`` probes
    again and rewrites the cache). ``rules`` (names) overrides
    the target's rule set (and no runtime's known failures are then consulted).

    A node a rule for the target matches but that is left as it was (its input size is not static, its
    Indices output is used, or every form of it is known wrong on a runtime the target serves: "all"
    serves every runtime, "auto" the probed ones) fails closed: ``KeptNodesError``, naming the node,
    the rule and the reason, unless ``keep_unfixed``; then the result lists it in ``.kept``.

    Returns a ``LegalizeResult``: ``.model`` (a new ModelProto), ``.changes`` (each node rewritten, or
    kept and why), ``.rules`` (the rules applied) and, for "auto", ``.probe``. With ``verify`` (default)
    the result is compared with the original under the ONNX reference evaluator and ONNX Runtime on
    random inputs.

    Raises:
        PoolportError: unknown target, a file that is not an ONNX model, a model that fails
            onnx.checker.
        VerificationError: a legalized model that differs from the original, or one whose outputs
            could not be compared (no finite value on random inputs); ``KeptNodesError`` (a
            VerificationError) for nodes kept without ``keep_unfixed``.
    """
    if target not in TARGETS:
        raise PoolportError(f"target must be one of {TARGETS}, got {target!r}.")
    original = load(model)
    try:
        onnx.checker.check_model(original)
    except onnx.checker.ValidationError as e:
        raise PoolportError(f"the input model fails onnx.checker: {one_line(e)}") from e
    report, measured = None, {}
    if rules is not None:
        from .rules import RULES

        unknown = set(rules) - {r.name for r in RULES}
        if unknown:
            raise PoolportError(f"unknown rule {', '.join(sorted(unknown))}; rules: {', '.join(r.name for r in RULES)}.")
        rules = applied = [r for r in RULES if r.name in rules]
        serves = () if target in ("all", "auto") else (ALIASES.get(target, target),)
    elif target == "auto":
        from .probe_cache import cached_probe
        from .rules import RULES

        report = cached_probe(runtimes, progress=progress, reprobe=reprobe)
        applied = report.chosen_rules()
        # a rule that fixed a case on one probed runtime but made one worse on another: the nodes it matches
        # are kept (and fail closed), not passed over in silence
        measured = report.withheld()
        rules = [r for r in RULES if r in applied or r.name in measured]
        serves = tuple(report.results)
    else:
        rules = applied = rules_for(target)
        serves = NAMES if target == "all" else (ALIASES.get(target, target),)
    proto, changes = apply_rules(original, rules, serves, measured)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise PoolportError(f"legalized model fails onnx.checker: {one_line(e)}") from e
    result = LegalizeResult(proto, changes, target, False, tuple(r.name for r in applied), report)
    if result.kept and not keep_unfixed:
        raise KeptNodesError(kept_message(result), result)
    if verify and result.rewritten:
        verify_equivalent(original, proto, seed)
        result.verified = True
    return result


def kept_message(result: LegalizeResult) -> str:
    """Why ``legalize`` refuses a result with kept nodes: each node, its rules and the reason, and what to do."""
    kept = result.kept
    nodes = "; ".join(f"{k.node}: {k.reason}" for k in kept)
    runtimes = sorted({rt for k in kept for rt in k.runtimes})
    advice = ""
    if any("not static" in k.reason for k in kept):
        advice += "Give the model static spatial sizes to rewrite them. "
    if runtimes and result.target in ("all", "auto"):
        advice += ("No form of them is right on every runtime served; legalize for one runtime at a time "
                   "(--target <runtime>) to rewrite them for it. ")
    return (f"legalize --target {result.target} left {len(kept)} pooling node(s) as they were that the target "
            f"computes wrongly or refuses ({nodes}). Nothing was written. {advice}To write the model with these "
            f"nodes as they are, listed as kept: --keep-unfixed (poolport.legalize(..., keep_unfixed=True)).")


def random_feeds(proto: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Random inputs for every graph input (dynamic dimensions as 1)."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, dims).astype(dtype)
    return feeds


def verify_equivalent(original: onnx.ModelProto, rewritten: onnx.ModelProto, seed: int = 0, rtol: float = 1e-5) -> float:
    """The largest relative difference of the two models' outputs (each on its own scale:
    ``verify.compare.compare_arrays``) under the ONNX reference evaluator and ONNX Runtime on random inputs.
    The evaluator judges only where no MaxPool pads asymmetrically (it computes those wrongly) and its run
    of the original meets no NaN (its pooling skips NaN, where ONNX Runtime carries it through).

    Raises:
        VerificationError: an output differs beyond ``rtol``, or nothing could be compared (an output
            with no finite value on random inputs, or every output empty).
        PoolportError: neither ONNX Runtime nor the evaluator can judge the models.
    """
    from ..runtimes import registry

    feeds = random_feeds(original, seed)
    runners = []
    if all(evaluator_computes(m) for m in (original, rewritten)):
        # onnx 1.23's evaluator reads MaxPool's pads per axis pair: wrong wherever they are asymmetric
        _, nan_in = run_evaluator(original, feeds)
        if not nan_in:
            runners.append(("onnx reference evaluator", lambda m: run_evaluator(m, feeds)[0]))
    if available("onnxruntime"):
        runners.append(("onnxruntime", lambda m: registry.run("onnxruntime", m, feeds)))
    if not runners:  # nothing checked is no verification
        raise PoolportError("cannot verify the legalized model: ONNX Runtime is not installed and the reference "
                            "evaluator cannot judge it (asymmetric MaxPool padding, or NaN in its computation; "
                            "pip install 'poolport[onnx]').")
    worst, names = 0.0, [name for name, _ in output_types(original)]
    for label, run in runners:
        result = compare_arrays(run(original), run(rewritten), rtol=rtol, against="the original", names=names)
        if result.verdict == NOT_COMPARED:
            raise VerificationError(f"cannot verify the legalized model under {label}: {result.reason} on random "
                                    f"inputs (seed {seed}); use --no-verify (verify=False) to write it unverified.")
        if not result.passed:
            raise VerificationError(f"legalize changed the model's outputs under {label}: {result.reason}")
        worst = max(worst, result.max_rel_error)
    return worst
