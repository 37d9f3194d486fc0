"""Timing shared by the benchmark scripts: interleaved medians, so machine noise hits every candidate
alike (this is a shared 2-core machine)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def interleaved_medians(calls: list[Callable[[], object]], repeat: int, warmup: int = 10,
                        clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Median seconds per call over ``repeat`` rounds; each round runs every call once, in an order shuffled
    anew each round (seeded): a call finds the caches as the one before it left them, and with a fixed order
    one call would always follow the same (larger) one. ``clock``: wall time by default; ``time.thread_time``
    counts only the calling thread's CPU time (for work that runs in that thread, e.g. ONNX Runtime with one
    thread), so time spent descheduled does not count."""
    times: list[list[float]] = [[] for _ in calls]
    order, rng = list(range(len(calls))), random.Random(0)
    for i in range(warmup + repeat):
        rng.shuffle(order)
        for j in order:
            t = clock()
            calls[j]()
            if i >= warmup:
                times[j].append(clock() - t)
    return [statistics.median(t) for t in times]
