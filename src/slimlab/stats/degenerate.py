"""When the data cannot support a verdict: the one rule, which `slimlab.stats.paired_comparison` applies
for every caller. A comparison whose paired differences do not vary, or that has fewer runs than its test
needs, is `inconclusive`, with the reason, never a p-value the data cannot give: a t test of zero-variance
differences has no statistic at all (the exact "p = 0" such code once reported claimed certainty from two
seeds), and a rank test of 3 pairs cannot reach p < 0.05 whatever the data. A metric measured on so few
samples that one sample moves it by more than the margin (`resolution_reason`) cannot be shown "no worse
than the margin": that comparison can still be superior or inferior, but never non-inferior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slimlab.stats.intervals import no_spread

# The fewest paired runs each test needs for a verdict. A paired t test has a CI from 2 runs, but with one
# degree of freedom its t quantile is 12.7 and its variance estimate is a single squared difference: 3 is
# the least that estimates a spread. Exact rank and sign-flip tests need 6 pairs before their smallest
# two-sided p-value (2 / 2^n) falls below 0.05.
MIN_RUNS = {"paired_t": 3, "nadeau_bengio": 3, "wilcoxon": 6, "permutation": 6, "sign": 6}


def degenerate_reason(
    differences: Sequence[float] | np.ndarray,
    *,
    test: str = "paired_t",
    margin: float | None = None,
    n_samples: int | None = None,
    unit: str = "seeds",
) -> str | None:
    """Why these paired differences cannot give a verdict, or None when they can. With `n_samples`, also
    the resolution limit (`resolution_reason`), for a caller that treats it as degenerate too."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    need = MIN_RUNS.get(test, 3)
    if d.size < need:
        return f"{d.size} paired {unit}; {test} needs at least {need} for a verdict"
    if no_spread(d):
        return (
            f"the paired differences do not vary (Δ = {d[0]:+.4g} on all {d.size} {unit}): there is no "
            "spread to test against, so no p-value or interval can be given"
        )
    if n_samples is not None and margin:
        return resolution_reason(n_samples, margin)
    return None


def resolution_reason(n_samples: int | None, margin: float | None) -> str | None:
    """Why a metric over `n_samples` test samples cannot resolve `margin` (one sample moves it by more),
    or None when it can."""
    if n_samples is not None and margin and n_samples > 0 and 1.0 / n_samples > margin:
        return (
            f"n = {n_samples} samples: one sample changes the metric by {1 / n_samples:.3g}, more than the "
            f"margin {margin:g}, so the margin cannot be resolved"
        )
    return None
