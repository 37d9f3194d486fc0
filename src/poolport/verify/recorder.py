"""Pooling sites: where a model pools, what the plan is, and the error the rewrite measured there.

During a verification pass (``recording()``), every poolport adaptive call computes both its portable
result and PyTorch's native result and records the difference under the site's name: the module path
(``features.avgpool``) or, for functional calls, the enclosing module and the call site
(``<root> F.adaptive_avg_pool2d @ densenet.py:217``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import torch

from ..backend.counting import count_ops, describe_counts
from ..functional.adaptive import NATIVE
from ..functional.dispatch import active_observer, observing
from ..plan import PoolPlan
from ..plan.generic import GenericPlan
from ..plan.pooling import tuple_str
from .compare import difference

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_DEMO_DIR = os.path.join(_PKG_DIR, "demo") + os.sep  # poolport's own example models are user code
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


@dataclass
class Site:
    """One pooling site of a model: where it is, what it pools, the plan, and the error measured there."""
    where: str
    op: str  # e.g. "adaptive_avg_pool2d"
    input_shape: tuple[int, ...]
    output_size: tuple[int, ...]
    plan: PoolPlan | GenericPlan  # a GenericPlan where the graph pools a dynamic size; torch's other ops: their plans
    calls: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0  # relative to max |input| (the scale float rounding scales with)
    measured: bool = True  # False where only the model-level check covers the site (TorchScript)
    dtype: torch.dtype | None = None
    problem: str = ""  # what went wrong beyond a number (non-finite cells that disagree, a shape)

    @property
    def dynamic(self) -> bool:
        """Whether the graph pools this site at any input size (the size-generic formulation)."""
        return isinstance(self.plan, GenericPlan)

    def op_counts(self) -> dict[str, int]:
        """The ONNX operators the site is written with, counted: a static plan run through the counting
        backend (the walk every exporter takes, in the plan's style), a size-generic plan's pooling ones."""
        if hasattr(self.plan, "op_counts"):  # torch's other pooling ops (plan.divisor, plan.lppool, plan.dilated)
            return dict(sorted(self.plan.op_counts().items()))
        return dict(sorted((self.plan.onnx_ops() if self.dynamic else count_ops(self.plan)).items()))

    @property
    def onnx_ops(self) -> str:
        """The site's ONNX operators as text; a static plan's style is named unless it is the default."""
        if self.dynamic:
            return self.plan.describe_ops()
        text = describe_counts(self.op_counts())
        return text if self.plan.style == "default" else f"{text} [{self.plan.style}]"

    def to_dict(self) -> dict:
        """The site as plain data."""
        return {
            "where": self.where,
            "op": self.op,
            "input_shape": list(self.input_shape),
            "output_size": list(self.output_size),
            "plan": self.plan.summary(),
            "plan_kind": self.plan.kind,
            "size": "dynamic" if self.dynamic else "static",
            "formulation": self.plan.formulation if self.dynamic else "static plan",
            "style": None if self.dynamic else self.plan.style,
            "onnx_ops": self.op_counts(),
            "calls": self.calls,
            "max_abs_error": self.max_abs_error if self.measured else None,
            "max_rel_error": self.max_rel_error if self.measured else None,
        }

    def row(self) -> list[str]:
        """The site as a row of the report's table."""
        return [
            self.where,
            self.op,
            tuple_str(self.input_shape),
            tuple_str(self.output_size),
            ("any size: " if self.dynamic else "") + self.plan.summary(),
            self.onnx_ops,
            f"{self.max_abs_error:.1e}" if self.measured else "model-level",
        ]


@dataclass
class SiteRecorder:
    """Observer of a verification pass (``poolport.functional.dispatch.observing``): for every portable
    pooling call it computes torch's native op on the very same input, records the difference under
    the site's name and hands the native result on, so every site sees what the original model feeds
    it (errors do not accumulate) and the pass's output is the original model's."""

    module_names: dict[int, str] = field(default_factory=dict)  # id(module) -> qualified name
    sites: dict[tuple, Site] = field(default_factory=dict)

    def __call__(self, where: str | None, op: str, x: torch.Tensor, out_size, plan: PoolPlan,
                 portable: torch.Tensor, native=None) -> torch.Tensor:
        """``native``: how to compute torch's own op (a callable), where it is not adaptive pooling."""
        d = len(out_size)
        with torch._C.DisableTorchFunction():  # the native op itself, not an intercepted one
            native = NATIVE[op.split("_")[1], d](x, out_size) if native is None else native()
        self.record(where, op, x, out_size, plan, portable, native)
        return native

    def record(self, where: str | None, op: str, x: torch.Tensor, out_size, plan: PoolPlan,
               portable: torch.Tensor, native: torch.Tensor) -> None:
        """Record one call's difference between the portable and the native result."""
        where = where or self.call_site()
        key = (where, op, tuple(x.shape), tuple(out_size))
        site = self.sites.get(key)
        if site is None:
            site = self.sites[key] = Site(where, op, tuple(x.shape), tuple(out_size), plan, dtype=x.dtype)
        site.calls += 1
        if portable.shape != native.shape:
            site.max_abs_error = site.max_rel_error = float("inf")
            site.problem = f"shape {tuple(portable.shape)}, torch's {tuple(native.shape)}"
            return
        if native.numel():
            err, _, problem = difference(native.detach().double().numpy(), portable.detach().double().numpy())
            finite = x[torch.isfinite(x)]
            scale = max(finite.double().abs().max().item() if finite.numel() else 0.0, 1e-30)
            site.max_abs_error = max(site.max_abs_error, err)  # inf where non-finite cells disagree
            site.max_rel_error = max(site.max_rel_error, err / scale)
            site.problem = site.problem or problem

    def call_site(self) -> str:
        """Enclosing module (by name) and the first frame outside torch and poolport."""
        module, caller = None, None
        frame = sys._getframe(1)
        while frame is not None and (module is None or caller is None):
            filename = os.path.abspath(frame.f_code.co_filename)
            if module is None:
                owner = frame.f_locals.get("self")
                if owner is not None and id(owner) in self.module_names:
                    module = self.module_names[id(owner)] or "<root>"
            internal = filename.startswith((_PKG_DIR, _TORCH_DIR)) and not filename.startswith(_DEMO_DIR)
            if caller is None and not internal:
                caller = f"{os.path.basename(filename)}:{frame.f_lineno}"
            frame = frame.f_back
        return f"{module or '<root>'} @ {caller or '?'}"

    def ordered(self) -> list[Site]:
        """The sites in the order they were first seen."""
        return list(self.sites.values())


def active_recorder() -> SiteRecorder | None:
    """The recorder of the verification pass running on this thread, if any."""
    observer = active_observer()
    return observer if isinstance(observer, SiteRecorder) else None


@contextlib.contextmanager
def recording(model: torch.nn.Module | None = None):
    """Record every poolport pooling site executed inside the block (eager only)."""
    rec = SiteRecorder()
    if model is not None:
        rec.module_names = {id(m): name for name, m in model.named_modules()}
    with observing(rec):
        yield rec
