"""Curve statistics of the studies: means over seeds with t intervals kept inside their metric's range,
and geometric means of ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slimlab.stats.intervals import mean_ci

Bounds = tuple[float, float]
PROPORTION: Bounds = (0.0, 1.0)  # errors, accuracies, dropped shares
DIFFERENCE: Bounds = (-1.0, 1.0)  # a difference of two proportions
POSITIVE: Bounds = (0.0, math.inf)  # losses, seconds, steps


def _clip(value: float, bounds: Bounds) -> float:
    """A t interval knows nothing of its metric's range; an interval is kept inside it."""
    return value if not math.isfinite(value) else min(max(value, bounds[0]), bounds[1])


def curve_summary(
    curves: Sequence[Sequence[float]], bounds: Bounds = PROPORTION, confidence: float = 0.95
) -> dict[str, list]:
    """Mean and Student-t CI over seeds at each point of equally long curves, clipped to `bounds`."""
    arr = np.asarray(curves, dtype=float)
    means, lo, hi = [], [], []
    for column in arr.T:
        m, (a, b) = mean_ci(column[np.isfinite(column)], confidence)
        means.append(m)
        lo.append(_clip(a, bounds))
        hi.append(_clip(b, bounds))
    return {"mean": means, "lo": lo, "hi": hi, "n": int(arr.shape[0])}


def summarize(values: Sequence[float], bounds: Bounds = PROPORTION, confidence: float = 0.95) -> dict:
    """Mean and Student-t CI over seeds, clipped to `bounds`; None and non-finite values are left out."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    m, (lo, hi) = mean_ci(kept, confidence)
    return {"mean": m, "ci": [_clip(lo, bounds), _clip(hi, bounds)], "n": len(kept)}


def geometric_summary(ratios: Sequence[float], confidence: float = 0.95) -> dict:
    """Geometric mean of positive ratios (speedups) with a t interval on the log ratios."""
    logs = [math.log(r) for r in ratios if r is not None and r > 0 and math.isfinite(r)]
    if not logs:
        return {"mean": None, "ci": [None, None], "n": 0}
    m, (lo, hi) = mean_ci(logs, confidence)
    finite = math.isfinite(lo) and math.isfinite(hi)
    return {
        "mean": math.exp(m),
        "ci": [math.exp(lo), math.exp(hi)] if finite else [None, None],
        "n": len(logs),
    }
