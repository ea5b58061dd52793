"""Confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def no_spread(x: np.ndarray) -> bool:
    """All values equal up to floating-point noise (0.9 - 0.8 and 0.8 - 0.7 differ in the last bit).
    Tests then have no variance to work with, and scipy warns of catastrophic cancellation."""
    return x.size > 0 and bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """The mean and its Student-t confidence interval over independent runs (seeds). With one value the
    interval is (nan, nan): one run says nothing about the spread."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return mean, (math.nan, math.nan)
    if no_spread(x):  # scipy would return nan
        return mean, (mean, mean)
    lo, hi = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return mean, (float(lo), float(hi))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    paired_with: Sequence[float] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """The mean and its BCa bootstrap interval (scipy.stats.bootstrap) over test samples.

    Use it for a metric averaged over the samples of one test set (per-sample correctness, per-sample
    loss), where the samples, not the seeds, are the unit of replication. With `paired_with`, the interval
    is for mean(values) - mean(paired_with), resampling the samples jointly so that the pairing is kept.
    The random state is seeded: the same call gives the same interval. BCa is undefined when every value
    is equal (zero spread); the interval is then the point itself."""
    x = np.asarray(values, dtype=float)
    if paired_with is not None:
        y = np.asarray(paired_with, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
        x = x - y  # the mean of differences is the difference of means; resampling pairs keeps pairing
    if x.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return mean, (math.nan, math.nan)
    if no_spread(x):
        return mean, (mean, mean)
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="BCa",
        # Batches bound the memory: the resamples and BCa's jackknife are n-by-batch arrays.
        batch=max(1, 2_000_000 // x.size),
        rng=np.random.default_rng(seed),
    )
    return mean, (float(res.confidence_interval.low), float(res.confidence_interval.high))


def wilson_ci(successes: float, n: float, confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """A proportion and its Wilson score interval (statsmodels proportion_confint), slimlab's one Wilson
    interval. Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its coverage in small
    groups and near 0 or 1, which is where per-group accuracies live. `successes` may be a mean count
    over seeds (rate x n), as the per-group tables use. (nan, (nan, nan)) when n is 0."""
    if n <= 0:
        return math.nan, (math.nan, math.nan)
    if not -1e-9 * n <= successes <= n * (1 + 1e-9):
        raise ValueError(f"successes must lie in [0, n={n}]; got {successes}")
    from statsmodels.stats.proportion import proportion_confint  # slow to import; needed only here

    successes = min(max(successes, 0), n)
    lo, hi = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return successes / n, (float(lo), float(hi))
