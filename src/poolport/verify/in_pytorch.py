"""Verification passes in PyTorch: every pooling site, portable path against the native op."""

from __future__ import annotations

import torch

from ..errors import PoolportError, VerificationError
from ..functional.dispatch import always_portable
from .compare import cloned, failing_module
from .recorder import Site, recording

# per-site bound on |portable - native| / max|input|: max pooling must be bit-exact
SITE_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
# model-level bound on |exported - PyTorch| / max|output| (a whole network's rounding, not one op's)
MODEL_RTOL = {torch.float64: 1e-4, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def model_rtol(args: tuple) -> float:
    """The default model-level tolerance for these inputs: that of their least precise floating dtype."""
    dtypes = [a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype.is_floating_point]
    return max((MODEL_RTOL.get(d, MODEL_RTOL[torch.float32]) for d in dtypes), default=MODEL_RTOL[torch.float32])


def as_args(example_inputs) -> tuple:
    """Example inputs as a tuple of positional arguments (a tensor, a list or a tuple)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    if isinstance(example_inputs, tuple):
        return example_inputs
    raise PoolportError(
        f"example inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}."
    )


def run_recorded(model: torch.nn.Module, args: tuple) -> tuple[object, list[Site]]:
    """Run ``model`` once, portable path forced, recording every pooling site against the native op.
    Each site passes the native result on, so the output is the original model's. The model runs on a
    copy of ``args``: one that changes its input in place leaves the inputs as given. If the model itself
    fails on these inputs, a PoolportError names the input shapes and the module that failed."""
    with torch.no_grad(), recording(model) as rec, always_portable(), failing_module(model) as path:
        try:
            out = model(*cloned(args))
        except PoolportError:
            raise
        except Exception as e:
            shapes = ", ".join("x".join(map(str, a.shape)) for a in args if isinstance(a, torch.Tensor))
            where = path[-1] if path else "the model's own forward"
            first = (str(e).strip().splitlines() or [""])[0].rstrip(" .") + "."
            raise PoolportError(
                f"the model fails on its example input ({shapes}) in {where}: {type(e).__name__}: {first} "
                f"Check the input shape (--input) against what the model accepts."
            ) from None
    return out, rec.ordered()


def site_problems(sites: list[Site]) -> list[str]:
    """What is wrong at each site: max pooling not bit-exact, average beyond ``SITE_RTOL`` for its dtype."""
    problems = []
    for s in sites:
        if s.problem:
            problems.append(f"{s.where}: {s.op} {s.problem}")
        elif s.op.startswith("adaptive_max") and s.max_abs_error != 0:
            problems.append(f"{s.where}: {s.op} differs from torch by {s.max_abs_error:.3g} (must be bit-exact)")
        elif s.max_rel_error > SITE_RTOL.get(s.dtype, SITE_RTOL[torch.float32]):
            bound = SITE_RTOL.get(s.dtype, SITE_RTOL[torch.float32])
            problems.append(f"{s.where}: {s.op} relative error {s.max_rel_error:.3g} > {bound} ({s.dtype})")
    return problems


def verify_sites(model: torch.nn.Module, example_inputs) -> list[Site]:
    """Run a portable ``model`` once and check every pooling site against torch's native op."""
    _, sites = run_recorded(model, as_args(example_inputs))
    problems = site_problems(sites)
    if problems:
        raise VerificationError("pooling sites failed verification:\n  " + "\n  ".join(problems))
    model._poolport_sites = sites
    return sites
