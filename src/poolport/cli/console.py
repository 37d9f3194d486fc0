"""The ``poolport`` console script (``[project.scripts]``, and ``python -m poolport``): light to import,
so that Ctrl-C while the command line is still loading (torch, onnx and the runtimes take seconds) ends
as at any other moment: one line, "interrupted", exit 130, no traceback."""

from __future__ import annotations

from .codes import interrupt_received, interrupted, watch_interrupts


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
    raise SystemExit(code)
