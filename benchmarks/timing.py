"""Timing shared by the benchmark scripts: interleaved medians, so machine noise hits every candidate
alike (this is a shared 2-core machine)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_medians(calls: list[Callable[[], object]], repeat: int, warmup: int = 10) -> list[float]:
    """Median seconds per call over ``repeat`` rounds; each round runs every call once, in turn."""
    times: list[list[float]] = [[] for _ in calls]
    for i in range(warmup + repeat):
        for call, t_list in zip(calls, times):
            t = time.perf_counter()
            call()
            if i >= warmup:
                t_list.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]
