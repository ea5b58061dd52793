"""Bootstrap and Wilson intervals against scipy/statsmodels and exact coverage; power against statsmodels."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from slimlab.stats import bootstrap_ci, power_info, seeds_needed, wilson_ci
from slimlab.stats.power import mcnemar_power, nadeau_bengio_power, paired_t_power


def test_bootstrap_ci_is_scipy_bca_and_seeded():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 200)
    mean, (lo, hi) = bootstrap_ci(x, seed=4, n_resamples=2000)
    ref = stats.bootstrap((x,), np.mean, method="BCa", n_resamples=2000, rng=np.random.default_rng(4))
    assert mean == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert bootstrap_ci(x, seed=4, n_resamples=2000) == (mean, (lo, hi))


def test_bootstrap_ci_of_a_paired_difference():
    rng = np.random.default_rng(1)
    a = (rng.random(500) < 0.9).astype(float)
    b = np.where(rng.random(500) < 0.1, 1 - a, a)
    delta, (lo, hi) = bootstrap_ci(a, b, n_resamples=2000)
    assert delta == pytest.approx(a.mean() - b.mean())
    assert lo < delta < hi
    # Pairing matters: the interval is narrower than that of two independent samples of this size.
    independent = 1.96 * math.sqrt(a.var() / 500 + b.var() / 500)
    assert hi - lo < 2 * independent
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, (1.0, 1.0))


def test_wilson_is_statsmodels_and_keeps_its_coverage():
    assert wilson_ci(3, 10)[1] == pytest.approx(proportion_confint(3, 10, method="wilson"))
    # Exact coverage by enumerating every outcome of Binomial(n, p): Wilson stays near 95% in small groups.
    for n, p in [(20, 0.3), (15, 0.9), (40, 0.5)]:
        k = np.arange(n + 1)
        covered = [lo <= p <= hi for lo, hi in (wilson_ci(int(i), n)[1] for i in k)]
        coverage = float(np.sum(stats.binom.pmf(k, n, p) * covered))
        assert 0.92 <= coverage <= 0.99
    assert wilson_ci(0, 5)[1][0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(6, 5)


def test_paired_t_power_and_sample_size_match_statsmodels():
    assert paired_t_power(10, 0.7) == pytest.approx(TTestPower().power(0.7, 10, 0.05))
    solved = TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8)
    assert seeds_needed(0.005, 0.01) == math.ceil(solved)
    assert paired_t_power(10, 5.0) == pytest.approx(1.0)  # scipy's nct gives NaN here; we do not


def test_nadeau_bengio_power_reduces_to_the_t_power_without_correlation():
    assert nadeau_bengio_power(10, 0.005, 0.01, 1e-12) == pytest.approx(paired_t_power(10, 0.5), abs=1e-6)
    # More folds cannot beat the n_test/n_train term: power saturates below 1.
    capped = nadeau_bengio_power(5000, 0.002, 0.01, 0.25)
    assert capped < 0.5


def test_mcnemar_power_is_monotone_and_sensible():
    powers = [mcnemar_power(n, 0.02, 0.1) for n in (200, 1000, 5000)]
    assert powers == sorted(powers) and powers[-1] > 0.95


def test_power_info_flags_an_underpowered_design():
    weak = power_info("paired_t", n=3, margin=0.01, spread=0.02)
    assert weak["underpowered"] and weak["n_needed"] == seeds_needed(0.01, 0.02)
    assert paired_t_power(weak["n_needed"], 0.5) >= 0.8 > paired_t_power(weak["n_needed"] - 1, 0.5)
    strong = power_info("wilcoxon", n=30, margin=0.01, spread=0.01)
    assert not strong["underpowered"] and strong["unit"] == "seeds"
    hopeless = power_info("nadeau_bengio", n=10, margin=0.001, spread=0.02, test_train_ratio=0.25)
    assert hopeless["n_needed"] is None and "does not shrink" in hopeless["method"]
