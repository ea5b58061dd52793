"""Intervals for metrics with a range (accuracy in [0, 1], a rate, a share), which a t interval over a few
seeds overshoots: two seeds at 12% and 14% give [-55.9%, 81.7%].

`bounded_mean_ci` is the Student-t interval computed on the logit scale and mapped back: the logit maps
(0, 1) onto the real line, where a mean of a few values is closer to normal, and its inverse maps any
interval back inside (0, 1), so the result respects the range by construction, not by clipping. Values at
a bound (an accuracy of exactly 1) have no logit; they are moved half a sample inward, (k + 1/2) / (n + 1)
with n the number of test samples behind each value (the Haldane-Anscombe correction), or by 1e-3 of the
range when n is unknown. When every seed scored the same, the seeds say nothing about spread; the interval
is then Wilson's for one test set of n samples (its binomial uncertainty), or unknown without n.
The logit-t interval is a standard choice for proportions averaged over replicates (e.g. Warton & Hui,
Ecology 2011, "The arcsine is asinine"); scipy and statsmodels have no function for it, hence this one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from scipy.special import expit, logit

from slimlab.stats.intervals import no_spread, wilson_ci


def bounded_mean_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    lower: float = 0.0,
    upper: float = 1.0,
    n_samples: int | None = None,
) -> tuple[float, tuple[float, float], str]:
    """(mean, (lo, hi), method) with lower <= lo <= mean <= hi <= upper. `n_samples` is the number of test
    samples behind each value (for the correction at the bounds and the no-spread case)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, (math.nan, math.nan), "no values"
    width = upper - lower
    mean = float(x.mean())
    if x.size == 1:
        return mean, (math.nan, math.nan), "one value: no interval"
    u = (x - lower) / width
    if no_spread(x):
        if not n_samples:
            return mean, (math.nan, math.nan), "no spread over seeds and no sample count: no interval"
        k = round(float(u[0]) * n_samples)
        _, (lo, hi) = wilson_ci(k, n_samples, confidence)
        return mean, (lower + width * lo, upper - width * (1 - hi)), f"Wilson on {n_samples} test samples"
    u = (u * n_samples + 0.5) / (n_samples + 1) if n_samples else np.clip(u, 1e-3, 1 - 1e-3)
    z = logit(u)
    t = stats.t.ppf(0.5 + confidence / 2, z.size - 1)
    half = t * z.std(ddof=1) / math.sqrt(z.size)
    lo, hi = lower + width * float(expit(z.mean() - half)), lower + width * float(expit(z.mean() + half))
    # The back-transformed interval is around the mean on the logit scale; keep the arithmetic mean inside.
    return mean, (min(lo, mean), max(hi, mean)), "Student t on the logit scale"


def bounded_difference_ci(
    lo: float, hi: float, lower: float = -1.0, upper: float = 1.0
) -> tuple[float, float]:
    """A difference of two bounded metrics lies in [lower, upper] (accuracy differences in [-1, 1]); an
    interval from a method that ignores this is intersected with it. This is the only place slimlab clips:
    paired differences are close to normal and rarely reach the bounds, so a transform is not needed."""
    if math.isnan(lo) or math.isnan(hi):
        return lo, hi
    return max(lo, lower), min(hi, upper)
