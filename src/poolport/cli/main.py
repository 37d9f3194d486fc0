"""``poolport`` entry point: dispatches to one module per command."""

from __future__ import annotations

import argparse
import sys

from ..errors import PoolportError, VerificationError
from . import check_cmd, convert_cmd, demo_cmd, legalize_cmd, plan_cmd, probe_cmd

COMMANDS = [demo_cmd, convert_cmd, check_cmd, probe_cmd, legalize_cmd, plan_cmd]
EXIT_VERIFICATION, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 70


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="poolport",
        description="Every PyTorch pooling layer, exactly, on every inference runtime.",
        epilog="exit codes: 0 done (and verified where a command verifies); 1 verification failed (the result "
        "differs from PyTorch; nothing was written); 2 usage or input error (a bad argument, model or file); "
        "70 internal error (a bug in poolport: please report it with the command); 130 interrupted.",
    )
    from ..version import __version__

    parser.add_argument("--version", action="version", version=f"poolport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``poolport`` command: run one command, print PoolportErrors as one line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except VerificationError as e:
        print(f"poolport {args.command}: verification failed: {e}", file=sys.stderr)
        return EXIT_VERIFICATION
    except PoolportError as e:
        print(f"poolport {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `poolport ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line that says so, not a traceback
        print(f"poolport {args.command}: internal error: {type(e).__name__}: {e} (this is a bug in poolport; "
              f"please report it with the command line)", file=sys.stderr)
        return EXIT_INTERNAL
