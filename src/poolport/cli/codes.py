"""The exit codes of ``poolport`` (its ``--help`` lists them), and the one line an interrupt prints.
Standard library only: the console script imports this before torch."""

from __future__ import annotations

import sys

EXIT_VERIFICATION = 1  # the result differs from PyTorch (or could not be checked); nothing was written
EXIT_USAGE = 2  # a bad argument, model, file or path; sizes too large for memory
EXIT_INTERNAL = 70  # a bug in poolport
EXIT_INTERRUPTED = 130  # Ctrl-C


def interrupted() -> int:
    """Say that the command was interrupted (one line on standard error); returns ``EXIT_INTERRUPTED``."""
    try:
        print("interrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # standard error closed
        pass
    return EXIT_INTERRUPTED
