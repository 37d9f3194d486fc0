"""The ``poolport`` console script (``[project.scripts]``, and ``python -m poolport``): light to import,
so that Ctrl-C while the command line is still loading (torch, onnx and the runtimes take seconds) ends
as at any other moment: one line, "interrupted", exit 130, no traceback."""

from __future__ import annotations

import contextlib
import os
import sys

from .codes import EXIT_INTERRUPTED, interrupt_received, interrupted, watch_interrupts


def main() -> None:
    """Run the ``poolport`` command line with ``sys.argv`` and exit with its code."""
    watch_interrupts()
    try:
        from .main import main as run

        code = run()
    except KeyboardInterrupt:
        code = interrupted()
    except BaseException as e:  # Ctrl-C that surfaced as another error (an import it cut short)
        if not interrupt_received() or isinstance(e, SystemExit):
            raise
        code = interrupted()
    if code == EXIT_INTERRUPTED:
        # done: leave now, as interrupted. A KeyboardInterrupt that a library stored while its import was cut
        # short may surface again while the interpreter shuts down and end the process by SIGINT (-2)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    raise SystemExit(code)
