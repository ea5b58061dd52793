"""Paired tests of a variant against its baseline, one function per design of the data.

Every function takes the variant's numbers first and the baseline's second, tests H0: no difference
(two-sided), and returns a `PairedTestResult` with the mean difference (variant - baseline), a CI for it,
and an effect size. The computations are scipy's and statsmodels'; the one hand-written test
(Nadeau-Bengio) exists in neither.

    design                                            test
    per-sample correctness, one test set, one run     mcnemar_exact        (Dietterich 1998)
    k-fold or repeated train/test splits              nadeau_bengio        (Nadeau & Bengio 2003)
    independent seeds                                 paired_t, or wilcoxon_signed_rank
    any paired numbers, few assumptions               paired_permutation
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from slimlab.stats.intervals import bootstrap_ci, mean_ci, no_spread


@dataclass(frozen=True)
class PairedTestResult:
    test: str  # a short id: mcnemar_exact | wilcoxon | paired_t | nadeau_bengio | permutation
    n: int  # pairs: test samples for McNemar, seeds or folds otherwise
    statistic: float
    p_value: float  # two-sided, H0: no difference
    delta: float  # mean of (variant - baseline)
    ci: tuple[float, float]
    ci_method: str
    effect_size: float
    effect_size_name: str
    detail: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def _pair(variant: Sequence[float], baseline: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    return a, b


def _dz(d: np.ndarray) -> float:
    """Cohen's d_z, the mean difference over the sd of the differences; +-inf when they do not vary."""
    if d.size < 2:
        return math.nan
    sd = d.std(ddof=1)
    if no_spread(d):
        return 0.0 if abs(d.mean()) <= 1e-12 else math.copysign(math.inf, d.mean())
    return float(d.mean() / sd)


def _degenerate(name: str, d: np.ndarray, ci: tuple[float, float], ci_method: str) -> PairedTestResult | None:
    """Fewer than two pairs, or differences with no spread: the statistic is undefined, so there is no
    p-value (nan), whatever the differences are (slimlab.stats.degenerate: no certain verdict from two
    seeds that happen to agree). `slimlab.stats.paired_comparison` gives such data its reason."""
    if d.size >= 2 and not no_spread(d):
        return None
    note = "fewer than two pairs" if d.size < 2 else "the differences do not vary"
    return PairedTestResult(
        test=name,
        n=int(d.size),
        statistic=math.nan,
        p_value=math.nan,
        delta=float(d.mean()) if d.size else math.nan,
        ci=ci,
        ci_method=ci_method,
        effect_size=_dz(d),
        effect_size_name="cohen_dz",
        detail=f"{note}: no test statistic, no p-value",
    )


def paired_t(variant: Sequence[float], baseline: Sequence[float], alpha: float = 0.05) -> PairedTestResult:
    """Paired t-test over seeds (scipy.stats.ttest_rel) with the t CI of the mean difference. The seeds
    must be independent: each seed is its own initialisation and data order, on the same split."""
    a, b = _pair(variant, baseline)
    d = a - b
    delta, ci = mean_ci(d, 1 - alpha)
    if (res := _degenerate("paired_t", d, ci, "t")) is not None:
        return res
    t = stats.ttest_rel(a, b)
    lo, hi = t.confidence_interval(1 - alpha)
    return PairedTestResult(
        test="paired_t",
        n=int(d.size),
        statistic=float(t.statistic),
        p_value=float(t.pvalue),
        delta=delta,
        ci=(float(lo), float(hi)),
        ci_method="t",
        effect_size=_dz(d),
        effect_size_name="cohen_dz",
    )


