import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from slimlab.stats import holm, mean_ci, paired_comparison, verdict_from_ci


def test_mean_ci_matches_the_t_formula():
    x = np.array([0.91, 0.92, 0.905, 0.89, 0.92])
    mean, (lo, hi) = mean_ci(x, 0.95)
    half = stats.t.ppf(0.975, df=4) * x.std(ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx((x.mean() - half, x.mean() + half))


def test_mean_ci_degenerate_cases():
    assert math.isnan(mean_ci([0.9])[1][0])
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, (0.5, 0.5))
    assert math.isnan(mean_ci([])[0])


def test_paired_comparison_agrees_with_scipy():
    rng = np.random.default_rng(0)
    base = rng.normal(0.9, 0.01, 8)
    variant = base + rng.normal(-0.002, 0.004, 8)
    result = paired_comparison(variant, base, margin=0.01)
    assert result.p_value == pytest.approx(stats.ttest_rel(variant, base).pvalue)
    d = variant - base
    lo, hi = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    assert result.ci == pytest.approx((lo, hi))
    assert result.p_noninferiority == pytest.approx(
        stats.ttest_1samp(d + 0.01, 0, alternative="greater").pvalue
    )
    assert result.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    # The verdict and the one-sided test at alpha/2 say the same thing.
    assert (result.verdict in ("non-inferior", "superior")) == (result.p_noninferiority < 0.025)


@pytest.mark.parametrize(
    ("ci", "verdict"),
    [
        ((0.001, 0.02), "superior"),
        ((-0.005, 0.01), "non-inferior"),
        ((-0.009, -0.001), "non-inferior"),
        ((-0.03, -0.011), "inferior"),
        ((-0.02, 0.01), "inconclusive"),
        ((float("nan"),) * 2, "inconclusive"),
    ],
)
def test_verdicts(ci, verdict):
    assert verdict_from_ci(ci, margin=0.01) == verdict


def test_zero_variance_differences_are_inconclusive_with_the_reason():
    # Issue 11: zero-variance differences used to give certain verdicts (p = 0 or 1, CI [d, d]).
    same = paired_comparison([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], margin=0.01)
    assert same.verdict == "inconclusive" and "do not vary" in same.reason
    assert math.isnan(same.p_value) and math.isnan(same.ci[0])
    # 1 point below on every seed with a 1-point margin: once "non-inferior, p < 0.001".
    below = paired_comparison([0.89, 0.79, 0.69, 0.59], [0.90, 0.80, 0.70, 0.60], margin=0.01)
    assert below.verdict == "inconclusive" and math.isnan(below.p_noninferiority)
    # "superior" with CI [6.0, 6.0] from 2 seeds
    two = paired_comparison([0.96, 0.86], [0.90, 0.80], margin=0.01)
    assert two.verdict == "inconclusive" and two.reason


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison([1, 2], [1], margin=0.0)


def test_holm_matches_statsmodels_and_skips_nan():
    p = [0.01, 0.04, 0.03, float("nan"), 0.2]
    adjusted = holm(p)
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    assert [adjusted[i] for i in (0, 1, 2, 4)] == pytest.approx(list(expected))
    assert math.isnan(adjusted[3])


def test_type_one_error_is_calibrated_under_the_null():
    # 2,000 experiments of 5 seeds with no true difference: the test rejects at about alpha.
    rng = np.random.default_rng(42)
    base = rng.normal(0.9, 0.01, (2000, 5))
    variant = base + rng.normal(0, 0.005, (2000, 5))
    rejections = np.mean(
        [paired_comparison(v, b, 0.01).p_value < 0.05 for v, b in zip(variant, base, strict=True)]
    )
    assert 0.035 <= rejections <= 0.065
