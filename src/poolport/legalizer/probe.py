"""``poolport probe``: a conformance suite of small pooling graphs run on the installed runtimes.

Each case is one ONNX pooling node with the attributes runtimes are known to disagree on (ceil_mode with
windows starting in the padding, SAME_UPPER/SAME_LOWER, asymmetric pads with each count_include_pad,
dilations, global pooling, a kernel larger than the input, 1d/2d/3d). The oracle is a numpy reference
written from the ONNX operator definition (``testing.reference.onnx_pool``). Every case a rule matches is run again rewritten by the legalizer (every rule, the nodes a rewrite makes
checked again); ``legalize --target auto`` applies exactly the rules that took part in making a failing
case exact on a selected runtime and never in making a case worse on any of them (right before and wrong
after, or refused before and wrong after: ``ProbeReport.chosen_rules``).

Channel counts are unlike every spatial size: onnx2tf guesses layouts from shapes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import one_line
from ..onnxfile.graph import output_types
from ..verify.compare import compare_arrays


@dataclass(frozen=True)
class ProbeCase:
    """One pooling node on one input shape."""

    name: str
    op: str
    shape: tuple[int, ...]
    attrs: tuple[tuple[str, object], ...] = ()
    opset: int = 17

    def model(self) -> onnx.ModelProto:
        """The case as a one-node ONNX model (IR 8, which every runtime here loads)."""
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.shape))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"y{i}" for i in range(len(self.shape))])
        node = helper.make_node(self.op, ["x"], ["y"], name=self.name, **dict(self.attrs))
        m = helper.make_model(helper.make_graph([node], self.name.replace("-", "_"), [x], [y]),
                              opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8 if self.opset <= 17 else 9
        return m

    def describe(self) -> str:
        """``AveragePool k=[3, 3] s=[2, 2] pads=[...] on 1x5x7x9``."""
        attrs = " ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in self.attrs)
        return f"{self.op} {attrs} on {'x'.join(map(str, self.shape))}".replace("  ", " ")


def _case(name, op, shape, opset=17, **attrs) -> ProbeCase:
    return ProbeCase(name, op, tuple(shape), tuple(sorted(attrs.items())), opset)


AVG, MAX = "AveragePool", "MaxPool"
K3S2 = dict(kernel_shape=[3, 3], strides=[2, 2])
CASES = (
    _case("avg-plain", AVG, (1, 5, 9, 12), kernel_shape=[3, 3], strides=[3, 3]),
    _case("avg-pads-exclude", AVG, (1, 5, 7, 9), pads=[1, 1, 1, 1], **K3S2),
    _case("avg-pads-include", AVG, (1, 5, 7, 9), pads=[1, 1, 1, 1], count_include_pad=1, **K3S2),
    _case("avg-asymmetric-exclude", AVG, (1, 5, 8, 8), pads=[0, 0, 1, 1], **K3S2),
    _case("avg-asymmetric-include", AVG, (1, 5, 8, 8), pads=[0, 0, 1, 1], count_include_pad=1, **K3S2),
    _case("max-asymmetric", MAX, (1, 5, 7, 7), kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
    _case("max-asymmetric-before", MAX, (1, 5, 8, 9), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0]),
    _case("avg-same-upper", AVG, (1, 5, 8, 9), auto_pad="SAME_UPPER", **K3S2),
    _case("max-same-upper", MAX, (1, 5, 8, 9), auto_pad="SAME_UPPER", **K3S2),
    _case("avg-same-upper-k2s1", AVG, (1, 5, 8, 9), auto_pad="SAME_UPPER", kernel_shape=[2, 2], strides=[1, 1]),
    _case("max-same-upper-k2s1", MAX, (1, 5, 8, 9), auto_pad="SAME_UPPER", kernel_shape=[2, 2], strides=[1, 1]),
    _case("avg-same-lower", AVG, (1, 5, 8, 9), auto_pad="SAME_LOWER", **K3S2),
    _case("max-same-lower", MAX, (1, 5, 8, 9), auto_pad="SAME_LOWER", **K3S2),
    _case("avg-ceil", AVG, (1, 5, 8, 8), ceil_mode=1, **K3S2),
    _case("max-ceil", MAX, (1, 5, 8, 8), ceil_mode=1, **K3S2),
    _case("avg-ceil-pads-exclude", AVG, (1, 5, 8, 8), pads=[1, 1, 1, 1], ceil_mode=1, **K3S2),
    _case("avg-ceil-pads-include", AVG, (1, 5, 8, 8), pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1, **K3S2),
    _case("avg-ceil-window-in-padding", AVG, (1, 5, 2, 2), kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 1, 1],
          ceil_mode=1),
    _case("max-ceil-window-in-padding", MAX, (1, 5, 2, 2), kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1),
    _case("max-dilated", MAX, (1, 5, 9, 10), kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
          dilations=[2, 2]),
    _case("max-dilated-ceil", MAX, (1, 5, 10, 11), kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2],
          ceil_mode=1),
    _case("avg-dilated", AVG, (1, 5, 9, 10), opset=19, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
          dilations=[2, 2]),
    _case("avg-kernel-larger-than-input", AVG, (1, 5, 3, 4), kernel_shape=[5, 5], strides=[1, 1],
          pads=[2, 2, 2, 2]),
    _case("max-kernel-larger-than-input", MAX, (1, 5, 3, 4), kernel_shape=[5, 5], strides=[1, 1],
          pads=[2, 2, 2, 2]),
    _case("global-avg", "GlobalAveragePool", (1, 5, 7, 9)),
    _case("global-max", "GlobalMaxPool", (1, 5, 7, 9)),
    _case("avg-1d", AVG, (1, 5, 11), kernel_shape=[3], strides=[2], pads=[1, 1]),
    _case("max-1d-ceil", MAX, (1, 5, 10), kernel_shape=[3], strides=[2], ceil_mode=1),
    _case("avg-3d", AVG, (1, 4, 6, 7, 9), kernel_shape=[2, 3, 3], strides=[2, 2, 2], pads=[0] * 6),
    _case("max-3d", MAX, (1, 4, 6, 7, 9), kernel_shape=[2, 3, 3], strides=[2, 2, 2], pads=[0] * 6),
    _case("avg-3d-pads", AVG, (1, 4, 7, 7, 7), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6),
    _case("max-3d-pads", MAX, (1, 4, 7, 7, 7), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6),
    _case("avg-3d-ceil", AVG, (1, 4, 8, 8, 8), kernel_shape=[3, 3, 3], strides=[2, 2, 2], ceil_mode=1, pads=[0] * 6),
    _case("max-3d-ceil", MAX, (1, 4, 8, 8, 8), kernel_shape=[3, 3, 3], strides=[2, 2, 2], ceil_mode=1, pads=[0] * 6),
    _case("avg-3d-dilated", AVG, (1, 4, 7, 8, 9), opset=19, kernel_shape=[2, 2, 2], strides=[1, 1, 1],
          dilations=[2, 2, 2], pads=[0] * 6),
    _case("max-3d-dilated", MAX, (1, 4, 7, 8, 9), kernel_shape=[2, 2, 2], strides=[1, 1, 1], dilations=[2, 2, 2],
          pads=[0] * 6),
    _case("max-3d-no-pads-attribute", MAX, (1, 4, 6, 6, 6), kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
    # torch's plain pooling as its exporters write it (tests/test_plain_pools_runtimes.py runs the torch modules)
    _case("avg-1d-ceil-pads-include", AVG, (1, 5, 11), kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
          count_include_pad=1),
    _case("avg-1d-ceil-window-in-padding", AVG, (1, 5, 5), kernel_shape=[3], strides=[3], pads=[1, 1], ceil_mode=1),
    _case("max-1d-dilated", MAX, (1, 5, 17), kernel_shape=[3], strides=[1], pads=[1, 1], dilations=[2]),
    _case("avg-3d-pads-exclude", AVG, (1, 4, 7, 9, 6), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6),
    _case("avg-3d-ceil-pads-exclude", AVG, (1, 4, 7, 9, 6), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6,
          ceil_mode=1),
    _case("avg-3d-ceil-pads-include", AVG, (1, 4, 7, 9, 6), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6,
          ceil_mode=1, count_include_pad=1),
    _case("max-3d-ceil-pads", MAX, (1, 4, 7, 9, 6), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6,
          ceil_mode=1),
    _case("avg-3d-ceil-window-in-padding", AVG, (1, 4, 5, 7, 6), kernel_shape=[3, 3, 3], strides=[3, 3, 3],
          pads=[1] * 6, ceil_mode=1),
    _case("max-3d-ceil-window-in-padding", MAX, (1, 4, 5, 7, 6), kernel_shape=[3, 3, 3], strides=[3, 3, 3],
          pads=[1] * 6, ceil_mode=1),
    # ONNX LpPool (what a foreign ONNX file may hold; the oracle is testing.reference.onnx_lp_pool)
    _case("lp-pads", "LpPool", (1, 5, 7, 9), p=2, pads=[1, 1, 1, 1], **K3S2),
    _case("lp-p1-asymmetric", "LpPool", (1, 5, 8, 8), p=1, pads=[0, 0, 1, 1], **K3S2),
    _case("lp-p3-1d-ceil", "LpPool", (1, 5, 10), opset=18, p=3, kernel_shape=[3], strides=[2], ceil_mode=1),
    _case("lp-3d", "LpPool", (1, 4, 6, 7, 9), p=2, kernel_shape=[2, 3, 3], strides=[2, 2, 2]),
)


@dataclass(frozen=True)
class IndicesCase(ProbeCase):
    """A MaxPool with its Indices output on one input shape: the model's outputs are its values and int64
    indices, or with ``unpool`` the MaxUnpool of its values at those indices (SegNet's pair; ``output_shape``:
    given to MaxUnpool as a constant input, the MaxPool's input shape)."""

    unpool: bool = False
    output_shape: bool = False

    def model(self) -> onnx.ModelProto:
        """The MaxPool (and MaxUnpool) as an ONNX model (IR 8)."""
        a = dict(self.attrs)
        nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], name=self.name, **a)]
        outs = [("y", TensorProto.FLOAT), ("i", TensorProto.INT64)]
        inits = []
        if self.unpool:
            ins = ["y", "i"]
            if self.output_shape:
                inits.append(helper.make_tensor("output_shape", TensorProto.INT64, [len(self.shape)], self.shape))
                ins.append("output_shape")
            keep = {k: v for k, v in a.items() if k in ("kernel_shape", "strides", "pads")}
            nodes.append(helper.make_node("MaxUnpool", ins, ["z"], name=f"{self.name}-unpool", **keep))
            outs = [("z", TensorProto.FLOAT)]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.shape))
        ys = [helper.make_tensor_value_info(n, t, [f"{n}{i}" for i in range(len(self.shape))]) for n, t in outs]
        m = helper.make_model(helper.make_graph(nodes, self.name.replace("-", "_"), [x], ys, initializer=inits),
                              opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        return m

    def describe(self) -> str:
        """As ``ProbeCase.describe``, naming the Indices output and the MaxUnpool."""
        more = " + MaxUnpool" + (" (output_shape)" if self.output_shape else "") if self.unpool else ""
        return super().describe().replace("MaxPool", "MaxPool with Indices", 1) + more

    def expected(self, x: np.ndarray) -> list[np.ndarray]:
        """``testing.reference.onnx_max_pool_indices`` (and ``onnx_max_unpool`` into the input's shape)."""
        from ..testing.reference import onnx_max_pool_indices, onnx_max_unpool
        from .attrs import read_attrs

        p = read_attrs(self.model().graph.node[0], tuple(x.shape[2:]))
        y, i = onnx_max_pool_indices(x, p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations, p.ceil_mode)
        return [onnx_max_unpool(y, i, x.shape[2:])] if self.unpool else [y, i]


# MaxPool's Indices output and MaxUnpool (rules max-indices, max-unpool): N = 2, so ONNX's indices count planes
INDICES_CASES = (
    IndicesCase("max-indices", MAX, (2, 3, 7, 9), (("kernel_shape", [3, 3]), ("pads", [1, 1, 1, 1]),
                                                   ("strides", [2, 2]))),
    IndicesCase("max-unpool", MAX, (2, 3, 8, 10), (("kernel_shape", [2, 2]), ("strides", [2, 2])), unpool=True),
    IndicesCase("max-unpool-3d", MAX, (2, 3, 5, 5, 7), (("kernel_shape", [3, 3, 3]), ("pads", [1] * 6),
                                                        ("strides", [2, 2, 2])), unpool=True, output_shape=True),
)
CASES = CASES + INDICES_CASES


@dataclass
class CaseResult:
    """One case in one runtime."""

    case: str
    verdict: str  # "ok" | "WRONG" | "refused"
    max_abs_error: float | None = None
    reason: str = ""


@dataclass
class ProbeReport:
    """Per runtime (with its version), per case, what it computed."""

    versions: dict[str, str] = field(default_factory=dict)
    results: dict[str, list[CaseResult]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # runtime -> why (not installed)
    # per runtime, per case its pattern's rules match: (the rules, the verdict on the rewritten case)
    fixes: dict[str, dict[str, tuple[tuple[str, ...], CaseResult]]] = field(default_factory=dict)
    # ``probe_cache.cached_probe``: per runtime read from the cache, (its file, when it was probed); per
    # runtime probed now and cached, its file
    cached: dict[str, tuple[str, str]] = field(default_factory=dict)
    stored: dict[str, str] = field(default_factory=dict)

    def _rule_effects(self, rt: str) -> tuple[set[str], set[str]]:
        """``(helps, worsens)`` on ``rt``: rules that made a failing case exact, and rules whose rewrite is
        wrong where the original was right, or wrong where the original was refused (loudly)."""
        before = {r.case: r for r in self.results.get(rt, [])}
        helps, worsens = set(), set()
        for case, (rules, after) in self.fixes.get(rt, {}).items():
            was = before[case].verdict
            if was != "ok" and after.verdict == "ok":
                helps.update(rules)
            if (was == "ok" and after.verdict != "ok") or (was == "refused" and after.verdict == "WRONG"):
                worsens.update(rules)
        return helps, worsens

    def chosen_rules(self, runtimes: tuple[str, ...] | None = None) -> list:
        """The rules ``legalize --target auto`` applies for ``runtimes`` (default: every probed one): each
        made a case one of them got wrong exact, and none left a case it rewrote wrong on any of them."""
        from .rules import RULES

        runtimes = runtimes or tuple(self.results)
        helps, worsens = set(), set()
        for rt in runtimes:
            h, w = self._rule_effects(rt)
            helps |= h
            worsens |= w
        return [r for r in RULES if r.name in helps - worsens]

    def withheld(self, runtimes: tuple[str, ...] | None = None) -> dict[str, dict[str, str]]:
        """The rules ``chosen_rules`` leaves out although they made a failing case exact on one of
        ``runtimes`` (default: every probed one), because their rewrite made a case worse on another: per
        rule name, each runtime it made a case worse on, and which. ``legalize --target auto`` keeps the
        nodes such a rule matches (and fails closed on them)."""
        runtimes = runtimes or tuple(self.results)
        helps, out = set(), {}
        for rt in runtimes:
            helps |= self._rule_effects(rt)[0]
            before = {r.case: r for r in self.results.get(rt, [])}
            for case, (rules, after) in self.fixes.get(rt, {}).items():
                was = before[case].verdict
                if (was == "ok" and after.verdict != "ok") or (was == "refused" and after.verdict == "WRONG"):
                    for r in rules:
                        out.setdefault(r, {}).setdefault(
                            rt, f"the probe measured its rewrite of {case} {after.verdict} there, the original {was}")
        return {r: why for r, why in out.items() if r in helps}

    def unfixed(self, runtimes: tuple[str, ...] | None = None) -> list[str]:
        """``runtime: case (why)`` for failing cases that ``legalize --target auto`` leaves failing."""
        out = []
        for rt in runtimes or tuple(self.results):
            chosen = {r.name for r in self.chosen_rules((rt,))}
            for row in self.failures(rt):
                rules, after = self.fixes.get(rt, {}).get(row.case, ((), None))
                if not rules:
                    out.append(f"{rt}: {row.case} (no rule matches it)")
                elif after.verdict != "ok":
                    why = f"the rewrite by {', '.join(rules)} is {after.verdict} there too" + (
                        f": {after.reason}" if after.reason else "")
                    out.append(f"{rt}: {row.case} ({why})")
                elif not set(rules) & chosen:
                    out.append(f"{rt}: {row.case} (the rewrite by {', '.join(rules)} is right here but wrong on "
                               "another case there)")
        return out

    def failures(self, runtime: str) -> list[CaseResult]:
        """The cases ``runtime`` got wrong or refused."""
        return [r for r in self.results.get(runtime, []) if r.verdict != "ok"]

    def to_dict(self) -> dict:
        """The report as plain data (``poolport probe --json``)."""
        return {"versions": self.versions, "skipped": self.skipped,
                "cases": {c.name: c.describe() for c in CASES},
                "results": {rt: [r.__dict__ for r in rows] for rt, rows in self.results.items()},
                "rules": {rt: [r.name for r in self.chosen_rules((rt,))] for rt in self.results},
                "unfixed": self.unfixed()}

    def text(self) -> str:
        """Per runtime: its version and the cases it gets wrong or refuses."""
        lines = []
        for rt, rows in self.results.items():
            bad = self.failures(rt)
            lines.append(f"{rt} {self.versions.get(rt, '')}: {len(rows) - len(bad)}/{len(rows)} cases exact")
            by_name = {c.name: c for c in CASES}
            for r in bad:
                err = f" (max abs {r.max_abs_error:.3g})" if r.max_abs_error not in (None, float("inf")) else ""
                lines.append(f"  {r.verdict:7} {r.case}: {by_name[r.case].describe()}{err}"
                             + (f" -- {r.reason}" if r.reason else ""))
        for rt, why in self.skipped.items():
            lines.append(f"{rt}: skipped ({why})")
        return "\n".join(lines)


def reference(case: ProbeCase, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The answer ONNX's definition gives for ``case``: ``poolport.testing.reference.onnx_pool`` (LpPool:
    ``onnx_lp_pool``), plain numpy written from the operator definition. Not onnx's reference evaluator: onnx 1.23's evaluator reads
    MaxPool's ``pads`` per axis pair instead of begins-then-ends, so it gets every MaxPool with asymmetric
    pads (SAME_UPPER/SAME_LOWER included) wrong."""
    from ..testing.reference import onnx_lp_pool, onnx_pool
    from .attrs import read_attrs

    x = feeds["x"]
    if isinstance(case, IndicesCase):
        return case.expected(x)
    spatial_axes = tuple(range(2, x.ndim))
    if case.op == "GlobalAveragePool":
        return [x.astype(np.float64).mean(axis=spatial_axes, keepdims=True)]
    if case.op == "GlobalMaxPool":
        return [x.astype(np.float64).max(axis=spatial_axes, keepdims=True)]
    p = read_attrs(case.model().graph.node[0], tuple(x.shape[2:]))  # auto_pad resolved into explicit pads
    if case.op == "LpPool":
        return [onnx_lp_pool(x, p.norm, p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations, p.ceil_mode)]
    op = "avg" if case.op == "AveragePool" else "max"
    return [onnx_pool(x, op, p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations, p.ceil_mode,
                      p.count_include_pad)]


def run_probe(runtimes: tuple[str, ...] | None = None, cases: tuple[ProbeCase, ...] = CASES, seed: int = 0,
              progress=None) -> ProbeReport:
    """Run ``cases`` in each of ``runtimes`` (default: every installed runtime); a runtime that is not
    installed is listed as skipped."""
    from ..runtimes import registry
    from .apply import apply_rules
    from .replacements import AS_2D
    from .rules import RULES, case_matches

    report = ProbeReport()
    rng = np.random.default_rng(seed)
    inputs = [{"x": rng.standard_normal(c.shape).astype(np.float32)} for c in cases]
    wants = [reference(c, f) for c, f in zip(cases, inputs)]
    for rt in registry.select(runtimes) if runtimes else registry.NAMES:
        if not registry.available(rt):
            report.skipped[rt] = f"not installed: {registry.get(rt).install}"
            continue
        if progress is not None:
            progress(f"probing {rt} ({len(cases)} cases)")
        report.versions[rt] = registry.version(rt)
        answers = registry.run_batch(rt, [(c.model(), f) for c, f in zip(cases, inputs)])
        rows = [_verdict(case, want, got) for case, want, got in zip(cases, wants, answers)]
        report.results[rt] = rows
        # every case a rule matches, rewritten (the nodes a rewrite makes are checked again: a 3-D pool's 2-D
        # halves may be dilated): what does the runtime make of it, and which rules took part? First by the
        # rules that keep the node's rank (no 3-D pool split into 2-D ones), where any matches; where that
        # is not exact, by every rule. So a split that only served along with a 2-D rule is not credited
        # with a fix on a runtime that computes 3-D pooling right (OpenVINO and ncnn: avg-3d-ceil-pads-include)
        report.fixes[rt] = {}
        keep_rank = [r for r in RULES if r.replacement is not AS_2D]  # the index form (ranked above) keeps it too
        for stage, rules in enumerate((keep_rank, list(RULES))):
            todo, rewritten = [], []
            for i, c in enumerate(cases):
                done = report.fixes[rt].get(c.name)
                if (done is not None and done[1].verdict == "ok") or not any(case_matches(r, c) for r in rules):
                    continue
                model, changes = apply_rules(c.model(), rules)
                names = tuple(dict.fromkeys(n for ch in changes for n in getattr(ch, "rules", ())))
                if stage and done is not None and names == done[0]:
                    continue  # the same rewrite as the first stage's
                todo.append((i, names))
                rewritten.append(model)
            again = registry.run_batch(rt, [(m, inputs[i]) for m, (i, _) in zip(rewritten, todo)]) if todo else []
            for (i, names), got in zip(todo, again):
                report.fixes[rt][cases[i].name] = (names, _verdict(cases[i], wants[i], got))
        report.fixes[rt] = {c.name: report.fixes[rt][c.name] for c in cases if c.name in report.fixes[rt]}
    return report


def _verdict(case: ProbeCase, want: list[np.ndarray], got) -> CaseResult:
    if isinstance(got, Exception):
        return CaseResult(case.name, "refused", None, one_line(got, 300))
    # the oracle computes in float64; the runtime must answer in the type the case declares
    result = compare_arrays(want, got, rtol=1e-5, against="ONNX's definition", unit_dims=True,
                            dtypes=[dtype for _, dtype in output_types(case.model())])
    return CaseResult(case.name, "ok" if result.passed else "WRONG", result.max_abs_error, result.reason)
