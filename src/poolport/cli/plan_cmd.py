"""``poolport plan N O``: show PyTorch's adaptive windows, poolport's plan, the ONNX operators it
emits for a target (counted by running the plan through the counting backend: what the exporters
write), and the verdict on the widely copied ``stride = n // o`` formula."""

from __future__ import annotations

import json
from pathlib import Path

from ..backend.counting import count_ops, describe_counts
from ..errors import PoolportError
from ..plan import adaptive_windows, copied_formula, plan_pool
from ..plan.pooling import STYLES, axis_names, tuple_str
from ..routing.targets import TARGETS, style_for
from .args import parse_size


def add_parser(sub) -> None:
    """Register ``poolport plan``."""
    p = sub.add_parser(
        "plan",
        help="show the windows, the plan and the copied formula's verdict for N -> O",
        description="Show PyTorch's adaptive windows for N -> O, poolport's plan and the ONNX operators it "
        "emits, and whether the copied formula stride = N // O, kernel = N - (O-1)*stride is exact.",
    )
    p.add_argument("input_size", help="input size: 128, or 128x128 / 16x128x128 for several axes")
    p.add_argument("output_size", help="output size with as many axes as the input: 14 or 14x14")
    p.add_argument("--op", choices=["avg", "max"], default="avg", help="pooling op (default avg)")
    p.add_argument("--target", choices=TARGETS, default=None, metavar="TARGET",
                   help="the runtime or converter the plan is written for: litert/tflite, executorch, litert-torch "
                   "and all get the edge style (at most 5 inputs per Concat, repeated windows through 1x1 "
                   "pools); no target and every other one the default form (fewest nodes); auto decides by "
                   f"the installed runtimes. One of {', '.join(TARGETS)}")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--plot", metavar="PNG", help="draw the true windows against the copied formula's (needs matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input for the copied formula's error")
    p.add_argument("--force", action="store_true", help="replace an existing --plot file")
    p.set_defaults(run=run)


def formula_error(n: int, o: int, op: str, seed: int) -> float | None:
    """Max abs error of the copied formula against PyTorch's windows on N(0,1) input (None: undefined)."""
    import numpy as np

    verdict = copied_formula(n, o)
    if not verdict.defined:
        return None
    x = np.random.default_rng(seed).standard_normal(n)
    reduce = np.mean if op == "avg" else np.max
    true = np.array([reduce(x[a:b]) for a, b in adaptive_windows(n, o)])
    copied = np.array([reduce(x[a:min(b, n)]) for a, b in verdict.windows()])
    return float(np.abs(true - copied).max())


def build(in_size, out_size, op: str, seed: int, target: str | None = None) -> dict:
    """The plan, the ONNX operators it is written with for ``target`` (and in every style) and, per axis,
    the windows and the copied formula's verdict."""
    if len(in_size) != len(out_size):
        raise PoolportError(
            f"input size {tuple_str(in_size)} and output size {tuple_str(out_size)} need the same number of axes."
        )
    style = style_for(target)
    plan = plan_pool(op, in_size, out_size, style)
    axes = []
    for name, n, o in zip(axis_names(len(in_size)), in_size, out_size):
        verdict = copied_formula(n, o)
        axes.append(
            {
                "axis": name,
                "n": n,
                "o": o,
                "windows": [list(w) for w in adaptive_windows(n, o)],
                "copied_formula": {
                    "kernel": verdict.kernel,
                    "stride": verdict.stride,
                    "exact": verdict.exact,
                    "differing_windows": list(verdict.differing),
                    "verdict": verdict.verdict(),
                    "max_abs_error_on_random_input": formula_error(n, o, op, seed),
                },
            }
        )
    return {"plan": plan, "axes": axes, "target": target, "onnx_ops": count_ops(plan),
            "onnx_ops_per_style": {s: count_ops(plan_pool(op, in_size, out_size, s)) for s in STYLES}}


