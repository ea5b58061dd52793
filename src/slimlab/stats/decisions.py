"""Decisions at a margin: non-inferiority and equivalence (TOST), each following from a CI.

Non-inferiority (is the variant at most `margin` worse?) reads the (1 - alpha) two-sided CI, see
`slimlab.stats.verdict`. Equivalence (is the difference inside +-margin?) is the two one-sided
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
from slimlab.stats.paired_tests import _dz

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
    Differences with no spread (or fewer than two) have no t statistic: no p-value, not equivalent (the
    one degenerate-data rule, slimlab.stats.degenerate)."""
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    d = a - b
    p = math.nan if d.size < 2 or no_spread(d) else float(ttost_paired(a, b, -margin, margin)[0])
    return {
        "test": "TOST paired t (statsmodels ttost_paired)",
        "margin": margin,
        "p_value": p,
        "verdict": "equivalent" if p < alpha else "not equivalent",
        "effect_size": _dz(d),
        "effect_size_name": "cohen_dz",
    }
