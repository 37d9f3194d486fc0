"""The ``poolport`` console script (``[project.scripts]``, and ``python -m poolport``): light to import,
so that Ctrl-C while the command line is still loading (torch, onnx and the runtimes take seconds) ends
as at any other moment: one line, "interrupted", exit 130, no traceback."""

from __future__ import annotations

from .codes import interrupted


def main() -> None:
    """Run the ``poolport`` command line with ``sys.argv`` and exit with its code."""
    try:
        from .main import main as run

        code = run()
    except KeyboardInterrupt:
        code = interrupted()
    raise SystemExit(code)
