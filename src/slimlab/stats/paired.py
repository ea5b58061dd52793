"""Paired comparison of a variant against its baseline over seeds, and the non-inferiority verdict.

A variant and its baseline share each seed (the same dense parent, the same splits), so the per-seed
differences are paired. The verdict follows from the (1 - alpha) two-sided CI of the mean difference and
the margin, as in non-inferiority trials (CONSORT): a lower bound above -margin is a one-sided test of
H0: delta <= -margin at alpha / 2.

    superior      lo > 0
    non-inferior  lo > -margin
    inferior      hi < -margin          (worse than the margin allows, with confidence)
    inconclusive  otherwise             (the CI straddles -margin: more seeds are needed)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from slimlab.stats.intervals import mean_ci, no_spread

Verdict = Literal["superior", "non-inferior", "inconclusive", "inferior"]


@dataclass(frozen=True)
class PairedComparison:
    n: int
    delta: float  # mean of (variant - baseline)
    ci: tuple[float, float]
    test: str
    p_value: float  # two-sided, H0: delta == 0
    p_noninferiority: float  # one-sided, H0: delta <= -margin
    effect_size: float  # Cohen's d_z: mean difference / sd of differences
    margin: float
    alpha: float
    verdict: Verdict
    reason: str | None = None  # why the data cannot support a verdict (stats.degenerate), else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def verdict_from_ci(ci: tuple[float, float], margin: float) -> Verdict:
    lo, hi = ci
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > 0:
        return "superior"
    if lo > -margin:
        return "non-inferior"
    if hi < -margin:
        return "inferior"
    return "inconclusive"


def paired_comparison(
    variant: Sequence[float],
    baseline: Sequence[float],
    margin: float,
    alpha: float = 0.05,
    n_samples: int | None = None,
) -> PairedComparison:
    """Paired t-test over seeds (scipy.stats.ttest_rel), with the CI of the mean difference. Degenerate
    data (stats.degenerate: differences that do not vary, fewer than 3 seeds, or `n_samples` so few that
    one sample moves the metric by more than the margin) give `inconclusive` with the reason and no
    p-values, never a certain verdict."""
    from slimlab.stats.degenerate import degenerate_reason

    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    d = a - b
    delta, ci = mean_ci(d, 1 - alpha)
    test = "paired t-test over seeds (scipy.stats.ttest_rel)"
    reason = degenerate_reason(d, margin=margin, n_samples=n_samples)
    if reason is not None:
        return PairedComparison(
            n=int(d.size),
            delta=delta,
            ci=ci if not no_spread(d) else (math.nan, math.nan),
            test=test,
            p_value=math.nan,
            p_noninferiority=math.nan,
            effect_size=math.nan,
            margin=margin,
            alpha=alpha,
            verdict="inconclusive",
            reason=reason,
        )
    if d.size < 2:
        p, p_ni, dz = math.nan, math.nan, math.nan
    elif no_spread(d):
        # No spread: the t statistic is undefined. The difference is exactly known on these seeds.
        test += "; differences have zero variance, p set exactly"
        p = 1.0 if np.all(np.abs(d) <= 1e-12) else 0.0
        p_ni = 0.0 if d[0] > -margin else 1.0
        dz = 0.0 if p == 1.0 else math.copysign(math.inf, d[0])
    else:
        p = float(stats.ttest_rel(a, b).pvalue)
        p_ni = float(stats.ttest_1samp(d + margin, 0.0, alternative="greater").pvalue)
        dz = float(d.mean() / d.std(ddof=1))
    return PairedComparison(
        n=int(d.size),
        delta=delta,
        ci=ci,
        test=test,
        p_value=p,
        p_noninferiority=p_ni,
        effect_size=dz,
        margin=margin,
        alpha=alpha,
        verdict=verdict_from_ci(ci, margin),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels). NaNs stay NaN and are left out of the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return [float(v) for v in out]
