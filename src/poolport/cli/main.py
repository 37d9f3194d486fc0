"""``poolport`` entry point: dispatches to one module per command."""

from __future__ import annotations

import argparse
import sys

from ..errors import PoolportError
from . import convert_cmd, demo_cmd, legalize_cmd, plan_cmd

COMMANDS = [demo_cmd, convert_cmd, legalize_cmd, plan_cmd]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="poolport",
        description="Every PyTorch pooling layer, exactly, on every inference runtime.",
    )
    from .. import __version__

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
    except PoolportError as e:
        print(f"poolport {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `poolport ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
