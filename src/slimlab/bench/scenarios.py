"""MLPerf LoadGen's scenarios, on one prepared model.

- single-stream: one sample per query, the next issued when the last completes; the metric is the p90
  latency, with LoadGen's early-stopping estimate (how high the true percentile can be, at 99% confidence,
  given the number of queries that were run).
- offline: all samples available at once; the metric is throughput. We sweep batch sizes and report the best.
- server: queries arrive as a Poisson process at a target rate; a dynamic batcher waits for up to
  `max_batch` queries or `max_queue_delay`, whichever comes first. The metric is the highest rate whose p99
  latency stays under the budget, where "stays under" is LoadGen's early-stopping test.

The server scenario is a discrete-event simulation driven by service times measured on the real model (the
offline sweep's per-batch latencies), not a run with real threads. Why: on a small or shared machine a
Python load generator competes with the model for cores and the GIL, so real threads measure the harness as
much as the model; and a rate search needs many runs of hundreds of thousands of queries, which the
simulation does in milliseconds. Its assumption, stated in every record: service time does not depend on
load, i.e. one model instance serves one batch at a time (the usual CPU deployment, where one instance uses
all intra-op threads). Batches of a size that was not measured are padded up to the next measured size.

LoadGen's minimums (mlperf.conf): 600 s for every scenario; 1,024 queries for single-stream; 270,336 for
server; offline issues one query large enough to fill the duration. `ScenarioSettings.scaled` shrinks them
for CI; the server run never goes below the sample size early stopping needs to pass at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slimlab.bench.latency import Latency, measure

LOADGEN_MIN_DURATION_S = 600.0
LOADGEN_SINGLE_STREAM_QUERIES = 1024
LOADGEN_SERVER_QUERIES = 270_336
CONFIDENCE = 0.99  # LoadGen's early-stopping confidence
# A simulated run draws its service times from the measured samples, so queries beyond this many add no
# information about the model, only memory and time (600 s at 500k/s would be 300M queries).
MAX_SIMULATED_QUERIES = 2_000_000


# ----- early stopping ----------------------------------------------------------------------------------


def tolerable_overlatency(n: int, percentile: float = 0.99, confidence: float = CONFIDENCE) -> int:
    """The most queries out of `n` that may exceed the latency bound while we can still say, with
    `confidence`, that the true `percentile` is within it. -1 when even zero is not enough (n too small).

    This is LoadGen's test (loadgen/early_stopping.cc) written with scipy: a run with t over-bound queries
    passes when a system whose true over-bound rate is exactly 1 - percentile would show t or fewer with
    probability at most 1 - confidence, i.e. binom.cdf(t, n, 1 - percentile) <= 1 - confidence."""
    if n <= 0:
        return -1
    q, alpha = 1.0 - percentile, 1.0 - confidence
    from scipy.stats import binom  # scipy.stats costs seconds to import; only the server scenario needs it

    t = int(binom.ppf(alpha, n, q))  # the smallest t with cdf(t) >= alpha
    while t >= 0 and binom.cdf(t, n, q) > alpha:
        t -= 1
    while binom.cdf(t + 1, n, q) <= alpha:  # ppf's floating point may stop one short
        t += 1
    return t


def min_queries_to_pass(overlatency: int, percentile: float = 0.99, confidence: float = CONFIDENCE) -> int:
    """The fewest queries with which `overlatency` over-bound queries still pass (LoadGen's h + t)."""
    n = max(overlatency + 1, 1)
    while tolerable_overlatency(n, percentile, confidence) < overlatency:
        n = n * 2
    lo, hi = n // 2, n
    while lo < hi:
        mid = (lo + hi) // 2
        if tolerable_overlatency(mid, percentile, confidence) >= overlatency:
            hi = mid
        else:
            lo = mid + 1
    return lo


def early_stopping_estimate(samples_s: np.ndarray, percentile: float) -> float | None:
    """LoadGen's single-stream early-stopping percentile estimate in seconds: discard the t - 1 highest
    latencies, where t is the tolerable over-bound count at this sample size; None if too few samples."""
    n = len(samples_s)
    t = tolerable_overlatency(n, percentile)
    if t < 1:
        return None
    return float(np.sort(samples_s)[n - t])


# ----- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioSettings:
    """Minimum duration and counts of each measurement. `loadgen()` is MLPerf's; `scaled(f)` shrinks it."""

    min_duration_s: float = LOADGEN_MIN_DURATION_S
    single_stream_queries: int = LOADGEN_SINGLE_STREAM_QUERIES
    server_queries: int = LOADGEN_SERVER_QUERIES
    warmup_iters: int = 10
    repeats: int = 3  # the samples are cut into this many consecutive runs to show their spread

    @classmethod
    def loadgen(cls) -> ScenarioSettings:
        return cls()

    def scaled(self, factor: float, *, min_time_s: float = 0.0, min_iters: int = 1) -> ScenarioSettings:
        """`factor` of each minimum, but never below `min_time_s`/`min_iters`; the server keeps at least
        twice the sample size at which early stopping at p99 can pass with no over-bound query."""
        floor = 2 * min_queries_to_pass(0)
        return ScenarioSettings(
            min_duration_s=max(self.min_duration_s * factor, min_time_s),
            single_stream_queries=max(math.ceil(self.single_stream_queries * factor), min_iters),
            server_queries=max(math.ceil(self.server_queries * factor), floor),
            warmup_iters=self.warmup_iters,
            repeats=self.repeats,
        )


# ----- single-stream and offline -----------------------------------------------------------------------


def spread(latency: Latency, repeats: int) -> dict[str, float | list[float]]:
    """p50 of each of `repeats` consecutive slices of the samples, and their (max - min) / median."""
    chunks = [c for c in np.array_split(np.asarray(latency.samples_s), max(repeats, 1)) if len(c)]
    p50s = [float(np.median(c) * 1e3) for c in chunks]
    mid = float(np.median(p50s))
    return {"repeat_p50_ms": p50s, "repeat_spread": (max(p50s) - min(p50s)) / mid if mid > 0 else 0.0}


def run_timed(
    call: Callable[[], object],
    settings: ScenarioSettings,
    min_calls: int,
    synchronize: Callable[[], None] | None = None,
) -> Latency:
    return measure(
        call,
        warmup_iters=settings.warmup_iters,
        min_time_s=settings.min_duration_s,
        min_iters=min_calls,
        synchronize=synchronize,
    )


def single_stream_summary(latency: Latency, repeats: int) -> dict:
    samples = np.asarray(latency.samples_s)
    es90, es99 = early_stopping_estimate(samples, 0.90), early_stopping_estimate(samples, 0.99)
    return {
        **latency.summary_ms(),
        **spread(latency, repeats),
        "early_stopping_p90": es90 * 1e3 if es90 is not None else None,
        "early_stopping_p99": es99 * 1e3 if es99 is not None else None,
    }


# ----- server ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceModel:
    """Measured service times (seconds) per batch size. A batch of k queries takes a time drawn from the
    samples of the smallest measured batch size >= k (the batch is padded to it)."""

    samples_s: dict[int, np.ndarray]

    def __post_init__(self) -> None:
        if not self.samples_s or any(len(v) == 0 for v in self.samples_s.values()):
            raise ValueError("a service model needs at least one measured batch size with samples")

    @property
    def sizes(self) -> list[int]:
        return sorted(self.samples_s)

    def padded(self, k: int) -> int:
        for size in self.sizes:
            if size >= k:
                return size
        raise ValueError(f"batch of {k} is larger than the largest measured size {self.sizes[-1]}")

    def capacity(self, max_batch: int) -> float:
        """Queries per second with full batches back to back: no rate above this can be served."""
        return max(b / float(np.mean(self.samples_s[b])) for b in self.sizes if b <= max_batch)


def simulate_server(
    arrivals_s: np.ndarray,
    service: ServiceModel,
    max_batch: int,
    max_queue_delay_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Latency (completion - arrival) of each query under a dynamic batcher with one serving instance,
    and the number of batches dispatched.

    When the server is free and queries wait, it dispatches as soon as `max_batch` have arrived or the oldest
    has waited `max_queue_delay_s`; when it was busy past that point, it takes what waits (up to
    `max_batch`) the moment it frees up."""
    n = len(arrivals_s)
    latency = np.empty(n)
    free_at, i, batches = 0.0, 0, 0
    while i < n:
        oldest = arrivals_s[i]
        full_at = arrivals_s[i + max_batch - 1] if i + max_batch - 1 < n else math.inf
        dispatch = max(free_at, min(oldest + max_queue_delay_s, full_at), oldest)
        j = min(int(np.searchsorted(arrivals_s, dispatch, side="right")), i + max_batch)
        size = service.padded(j - i)
        samples = service.samples_s[size]
        done = dispatch + float(samples[rng.integers(len(samples))])
        latency[i:j] = done - arrivals_s[i:j]
        free_at, i, batches = done, j, batches + 1
    return latency, batches


@dataclass
class ServerRun:
    rate_per_s: float
    queries: int
    simulated_s: float  # the span of the arrivals: LoadGen's minimum duration, in simulated time
    p50_ms: float
    p90_ms: float
    p99_ms: float
    overlatency: int
    tolerable: int
    passed: bool
    mean_batch: float


def server_run(
    rate_per_s: float,
    service: ServiceModel,
    *,
    latency_budget_s: float,
    max_batch: int,
    max_queue_delay_s: float,
    settings: ScenarioSettings,
    seed: int = 0,
) -> ServerRun:
    """One LoadGen server run at `rate_per_s`: at least `server_queries` queries and `min_duration_s` of
    arrivals; valid when the p99 early-stopping test passes (which implies the observed p99 is in budget)."""
    rng = np.random.default_rng(seed)
    n = max(
        settings.server_queries, min(math.ceil(rate_per_s * settings.min_duration_s), MAX_SIMULATED_QUERIES)
    )
    arrivals = np.cumsum(rng.exponential(1.0 / rate_per_s, size=n))
    latency, batches = simulate_server(arrivals, service, max_batch, max_queue_delay_s, rng)
    over = int(np.count_nonzero(latency > latency_budget_s))
    tolerable = tolerable_overlatency(n, 0.99)
    p50, p90, p99 = (float(v) * 1e3 for v in np.percentile(latency, [50, 90, 99]))
    passed = over <= tolerable and p99 <= latency_budget_s * 1e3
    span = float(arrivals[-1])
    return ServerRun(rate_per_s, n, span, p50, p90, p99, over, tolerable, passed, n / max(batches, 1))


@dataclass
class ServerSearch:
    best: ServerRun | None  # the highest passing rate found
    lowest_failing_rate: float | None
    runs: list[ServerRun] = field(default_factory=list)
    budget_exhausted: bool = False
    seconds: float = 0.0

    def summary(self) -> dict:
        best = self.best
        lo, hi = (best.rate_per_s if best else 0.0), self.lowest_failing_rate
        return {
            "best_rate_per_s": lo if best else None,
            # The true limit lies between the best passing rate and the lowest failing one.
            "rate_bracket_per_s": [lo, hi],
            "bracket_relative_width": (hi - lo) / hi if hi and best else None,
            "p99_ms_at_best": best.p99_ms if best else None,
            "queries_at_best": best.queries if best else None,
            "simulated_seconds_at_best": best.simulated_s if best else None,
            "overlatency_at_best": best.overlatency if best else None,
            "tolerable_overlatency_at_best": best.tolerable if best else None,
            "mean_batch_at_best": best.mean_batch if best else None,
            "runs": len(self.runs),
            "budget_exhausted": self.budget_exhausted,
            "search_seconds": self.seconds,
        }


def server_search(
    service: ServiceModel,
    *,
    latency_budget_s: float,
    max_batch: int,
    max_queue_delay_s: float,
    settings: ScenarioSettings,
    max_seconds: float | None = None,
    rel_tol: float = 0.01,
    max_runs: int = 40,
    seed: int = 0,
) -> ServerSearch:
    """Bisection on the rate between 0 and the service's capacity (no rate above it can be sustained),
    stopping at `rel_tol` relative width, after `max_runs` runs, or when `max_seconds` have passed."""
    start = time.perf_counter()
    cap = service.capacity(max_batch)
    search = ServerSearch(best=None, lowest_failing_rate=cap)
    lo, hi = 0.0, cap
    kwargs = dict(
        service=service,
        latency_budget_s=latency_budget_s,
        max_batch=max_batch,
        max_queue_delay_s=max_queue_delay_s,
        settings=settings,
    )
    rate = cap * 0.5
    for k in range(max_runs):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            search.budget_exhausted = True
            break
        run = server_run(rate, seed=seed + k, **kwargs)
        search.runs.append(run)
        if run.passed:
            lo, search.best = rate, run
        else:
            hi = rate
            search.lowest_failing_rate = rate
        if hi - lo <= rel_tol * hi:
            break
        rate = (lo + hi) / 2
    search.seconds = time.perf_counter() - start
    return search
