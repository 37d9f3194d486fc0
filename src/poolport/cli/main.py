"""``poolport`` entry point: dispatches to one module per command."""

from __future__ import annotations

import argparse
import sys

from ..errors import PoolportError, VerificationError, is_interrupt, out_of_memory
from . import check_cmd, convert_cmd, demo_cmd, legalize_cmd, plan_cmd, probe_cmd
from .codes import EXIT_INTERNAL, EXIT_USAGE, EXIT_VERIFICATION, interrupt_received, interrupted

COMMANDS = [demo_cmd, convert_cmd, check_cmd, probe_cmd, legalize_cmd, plan_cmd]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="poolport",
        description="Every PyTorch pooling layer, exactly, on every inference runtime.",
        epilog="exit codes: 0 done (and verified where a command verifies); 1 verification failed (the result "
        "differs from PyTorch; nothing was written); 2 usage or input error (a bad argument, model, file or path, or "
        "sizes too large for memory; a path that would replace an input or an existing file without --force); "
        "70 internal error (a bug in poolport: please report it with the command); 130 interrupted.",
    )
    from ..version import __version__

    parser.add_argument("--version", action="version", version=f"poolport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``poolport`` command: run one command and return its exit code (``EXIT_*``), printing a
    PoolportError, an interrupt or a bug as one line, never a traceback."""
    command, args = "poolport", None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        command = f"poolport {args.command}"
        return args.run(args) or 0
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:  # `poolport ... | head`
        sys.stderr.close()
        return 0
    except Exception as e:
        # Ctrl-C that a library turned into an error of its own, or that cut an import short (the module
        # then fails in its own way, e.g. RecursionError): an interrupt, not a bug
        if is_interrupt(e) or interrupt_received():
            return interrupted()
        code, message = classify(e, args)
        print(f"{command}: {message}", file=sys.stderr)
        return code


def classify(e: Exception, args) -> tuple[int, str]:
    """The exit code for an exception that ended a command, and what to say: a failed verification 1; a
    PoolportError, and running out of memory (the sizes asked for are too large), a usage or input error
    (2); anything else is a bug (70)."""
    if isinstance(e, VerificationError):
        return EXIT_VERIFICATION, f"verification failed: {e}"
    if isinstance(e, PoolportError):
        return EXIT_USAGE, f"error: {e}"
    if out_of_memory(e):
        sizes = getattr(args, "input", None)
        at = f" with --input {' '.join(sizes)}" if sizes else ""
        first = (str(e).strip().splitlines() or [""])[0]
        return EXIT_USAGE, (f"error: out of memory{at} ({type(e).__name__}: {first}); give smaller sizes or "
                            f"free memory.")
    return EXIT_INTERNAL, (f"internal error: {type(e).__name__}: {e} (this is a bug in poolport; please report "
                           f"it with the command line)")
