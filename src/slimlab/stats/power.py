"""Power and sample size: how many seeds, folds or test samples a comparison needs to detect the margin.

An "inconclusive" or "no difference" verdict from a design that could not have detected the margin says
nothing about the models; it says the experiment was too small. `power_info` gives the power at the margin
and the size that would reach the target power, and flags the design as underpowered below it.

The paired t power is statsmodels' TTestPower. The rest are the standard approximations, hand-written
because neither library has them: McNemar by Connor (1987), Nadeau-Bengio through the noncentral t with
its corrected variance, and the Wilcoxon test through the paired t with the asymptotic
relative efficiency of the signed-rank test under normality (3/pi); the permutation test of the mean is
as efficient as the t-test.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import stats
from statsmodels.stats.power import TTestPower

WILCOXON_ARE = 3 / math.pi  # signed-rank vs t under normal differences (Lehmann)
MAX_N = 1_000_000  # McNemar sizes are test samples, which can run to many thousands


def _large_nc_fallback(power: float, df: float, nc: float, alpha: float) -> float:
    """scipy's noncentral t returns NaN for large noncentrality (about nc > 8), where the power is all but
    1; the normal approximation is then accurate to many digits."""
    if math.isfinite(power):
        return power
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.norm.sf(crit - abs(nc)) + stats.norm.cdf(-crit - abs(nc)))


def paired_t_power(n: float, effect_size: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with n pairs at effect size d_z (statsmodels TTestPower)."""
    if n < 2 or not math.isfinite(effect_size):
        return math.nan if n < 2 else 1.0
    power = float(TTestPower().power(effect_size=abs(effect_size), nobs=n, alpha=alpha))
    return _large_nc_fallback(power, n - 1, abs(effect_size) * math.sqrt(n), alpha)


def smallest_n(power_at: Callable[[int], float], target: float, start: int = 2) -> int | None:
    """The smallest whole n >= start with power_at(n) >= target, or None beyond MAX_N. Power grows with n
    for every test here, so doubling then bisection finds it. (TTestPower.solve_power's root finder fails
    for large effects, where the answer is below 3, and it returns a fraction of a seed.)"""
    lo, hi = start, start
    while hi <= MAX_N and not power_at(hi) >= target:
        lo, hi = hi, hi * 2
    if hi > MAX_N:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if not power_at(mid) >= target else (lo, mid)
    return hi


def seeds_needed(margin: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Seeds for a two-sided paired t-test to detect a mean difference of `margin` when the per-seed
    differences have standard deviation `sd` (power from statsmodels TTestPower)."""
    if sd <= 0:
        return 2
    return smallest_n(lambda n: paired_t_power(n, margin / sd, alpha), power)


def nadeau_bengio_power(
    j: int, margin: float, sd: float, test_train_ratio: float, alpha: float = 0.05
) -> float:
    """Power of the corrected resampled t-test with j splits: noncentral t with df = j - 1 and
    noncentrality margin / (sd * sqrt(1/j + n_test/n_train))."""
    if j < 2:
        return math.nan
    if sd <= 0:
        return 1.0
    nc = margin / (sd * math.sqrt(1 / j + test_train_ratio))
    crit = stats.t.ppf(1 - alpha / 2, j - 1)
    power = float(stats.nct.sf(crit, j - 1, nc) + stats.nct.cdf(-crit, j - 1, nc))
    return _large_nc_fallback(power, j - 1, nc, alpha)


def mcnemar_power(n: int, margin: float, p_discordant: float, alpha: float = 0.05) -> float:
    """Approximate power of McNemar's test with n test samples to detect an accuracy difference of
    `margin` when a fraction p_discordant of samples is classified differently by the two models
    (Connor 1987, normal approximation)."""
    if n < 1:
        return math.nan
    if p_discordant <= margin:
        # Every discordant sample would have to favour one model: the difference is then unmistakable.
        return 1.0 if p_discordant > 0 else math.nan
    z = stats.norm.ppf(1 - alpha / 2)
    zb = (margin * math.sqrt(n) - z * math.sqrt(p_discordant)) / math.sqrt(p_discordant - margin**2)
    return float(stats.norm.cdf(zb))


def power_info(
    test: str,
    n: int,
    margin: float,
    spread: float,
    alpha: float = 0.05,
    target: float = 0.8,
    test_train_ratio: float | None = None,
) -> dict:
    """Power at the margin and the size needed for `target` power, for the test that was used.

    `spread` is the sd of the per-seed (per-fold) differences, or for McNemar the observed fraction of
    discordant samples. Both are estimates from the data at hand, so the numbers are a planning guide, not
    exact. Returns a JSON-able dict: power, n, n_needed (None when no size reaches the target), unit,
    underpowered, method."""
    unit = "test samples" if test == "mcnemar_exact" else ("folds" if test == "nadeau_bengio" else "seeds")
    info = {"n": n, "unit": unit, "margin": margin, "target_power": target}
    if margin <= 0 or not math.isfinite(spread):
        return {**info, "power": None, "n_needed": None, "underpowered": None, "method": "margin is 0"}

    def power_at(k: int) -> float:
        if test == "mcnemar_exact":
            return mcnemar_power(k, margin, spread, alpha)
        if test == "nadeau_bengio":
            return nadeau_bengio_power(k, margin, spread, test_train_ratio or 0.0, alpha)
        sd = spread if spread > 0 else 0.0
        # The permutation test of the mean is as efficient as the t-test; the signed-rank test is not.
        effective = k * WILCOXON_ARE if test == "wilcoxon" else k
        return paired_t_power(effective, margin / sd if sd else math.inf, alpha)

    method = {
        "mcnemar_exact": "Connor (1987) normal approximation",
        "nadeau_bengio": "noncentral t with the Nadeau-Bengio variance",
        "paired_t": "statsmodels TTestPower",
        "permutation": "statsmodels TTestPower (the permutation test of the mean is as efficient)",
        "wilcoxon": "TTestPower at n x 3/pi (asymptotic relative efficiency)",
    }.get(test, "statsmodels TTestPower")
    power = power_at(n)
    n_needed = smallest_n(power_at, target)
    if test == "nadeau_bengio" and n_needed is None:
        method += "; no number of splits reaches the target: the n_test/n_train term does not shrink"
    return {
        **info,
        "power": None if math.isnan(power) else round(power, 4),
        "n_needed": n_needed,
        "underpowered": bool(math.isnan(power) or power < target),
        "method": method,
    }
