"""Wall-clock timing, one way for every figure the project prints: per-call latencies (ms) and accumulated time (s)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class Stopwatch:
    """Accumulated wall time in seconds of the blocks run inside it: ``with watch: work()``; ``watch.seconds``.

    Or started once for a whole procedure: ``watch = Stopwatch().start()`` ... ``watch.elapsed``.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.laps = 0
        self._started: float | None = None

    def start(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    @property
    def elapsed(self) -> float:
        """Seconds accumulated so far, the running lap included."""
        return self.seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started
        self._started = None
        self.laps += 1


def call_times_ms(fns: dict[str, Callable[[], object]], calls: int, warmup: int = 3) -> dict[str, np.ndarray]:
    """Wall time in ms of each of ``calls`` calls of every function, ``{name: (calls,) float64}``, after
    ``warmup`` untimed rounds.

    The functions take turns (one round calls each once), so a burst of load from other processes on a shared
    machine hits them alike instead of one of them.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = {name: np.empty(calls) for name in fns}
    for i in range(calls):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            out[name][i] = (time.perf_counter() - started) * 1e3
    return out
