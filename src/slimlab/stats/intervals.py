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


def mean_with_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | list[float]]:
    """{"mean", "ci": [lo, hi]} of `mean_ci`: the mean and interval over seeds as the analysis sections
    store them (NaN where there is none; results.json writes it as null)."""
    mean, (lo, hi) = mean_ci(values, confidence)
    return {"mean": mean, "ci": [lo, hi]}


def geometric_mean_ci(
    ratios: Sequence[float | None], confidence: float = 0.95
) -> tuple[float | None, list[float | None]]:
    """The geometric mean of positive ratios (speedups, paired by seed) and its t interval, computed on the
    log ratios and mapped back, so that it stays positive; ratios that are missing, not positive or not
    finite are left out. (None, [None, None]) without ratios; an end is None where there is none (one
    ratio) or where it does not fit a float."""
    logs = [math.log(r) for r in ratios if r is not None and r > 0 and math.isfinite(r)]
    if not logs:
        return None, [None, None]
    m, (lo, hi) = mean_ci(logs, confidence)

    def back(v: float) -> float | None:
        return math.exp(v) if math.isfinite(v) and v < 700 else None  # exp(710) overflows a float

    return math.exp(m), [back(lo), back(hi)]


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
