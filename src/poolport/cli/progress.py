"""Progress for long exports: stage lines with elapsed time; on a terminal, a ticking clock."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
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

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._finish_line()
        self.stage = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