def render(result: dict) -> str:
    """``build``'s result as text."""
    plan, target = result["plan"], result["target"]
    written = "" if target is None else f" ({plan.style} style, for {target})"
    lines = [str(plan), f"  ONNX{written}: {describe_counts(result['onnx_ops'])}", ""]
    for a in result["axes"]:
        w = a["windows"]
        shown = " ".join(f"[{s},{e})" for s, e in w[:16]) + (" ..." if len(w) > 16 else "")
        lines.append(f"axis {a['axis']} windows ({a['n']} -> {a['o']}): {shown}")
        cf = a["copied_formula"]
        err = cf["max_abs_error_on_random_input"]
        tail = "" if cf["exact"] or err is None else f"; max abs error {err:.3g} on N(0,1) input"
        lines.append(f"  copied formula stride = n // o: {cf['verdict']}{tail}")
    return "\n".join(lines)


def plot(result: dict, path: str, overwrite: bool = False) -> None:
    """Draw the true windows against the copied formula's into the PNG ``path`` (written whole or not at
    all; an existing file only with ``overwrite``)."""
    import io

    from ..onnxfile.staging import write_atomically

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PoolportError("--plot needs matplotlib: pip install 'poolport[plot]'.") from None
    axes = result["axes"]
    fig, subplots = plt.subplots(len(axes), 1, figsize=(10, 1.2 + 0.32 * max(a["o"] for a in axes) * len(axes)), squeeze=False)
    for ax, a in zip(subplots[:, 0], axes):
        cf = a["copied_formula"]
        bad = set(cf["differing_windows"])
        labelled = set()

        def label(text):
            if text in labelled:
                return None
            labelled.add(text)
            return text

        for i, (s, e) in enumerate(a["windows"]):
            ax.barh(i + 0.2, e - s, left=s, height=0.35, color="#2b6cb0", label=label("PyTorch window"))
            if cf["stride"]:
                wrong = i in bad
                ax.barh(
                    i - 0.2, cf["kernel"], left=i * cf["stride"], height=0.35,
                    color="#c53030" if wrong else "#a0aec0",
                    label=label("copied formula, wrong window" if wrong else "copied formula, same window"),
                )
        ax.set_xlim(0, a["n"])
        ax.set_ylim(a["o"] - 0.4, -0.6)
        ax.set_xlabel(f"input index along {a['axis']} (n = {a['n']})")
        ax.set_ylabel("output cell")
        if cf["stride"] is None:
            state = "undefined (output larger than input)"
        else:
            wrong = f"wrong in {len(bad)} of {a['o']} windows" if bad else "exact"
            state = f"kernel {cf['kernel']} stride {cf['stride']}: {wrong}"
        ax.set_title(f"axis {a['axis']}: {a['n']} -> {a['o']}; copied formula {state}", fontsize=9)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=110, format=Path(path).suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    write_atomically(png.getvalue(), Path(path), overwrite)


def run(args) -> int:
    """Run ``poolport plan``; returns the exit code."""
    in_size = parse_size(args.input_size, "input size")
    out_size = parse_size(args.output_size, "output size")
    if args.plot:  # refuse before computing anything: never overwrite, never a traceback for a missing folder
        from ..onnxfile.paths import WritePlan

        plan = WritePlan(overwrite=args.force)
        plan.writes(args.plot, "--plot")
        plan.check()
    result = build(in_size, out_size, args.op, args.seed, args.target)
    if args.plot:
        plot(result, args.plot, args.force)
    if args.json:
        plan = {**result["plan"].to_dict(), "target": result["target"],
                "onnx_ops": dict(sorted(result["onnx_ops"].items())),
                "onnx_ops_per_style": {s: dict(sorted(c.items())) for s, c in result["onnx_ops_per_style"].items()}}
        out = {"plan": plan, "axes": result["axes"]}
        print(json.dumps(out, indent=2))
    else:
        print(render(result))
        if args.plot:
            print(f"\nwindows drawn to {args.plot}")
    return 0