def rank_biserial(d: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014), the effect size of the signed-rank test:
    (W+ - W-) / (W+ + W-) over the non-zero differences, in [-1, 1]. Neither scipy nor statsmodels
    returns it, and it is two lines."""
    x = np.asarray(d, dtype=float)
    x = x[x != 0]
    if x.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(x))
    return float((ranks[x > 0].sum() - ranks[x < 0].sum()) / ranks.sum())


def wilcoxon_signed_rank(
    variant: Sequence[float], baseline: Sequence[float], alpha: float = 0.05
) -> PairedTestResult:
    """Wilcoxon signed-rank test over seeds (scipy.stats.wilcoxon), for differences that may not be
    normal. Exact for small n without ties. With n < 6 pairs it cannot reach p < 0.05 two-sided: the
    smallest exact p-value is 2 / 2^n. The CI is the t interval of the mean difference (`ci_method`)."""
    a, b = _pair(variant, baseline)
    d = a - b
    delta, ci = mean_ci(d, 1 - alpha)
    if (res := _degenerate("wilcoxon", d, ci, "t")) is not None:
        return res
    w = stats.wilcoxon(a, b)
    return PairedTestResult(
        test="wilcoxon",
        n=int(d.size),
        statistic=float(w.statistic),
        p_value=float(w.pvalue),
        delta=delta,
        ci=ci,
        ci_method="t",
        effect_size=rank_biserial(d),
        effect_size_name="rank_biserial",
    )


def nadeau_bengio(
    variant: Sequence[float], baseline: Sequence[float], test_train_ratio: float, alpha: float = 0.05
) -> PairedTestResult:
    """Corrected resampled t-test (Nadeau & Bengio 2003) over k folds or repeated train/test splits.

    The training sets of different splits overlap, so the per-split differences are correlated and the
    plain paired t-test underestimates the variance of their mean: its false-positive rate can exceed
    alpha several times over (Dietterich 1998; Bouckaert & Frank 2004). The correction replaces 1/J by
    1/J + n_test/n_train in the variance of the mean. It is hand-written because neither scipy nor
    statsmodels provides it. For k-fold CV, test_train_ratio = 1 / (k - 1)."""
    if not test_train_ratio > 0:
        raise ValueError(f"test_train_ratio must be positive (n_test / n_train); got {test_train_ratio}")
    a, b = _pair(variant, baseline)
    d = a - b
    j = d.size
    if (res := _degenerate("nadeau_bengio", d, mean_ci(d, 1 - alpha)[1], "corrected t")) is not None:
        return res
    se = math.sqrt((1 / j + test_train_ratio) * d.var(ddof=1))
    t = float(d.mean() / se)
    p = float(2 * stats.t.sf(abs(t), df=j - 1))
    half = float(stats.t.ppf(1 - alpha / 2, df=j - 1) * se)
    return PairedTestResult(
        test="nadeau_bengio",
        n=j,
        statistic=t,
        p_value=p,
        delta=float(d.mean()),
        ci=(float(d.mean() - half), float(d.mean() + half)),
        ci_method="corrected t",
        effect_size=_dz(d),
        effect_size_name="cohen_dz",
        detail=f"n_test/n_train = {test_train_ratio:.4g}",
    )


def paired_permutation(
    variant: Sequence[float],
    baseline: Sequence[float],
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedTestResult:
    """Paired permutation (sign-flip) test of the mean difference (scipy.stats.permutation_test): under H0
    the labels "variant" and "baseline" are exchangeable within each pair. Exact when 2^n <= n_resamples,
    seeded Monte Carlo otherwise. The CI is the t interval of the mean difference (`ci_method`)."""
    a, b = _pair(variant, baseline)
    d = a - b
    delta, ci = mean_ci(d, 1 - alpha)
    if (res := _degenerate("permutation", d, ci, "t")) is not None:
        return res

    def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    r = stats.permutation_test(
        (a, b),
        mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return PairedTestResult(
        test="permutation",
        n=int(d.size),
        statistic=float(r.statistic),
        p_value=float(r.pvalue),
        delta=delta,
        ci=ci,
        ci_method="t",
        effect_size=_dz(d),
        effect_size_name="cohen_dz",
        detail="exact" if 2**d.size <= n_resamples else f"{n_resamples} seeded resamples",
    )


def mcnemar_exact(
    correct_variant: Sequence[int | bool],
    correct_baseline: Sequence[int | bool],
    alpha: float = 0.05,
    seed: int = 0,
    with_ci: bool = True,
) -> PairedTestResult:
    """McNemar's exact test (statsmodels, binomial on the discordant pairs) on per-sample correctness of
    two models on the same test set. It measures the variation over test samples only, not over training
    runs: use it when there is one run per model (Dietterich 1998). The CI for the accuracy difference is
    a seeded BCa bootstrap over the test samples; the effect size is the discordant odds ratio
    n(variant right, baseline wrong) / n(variant wrong, baseline right). `with_ci=False` skips the
    bootstrap."""
    a = np.asarray(correct_variant).astype(bool)
    b = np.asarray(correct_baseline).astype(bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-sample correctness differs in length: {a.size} vs {b.size}")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    if with_ci:
        delta, ci = bootstrap_ci(a.astype(float), b.astype(float), confidence=1 - alpha, seed=seed)
    else:  # simulations that need only the p-value skip the bootstrap, the costly part
        delta, ci = float(a.mean() - b.mean()), (math.nan, math.nan)
    if only_a + only_b == 0:
        p, stat = 1.0, 0.0  # no discordant pair: the models agree on every sample
    else:
        res = mcnemar(table, exact=True)
        p, stat = float(res.pvalue), float(res.statistic)
    odds = only_a / only_b if only_b else (math.inf if only_a else math.nan)
    return PairedTestResult(
        test="mcnemar_exact",
        n=int(a.size),
        statistic=stat,
        p_value=p,
        delta=delta,
        ci=ci,
        ci_method="bootstrap BCa over test samples" if with_ci else "not computed",
        effect_size=float(odds),
        effect_size_name="discordant_odds_ratio",
        detail=f"discordant pairs: variant-only {only_a}, baseline-only {only_b}",
    )
