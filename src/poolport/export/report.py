"""What a conversion did, per pooling site, and the errors it measured. Renders as a terminal table
and as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..verify.compare import Check
from ..verify.recorder import Site
from .table import format_table

SCHEMA = "poolport.report/3"  # 2: status, error, versions, input dtypes, seeds, dynamic sizes; 3: per output errors
# (each check's "outputs"; max_rel_error relative to each output's own scale; null where nothing was measured)


def versions(runtimes=()) -> dict[str, str]:
    """Versions of poolport, torch and onnx, and of ONNX Runtime and each of ``runtimes`` that is installed,
    as the runtime registry reports them (ncnn: ``pnnx X -> ncnn Y``; LiteRT: onnx2tf's and ai-edge-litert's,
    from its own environment)."""
    from importlib import metadata

    from ..runtimes import registry

    found = {}
    for name in ("poolport", "torch", "onnx"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for name in dict.fromkeys(("onnxruntime", *runtimes)):
        installed = registry.version(name)
        if installed:
            found[name] = installed
    return found


@dataclass
class Report:
    """What ``export_onnx`` did: the pooling sites and their measured errors, the runtime checks, the ONNX operators and the time spent. ``print(report)`` shows tables; ``to_json()`` is for scripts."""

    model: str
    output: str | None
    exporter: str
    external_data: str | None = None  # the weights file beside ``output``, if written
    opset: int | None = None
    ir_version: int | None = None
    input_shapes: list[list[int]] = field(default_factory=list)
    input_dtypes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # poolport, torch, onnx and every runtime used
    sites: list[Site] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    onnx_ops: dict[str, int] = field(default_factory=dict)
    legalized: list[str] = field(default_factory=list)
    error: str | None = None  # why the export stopped, if it did
    dynamic_axes: list[str] = field(default_factory=list)  # "input 0 axis 2: h in [1, 65536]"
    sizes_verified: list[str] = field(default_factory=list)  # other input sizes checked (dynamic models)
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    total_seconds: float = 0.0
    tolerance: float = 1e-4

    @property
    def max_abs_error(self) -> float | None:
        """The largest absolute error over the checks that ran (a runtime that could not run is no number);
        None where nothing was measured (not verified, or no finite value to compare)."""
        return max((c.max_abs_error for c in self.checks if c.ran and c.max_abs_error is not None), default=None)

    @property
    def max_rel_error(self) -> float | None:
        """The largest error over the checks that ran, each output's relative to its own scale (None where
        nothing was measured)."""
        return max((c.max_rel_error for c in self.checks if c.ran and c.max_rel_error is not None), default=None)

    @property
    def status(self) -> str:
        """``verified`` (checks ran and all passed), ``failed`` (some check failed) or ``unverified``
        (nothing was checked, e.g. ``verify=False``): never "passed" with nothing checked."""
        if self.error is not None:
            return "failed"
        if not self.checks:
            return "unverified"
        return "verified" if all(c.passed for c in self.checks) else "failed"

    @property
    def passed(self) -> bool:
        """Whether checks ran and every one passed."""
        return self.status == "verified"

    def to_dict(self) -> dict:
        """The report as plain data (what ``to_json`` writes)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "output": self.output,
            "external_data": self.external_data,
            "exporter": self.exporter,
            "opset": self.opset,
            "ir_version": self.ir_version,
            "input_shapes": self.input_shapes,
            "input_dtypes": self.input_dtypes,
            "versions": dict(self.versions),
            "status": self.status,
            "error": self.error,
            "passed": self.passed,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "tolerance": self.tolerance,
            "sites": [s.to_dict() for s in self.sites],
            "checks": [c.to_dict() for c in self.checks],
            "onnx_ops": dict(sorted(self.onnx_ops.items())),
            "legalized": list(self.legalized),
            "dynamic_axes": list(self.dynamic_axes),
            "sizes_verified": list(self.sizes_verified),
            "export_seconds": round(self.export_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
        }

    def to_json(self, indent: int = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """The report as terminal tables."""
        head = (
            f"{self.model} -> {self.output or '(not written)'}"
            f"{f' + {self.external_data}' if self.external_data else ''}  [{self.exporter} exporter, opset {self.opset}, "
            f"IR {self.ir_version}]"
        )
        if self.sites:
            sites = format_table(
                ["pooling site", "op", "input", "output", "plan", "ONNX ops", "max abs err"],
                [s.row() for s in self.sites],
            )
        else:
            sites = "no pooling sites poolport rewrites"
        checks = format_table(
            ["verified on", "runtime", "output", "max abs err", "rel err", "ok"],
            [row for c in self.checks for row in _check_rows(c)],
        ) if self.checks else "not verified (verify=False)"
        lines = [head, "", sites, "", checks]
        refused = dict.fromkeys(f"{c.runtime} could not load, convert or run the model: {c.note}"
                                for c in self.checks if not c.ran)
        if refused:
            lines += ["", *refused]
        other = dict.fromkeys(f"{c.runtime} on {c.label}: {c.note}" for c in self.checks if c.ran and c.note)
        if other:
            lines += ["", *other]
        if self.legalized:
            lines += ["", "legalized: " + "; ".join(self.legalized)]
        if self.dynamic_axes:
            lines += ["", "dynamic: " + "; ".join(self.dynamic_axes),
                      "verified at: " + ("; ".join(["example", *self.sizes_verified]))]
        errors = ("not verified: no error measured" if self.max_abs_error is None else
                  f"model max abs error {self.max_abs_error:.2e} (relative to each output's scale "
                  f"{self.max_rel_error:.2e}, tolerance {self.tolerance:g})")
        lines += [
            "",
            f"export {self.export_seconds:.2f}s, verification {self.verify_seconds:.2f}s, total {self.total_seconds:.2f}s; "
            + errors,
        ]
        return "\n".join(lines)

    __str__ = table


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def _check_rows(c: Check) -> list[list[str]]:
    """A check's rows in the report's table: one per output, each with its own error and verdict (the
    check's label on the first); one row for a runtime that could not run or answered with another number
    of outputs."""
    if not c.ran:
        return [[c.label, c.runtime, "-", "-", "-", "could not run (below)"]]
    if not c.outputs:
        return [[c.label, c.runtime, "-", _number(c.max_abs_error), _number(c.max_rel_error),
                 "yes" if c.passed else "NO"]]
    verdict = {"ok": "yes", "WRONG": "NO", "not compared": "NO: nothing compared", "empty": "empty"}
    return [[c.label if k == 0 else "", c.runtime if k == 0 else "", o.name or str(o.index),
             _number(o.max_abs_error), _number(o.max_rel_error), verdict[o.verdict]]
            for k, o in enumerate(c.outputs)]
