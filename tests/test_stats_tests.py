"""Each paired test against scipy or statsmodels (or an independent computation) on random data."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import ttost_paired

from slimlab.errors import ConfigError
from slimlab.stats import (
    choose_test,
    equivalence_from_ci,
    mcnemar_exact,
    min_pairs,
    nadeau_bengio,
    paired_permutation,
    paired_t,
    run_test,
    tost_paired,
    wilcoxon_signed_rank,
)
from slimlab.stats.paired_tests import rank_biserial


@pytest.fixture(params=[0, 1, 2])
def pair(request):
    rng = np.random.default_rng(request.param)
    base = rng.normal(0.9, 0.01, 9)
    return base + rng.normal(0.002 * request.param, 0.005, 9), base


def test_paired_t_is_scipy_ttest_rel(pair):
    a, b = pair
    res, ref = paired_t(a, b), stats.ttest_rel(a, b)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert res.ci == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert res.effect_size == pytest.approx((a - b).mean() / (a - b).std(ddof=1))


def test_wilcoxon_is_scipy_and_rank_biserial_is_kerby(pair):
    a, b = pair
    res = wilcoxon_signed_rank(a, b)
    assert res.p_value == pytest.approx(stats.wilcoxon(a, b).pvalue)
    d = a - b
    ranks = stats.rankdata(np.abs(d))
    w_plus, w_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    assert res.effect_size == pytest.approx((w_plus - w_minus) / (w_plus + w_minus))
    assert rank_biserial([1, 2, 3]) == 1.0 and rank_biserial([-1, -2]) == -1.0


def test_permutation_matches_an_enumeration_of_sign_flips(pair):
    a, b = pair
    d = a - b
    # Independent of scipy: all 2^9 sign patterns, two-sided as scipy defines it (both tails, capped at 1).
    flips = np.array(list(itertools.product([1, -1], repeat=d.size)))
    means = (flips * d).mean(axis=1)
    observed = d.mean()
    eps = 1e-12 * max(1.0, abs(observed))
    p = min(1.0, 2 * min(np.mean(means >= observed - eps), np.mean(means <= observed + eps)))
    res = paired_permutation(a, b)
    assert res.detail == "exact"
    assert res.p_value == pytest.approx(p)


def test_permutation_is_seeded_when_sampled():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 20), rng.normal(0.3, 1, 20)
    first, again = (
        paired_permutation(a, b, n_resamples=999, seed=3),
        paired_permutation(a, b, n_resamples=999, seed=3),
    )
    assert first.p_value == again.p_value and first.detail == "999 seeded resamples"


def test_nadeau_bengio_formula_and_its_limit():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.8, 0.02, 10), rng.normal(0.79, 0.02, 10)
    d = a - b
    res = nadeau_bengio(a, b, test_train_ratio=1 / 9)
    t = d.mean() / math.sqrt((1 / 10 + 1 / 9) * d.var(ddof=1))
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t), 9))
    # The correction widens the interval and raises p relative to the naive test ...
    naive = stats.ttest_rel(a, b)
    assert res.p_value > naive.pvalue
    # ... and vanishes as n_test / n_train goes to 0.
    assert nadeau_bengio(a, b, 1e-12).p_value == pytest.approx(naive.pvalue)
    with pytest.raises(ValueError, match="test_train_ratio must be positive"):
        nadeau_bengio(a, b, 0)


def test_mcnemar_is_statsmodels_and_the_binomial_test():
    rng = np.random.default_rng(11)
    a, b = rng.random(400) < 0.86, rng.random(400) < 0.82
    res = mcnemar_exact(a, b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    assert res.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert res.p_value == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert res.delta == pytest.approx(a.mean() - b.mean())
    assert res.ci[0] < res.delta < res.ci[1]
    assert res.effect_size == pytest.approx(only_a / only_b)
    assert mcnemar_exact(a, a).p_value == 1.0


def test_degenerate_inputs():
    # Differences that do not vary have no test statistic: no p-value (it used to be set "exactly" to 1 or
    # 0, a certainty that two agreeing seeds cannot give; issue 10's one degenerate-data rule).
    same = paired_t([0.9, 0.8], [0.9, 0.8])
    assert math.isnan(same.p_value) and "do not vary" in same.detail
    assert math.isnan(wilcoxon_signed_rank([0.9, 0.8, 0.7], [0.8, 0.7, 0.6]).p_value)  # identical shifts
    assert math.isnan(nadeau_bengio([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], 0.25).p_value)
    assert math.isnan(paired_permutation([0.9], [0.8]).p_value)
    assert math.isnan(tost_paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], 0.01)["p_value"])
    with pytest.raises(ValueError, match="differ in length"):
        wilcoxon_signed_rank([1, 2, 3], [1, 2])


def test_min_pairs_is_where_rank_tests_can_first_reject():
    assert min_pairs("wilcoxon") == 6 and min_pairs("paired_t") == 2
    # All differences positive is the most extreme data a signed-rank test can see.
    assert stats.wilcoxon(np.arange(1, 6)).pvalue > 0.05
    assert stats.wilcoxon(np.arange(1, 7)).pvalue < 0.05
    with pytest.raises(ConfigError, match="unknown test"):
        min_pairs("z_test")


def test_choose_test_follows_the_design_and_says_why():
    assert choose_test("per_sample", 1000).test == "mcnemar_exact"
    assert choose_test("folds", 10).test == "nadeau_bengio"
    few = choose_test("seeds", 5, [0.1, 0.2, 0.0, 0.1, 0.3])
    assert few.test == "paired_t" and "fewer than 6" in few.reason
    normal = np.random.default_rng(0).normal(0, 1, 12)
    assert choose_test("seeds", 12, normal).test == "paired_t"
    skewed = np.array([0.0, 0.01, 0.0, 0.02, 0.01, 0.0, 0.5, 0.01, 0.0, 0.9, 0.02, 0.01])
    chosen = choose_test("seeds", 12, skewed)
    assert chosen.test == "wilcoxon" and "Shapiro-Wilk" in chosen.reason and not chosen.overridden


def test_choose_test_override():
    chosen = choose_test("seeds", 10, np.array([0.1] * 5 + [0.2] * 5), override="permutation")
    assert chosen.test == "permutation" and chosen.overridden and "design alone would use" in chosen.reason
    with pytest.raises(ConfigError, match="unknown test 'ttest'"):
        choose_test("seeds", 10, override="ttest")
    with pytest.raises(ConfigError, match="needs per-sample correctness"):
        choose_test("seeds", 10, override="mcnemar_exact")
    with pytest.raises(ConfigError, match="needs test_train_ratio"):
        run_test("nadeau_bengio", [1, 2], [0, 1])


def test_tost_is_statsmodels_and_agrees_with_the_ci_rule():
    rng = np.random.default_rng(3)
    for _ in range(50):
        base = rng.normal(0.9, 0.01, 8)
        var = base + rng.normal(rng.uniform(-0.01, 0.01), 0.005, 8)
        res = tost_paired(var, base, margin=0.01)
        assert res["p_value"] == pytest.approx(ttost_paired(var, base, -0.01, 0.01)[0])
        # TOST at alpha is the (1 - 2 alpha) CI inside the margins (Schuirmann).
        ci90 = paired_t(var, base, alpha=0.10).ci
        assert (res["verdict"] == "equivalent") == (equivalence_from_ci(ci90, 0.01) == "equivalent")
