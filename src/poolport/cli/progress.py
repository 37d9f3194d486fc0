"""Progress for long exports: stage lines with elapsed time; on a terminal, a ticking clock.

It writes to its own duplicate of the standard error descriptor, so that it keeps showing while
``terminal.quiet()`` sends everything that other libraries write to descriptor 2 elsewhere."""

from __future__ import annotations

import os
import sys
import threading
import time


class Progress:
    """Stage lines with elapsed time (a ticking clock on a terminal); call it with each stage's name."""

    def __init__(self, stream=None, enabled: bool = True):
        self._own = None
        if stream is None and enabled:
            try:
                self._own = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
            except (AttributeError, OSError, ValueError):  # no real descriptor (captured in tests)
                self._own = None
        self.stream = stream or self._own or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.stage = ""
        self._stop = threading.Event()
        self._thread = None

    def __call__(self, stage: str) -> None:
        if not self.enabled:
            return
        self._finish_line()
        self.stage = stage
        self.stage_start = time.perf_counter()
        if self.tty:
            self._write_tick()
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, daemon=True)
                self._thread.start()
        else:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {stage}", file=self.stream, flush=True)

    def _write_tick(self) -> None:
        spent = time.perf_counter() - self.stage_start
        self.stream.write(f"\r[{time.perf_counter() - self.start:6.1f}s] {self.stage} ... {spent:4.0f}s ")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._write_tick()

    def _finish_line(self) -> None:
        if self.tty and self.stage:
            self.stream.write("\n")
            self.stream.flush()

    def close(self) -> None:
        """Stop the clock and release the stream."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._finish_line()
        self.stage = ""
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
