"""``poolport demo``: the main job on the embedded models. For each, plain torch.onnx.export is tried
first (and fails, or yields operators ncnn cannot load), then poolport converts and verifies it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import PoolportError
from .progress import Progress
from .terminal import quiet


def add_parser(sub) -> None:
    """Register ``poolport demo``."""
    p = sub.add_parser(
        "demo",
        help="convert the embedded example models (VGG-style, PSPNet pyramid, adaptive max) and show reports",
        description="Try plain torch.onnx.export on poolport's embedded example models, then convert each with "
        "poolport, verify it in ONNX Runtime and print the reports.",
    )
    p.add_argument("--out", metavar="DIR",
                   help="where to write the ONNX files and keep them (default: a temporary folder, removed at the end)")
    p.add_argument("--force", action="store_true", help="replace existing files in --out")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    p.add_argument("--only", action="append", metavar="NAME", help="run only this demo model (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--no-runtimes", action="store_true",
                   help="verify in ONNX Runtime only, even where OpenVINO and ncnn (pnnx) are installed")
    p.set_defaults(run=run)


KNOWN_FAILURES = [
    ("not factor of input size", "output size not a factor of input size"),
    ("No ONNX function found for <OpOverload(op='aten.adaptive_max_pool", "no ONNX function for aten.adaptive_max_pool"),
    ("No ONNX function found for", "an aten op has no ONNX function"),
]


def try_plain_export(model, x, exporter: str, folder: Path) -> str:
    """What plain torch.onnx.export does with the unmodified model, in a few words."""
    import onnx
    import torch

    from ..onnxfile.graph import NON_PORTABLE_OPS, op_counts

    path = folder / f"plain-{exporter}.onnx"
    try:
        with quiet(), torch.no_grad():
            torch.onnx.export(model, (x,), str(path), dynamo=exporter == "dynamo")
    except Exception as e:
        text = " ".join(str(e).split())
        reason = next((short for key, short in KNOWN_FAILURES if key in text), text[:80])
        return f"FAILS ({reason})"
    ops = op_counts(onnx.load(str(path), load_external_data=False))
    bad = {k: v for k, v in ops.items() if k in NON_PORTABLE_OPS}
    if bad:
        return "exports with " + ", ".join(f"{k} x{v}" for k, v in sorted(bad.items()))
    return "ok"


def run(args) -> int:
    """Run ``poolport demo``; returns the exit code."""
    from ..demo.models import DEMOS

    names = args.only or list(DEMOS)
    unknown = [n for n in names if n not in DEMOS]
    if unknown:
        raise PoolportError(f"unknown demo model(s) {unknown}; choose from {list(DEMOS)}.")
    if args.out:
        from ..onnxfile.paths import WritePlan

        plan = WritePlan(overwrite=args.force)
        out_dir = plan.fills(args.out, "--out")
        for name in names:
            plan.writes(out_dir / f"{name}.onnx", "--out", data=None)
        plan.check()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PoolportError(f"cannot make folder {out_dir}: {e.strerror}.") from None
        convert_demos(args, names, out_dir)
        print(f"\nONNX files in {out_dir}")
    else:
        # removed on success, on error and on Ctrl-C alike: a demo run leaves nothing in the temporary directory
        with tempfile.TemporaryDirectory(prefix="poolport-demo-") as scratch:
            convert_demos(args, names, Path(scratch))
        print("\nThe ONNX files were written to a temporary folder, now removed (--out DIR keeps them).")
    return 0


def convert_demos(args, names: list[str], out_dir: Path) -> None:
    """Convert and verify the demo models ``names`` into ``out_dir``, printing each report and a summary."""
    from ..demo.models import DEMOS, build
    from ..export.onnx_export import export_onnx
    from ..export.table import format_table
    from ..runtimes.registry import NAMES, available

    others = tuple(n for n in NAMES if n != "onnxruntime")
    runtimes = () if args.no_runtimes else tuple(r for r in others if available(r))
    print(f"verifying in onnxruntime{''.join(', ' + r for r in runtimes)}"
          + ("" if len(runtimes) == len(others) else " (pip install 'poolport[runtimes]' adds OpenVINO, ncnn and "
             "MNN; make litert adds LiteRT)"))
    summary = []
    for name in names:
        model, x = build(name)
        print(f"\n=== {name}: {DEMOS[name][2]}  (input {'x'.join(map(str, x.shape))})")
        with tempfile.TemporaryDirectory() as scratch:
            plain = {e: try_plain_export(model, x, e, Path(scratch)) for e in ("torchscript", "dynamo")}
        for e, verdict in plain.items():
            print(f"plain torch.onnx.export, {e} exporter: {verdict}")
        with Progress(enabled=not args.quiet) as progress, quiet():
            report = export_onnx(
                model, (x,), out_dir / f"{name}.onnx", exporter=args.exporter, overwrite=args.force,
                name=name, progress=progress, runtimes=runtimes,
            )
        print(report.table())
        verified_in = list(dict.fromkeys(c.runtime for c in report.checks))
        summary.append([name, plain["torchscript"], plain["dynamo"], "verified in " + ", ".join(verified_in),
                        "-" if report.max_abs_error is None else f"{report.max_abs_error:.1e}",
                        str(len(report.sites))])
    print("\n=== summary (Gather/GatherND: ncnn cannot load them; MatMul: LiteRT and OpenVINO's default hint get it wrong)")
    print(format_table(["model", "plain torchscript", "plain dynamo", "poolport", "max abs err", "sites"], summary))
