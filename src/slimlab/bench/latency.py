"""Latency as a value: the raw samples, and the percentiles derived from them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    samples_s: tuple[float, ...]  # one wall-clock duration per call, in seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.samples_s, q) * 1e3)

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_s) * 1e3)

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": self.percentile_ms(50),
            "p90": self.percentile_ms(90),
            "p99": self.percentile_ms(99),
            "mean": self.mean_ms,
            "std": float(np.std(self.samples_s) * 1e3),
            "n": len(self.samples_s),
        }


def measure(
    fn: Callable[[], object],
    *,
    warmup_iters: int = 10,
    min_time_s: float = 0.5,
    min_iters: int = 50,
    synchronize: Callable[[], None] | None = None,
) -> Latency:
    """Call `fn` `warmup_iters` times untimed, then time each call until both `min_time_s` has passed and
    `min_iters` calls were made. `synchronize` (e.g. torch.cuda.synchronize) runs inside each timed call,
    so that asynchronous devices are measured to completion."""
    sync = synchronize or (lambda: None)
    for _ in range(warmup_iters):
        fn()
    sync()
    samples: list[float] = []
    clock = time.perf_counter
    start = clock()
    while len(samples) < min_iters or clock() - start < min_time_s:
        t0 = clock()
        fn()
        sync()
        samples.append(clock() - t0)
    return Latency(tuple(samples))


def harness_overhead(**kwargs) -> Latency:
    """The same harness timing a call that does nothing: the floor under every measurement."""
    return measure(lambda: None, **kwargs)
