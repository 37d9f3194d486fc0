"""The exit codes of ``poolport`` (its ``--help`` lists them), and the one line an interrupt prints.
Standard library only: the console script imports this before torch."""

from __future__ import annotations

import signal
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


_sigint: list[int] = []  # a Ctrl-C this process received, whatever became of its KeyboardInterrupt


def _on_sigint(signum, frame):
    _sigint.append(signum)
    raise KeyboardInterrupt


def watch_interrupts() -> None:
    """Remember every Ctrl-C (SIGINT) this process receives, then raise KeyboardInterrupt as Python does. A
    KeyboardInterrupt landing inside an import can surface as another error (a half-imported module later
    fails with RecursionError or ImportError): ``interrupt_received`` still knows the command was
    interrupted. Only where SIGINT has Python's default handler (the console script, not a host program)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def interrupt_received() -> bool:
    """Whether a Ctrl-C reached this process since ``watch_interrupts``."""
    return bool(_sigint)
