"""The one paired comparison of a variant against its baseline: `paired_comparison`.

A variant and its baseline share each run (a seed: the same dense parent and splits; a fold; or, for
McNemar, each test sample), so the differences are paired. One call runs the test that the design calls
for (`slimlab.stats.paired_tests`, by name: paired_t, wilcoxon, permutation, nadeau_bengio,
mcnemar_exact), gives the mean difference with its CI and effect size, applies the one degenerate-data
rule (`slimlab.stats.degenerate`), computes the one-sided p-values at the margin (`stats.verdict`:
superiority, non-inferiority, inferiority) and the verdict of the comparison alone (`stats.verdict.decide`
at alpha / 2; for a paired t-test the same as reading the (1 - alpha) CI, as in non-inferiority trials):

    superior      lo > 0
    non-inferior  lo > -margin
    inferior      hi < -margin          (worse than the margin allows, with confidence)
    inconclusive  otherwise             (the CI straddles -margin: more seeds are needed)

A table of comparisons (the experiment's, the fairness audit's groups, the search's candidates) then
decides with `stats.verdict.holm_verdicts`, the same rule on Holm-adjusted p-values. The experiment
comparisons (`compare_scores`), the fairness audit, the search (through the comparisons) and the lottery
summary all go through here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from slimlab.stats.choose import run_test
from slimlab.stats.degenerate import degenerate_reason, resolution_reason
from slimlab.stats.intervals import no_spread
from slimlab.stats.verdict import FAMILIES, Verdict, decide, holm, margin_pvalues, verdict_from_ci

__all__ = ["PairedComparison", "Verdict", "holm", "paired_comparison", "verdict_from_ci"]


@dataclass(frozen=True)
class PairedComparison:
    test: str  # the test's short id: paired_t | wilcoxon | permutation | nadeau_bengio | mcnemar_exact
    n: int  # pairs: seeds or folds; test samples for McNemar
    delta: float  # mean of (variant - baseline)
    ci: tuple[float, float]  # (nan, nan) when the data give none (one run, no spread)
    ci_method: str
    statistic: float
    p_value: float  # two-sided, H0: delta == 0; nan for degenerate data
    p_superiority: float  # one-sided, H0: delta <= 0; nan when degenerate (or McNemar)
    p_noninferiority: float  # one-sided, H0: delta <= -margin
    p_inferiority: float  # one-sided, H0: delta >= -margin
    effect_size: float
    effect_size_name: str  # cohen_dz | rank_biserial | discordant_odds_ratio
    margin: float
    alpha: float
    verdict: Verdict  # of this comparison alone; a table re-decides with Holm (stats.verdict)
    reason: str | None = None  # why the data cannot support a verdict (stats.degenerate), else None
    non_inferiority_unresolvable: str | None = None  # the test set cannot resolve the margin
    detail: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d

    def pvalues(self) -> dict[str, float | None]:
        """The three one-sided p-values, None where there is none (the keys `holm_verdicts` reads)."""
        return {k: None if math.isnan(v := getattr(self, k)) else v for k in FAMILIES}


def paired_comparison(
    variant: Sequence[float],
    baseline: Sequence[float],
    margin: float,
    alpha: float = 0.05,
    *,
    test: str = "paired_t",
    test_train_ratio: float | None = None,
    seed: int = 0,
    n_samples: int | None = None,
    unit: str = "seeds",
) -> PairedComparison:
    """`variant` and `baseline` are paired scores (or, for mcnemar_exact, per-sample 0/1 correctness);
    higher is better. Degenerate data (differences that do not vary, fewer runs than the test needs) give
    `inconclusive` with the reason and no p-values, never a certain verdict. With `n_samples` (the test
    samples behind each score), a margin finer than one sample can resolve blocks the non-inferior verdict
    (it can still be shown superior or inferior)."""
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} vs {b.size}")
    result = run_test(test, a, b, alpha, test_train_ratio, seed)
    d = a - b
    per_sample = test == "mcnemar_exact"
    reason = None if per_sample else degenerate_reason(d, test=test, margin=margin, unit=unit)
    unresolvable = resolution_reason(n_samples, margin) if n_samples else None
    p_two, ci = result.p_value, result.ci
    if per_sample:
        pvalues = dict.fromkeys(FAMILIES, math.nan)
        verdict = verdict_from_ci(ci, margin)
    elif reason is not None:
        pvalues = dict.fromkeys(FAMILIES, math.nan)
        p_two = math.nan
        if no_spread(d):  # an interval of zero width claims a certainty the data cannot give
            ci = (math.nan, math.nan)
        verdict = "inconclusive"
    else:
        pvalues = {
            k: math.nan if p is None else p
            for k, p in margin_pvalues(test, a, b, margin, alpha, test_train_ratio, seed).items()
        }
        verdict = decide(pvalues, alpha, bool(unresolvable))[0]
    return PairedComparison(
        test=result.test,
        n=result.n,
        delta=result.delta,
        ci=(float(ci[0]), float(ci[1])),
        ci_method=result.ci_method,
        statistic=result.statistic,
        p_value=p_two,
        p_superiority=pvalues["p_superiority"],
        p_noninferiority=pvalues["p_noninferiority"],
        p_inferiority=pvalues["p_inferiority"],
        effect_size=result.effect_size,
        effect_size_name=result.effect_size_name,
        margin=margin,
        alpha=alpha,
        verdict=verdict,
        reason=reason,
        non_inferiority_unresolvable=unresolvable,
        detail=result.detail,
    )
