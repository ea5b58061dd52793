"""Decisions at a margin: non-inferiority and equivalence (TOST), each following from a CI.

Non-inferiority (is the variant at most `margin` worse?) reads the (1 - alpha) two-sided CI, see
`slimlab.stats.paired.verdict_from_ci`. Equivalence (is the difference inside +-margin?) is the two one-sided
tests procedure, which is the same as asking whether the (1 - 2 alpha) CI lies inside (-margin, margin)
(Schuirmann 1987). For paired scores over seeds the p-value is statsmodels' ttost_paired; for the other
tests it is read from their CI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from statsmodels.stats.weightstats import ttost_paired

from slimlab.stats.intervals import no_spread

Equivalence = Literal["equivalent", "not equivalent"]


def equivalence_from_ci(ci_two_alpha: tuple[float, float], margin: float) -> Equivalence:
    """'equivalent' when the (1 - 2 alpha) CI lies strictly inside (-margin, margin)."""
    lo, hi = ci_two_alpha
    if math.isnan(lo) or math.isnan(hi):
        return "not equivalent"
    return "equivalent" if -margin < lo and hi < margin else "not equivalent"


def tost_paired(
    variant: Sequence[float], baseline: Sequence[float], margin: float, alpha: float = 0.05
) -> dict:
    """Equivalence of paired scores within +-margin by TOST (statsmodels ttost_paired).

    Returns p_value (the larger of the two one-sided p-values), the verdict at alpha, and Cohen's d_z.
    Differences with no spread have no t statistic; the verdict is then exact."""
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    d = a - b
    dz = float(d.mean() / d.std(ddof=1)) if d.size > 1 and not no_spread(d) else math.nan
    if d.size < 2:
        p = math.nan
    elif no_spread(d):
        p = 0.0 if abs(d.mean()) < margin else 1.0
    else:
        p = float(ttost_paired(a, b, -margin, margin)[0])
    return {
        "test": "TOST paired t (statsmodels ttost_paired)",
        "margin": margin,
        "p_value": p,
        "verdict": "equivalent" if p < alpha else "not equivalent",
        "effect_size": dz,
        "effect_size_name": "cohen_dz",
    }
