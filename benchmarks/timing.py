"""Timing shared by the benchmark scripts: interleaved medians, so machine noise hits every candidate
alike (this is a shared 2-core machine)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def interleaved_medians(calls: list[Callable[[], object]], repeat: int, warmup: int = 10,
                        clock: Callable[[], float] = time.perf_counter, shuffle: bool = False) -> list[float]:
    """Median seconds per call over ``repeat`` rounds; each round runs every call once, in turn. ``clock``:
    wall time by default; ``time.thread_time`` counts only this thread's CPU time (for work that runs on the
    calling thread, e.g. ONNX Runtime with one intra-op thread), which other processes on a busy machine
    disturb far less. ``shuffle``: a new order every round (seeded), so that no call always runs after the
    same one (a call that follows one with large buffers finds the cache cold)."""
    times: list[list[float]] = [[] for _ in calls]
    order = list(range(len(calls)))
    rng = random.Random(0)
    for i in range(warmup + repeat):
        if shuffle:
            rng.shuffle(order)
        for k in order:
            t = clock()
            calls[k]()
            if i >= warmup:
                times[k].append(clock() - t)
    return [statistics.median(t) for t in times]
