"""Confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """The mean and its Student-t confidence interval over independent runs (seeds). With one value the
    interval is (nan, nan): one run says nothing about the spread."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return mean, (math.nan, math.nan)
    if np.all(x == x[0]):  # zero spread; scipy would return nan
        return mean, (mean, mean)
    lo, hi = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return mean, (float(lo), float(hi))
