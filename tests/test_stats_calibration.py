"""Calibration: each test's false-positive rate under H0 is alpha, and its power matches theory.

2,000 simulated comparisons put the standard error of a rate near 0.05 at 0.005, so [0.035, 0.065] is
three standard errors wide: a calibrated test passes, and one that is off by half of alpha fails."""

import math

import pytest

from slimlab.stats.calibration import N_FOLDS, N_SEEDS, N_TEST, P_DISCORDANT, SD, rejection_rate
from slimlab.stats.power import mcnemar_power, nadeau_bengio_power, paired_t_power

N_SIMS = 2000
N_POWER = 1000  # power near 0.8 has a standard error of 0.013 at 1,000 simulations


@pytest.mark.parametrize(
    "name",
    [
        "paired_t",
        "wilcoxon",
        "auto (choose_test)",
        "nadeau_bengio",
        "mcnemar_exact",
        "friedman",
        "iman_davenport",
    ],
)
def test_rejection_rate_under_h0_is_alpha(name):
    assert 0.035 <= rejection_rate(name, N_SIMS, effect=0.0, seed=1) <= 0.065


@pytest.mark.slow
@pytest.mark.parametrize("name", ["permutation", "nemenyi (any pair, FWER)"])
def test_rejection_rate_under_h0_is_alpha_slow(name):
    assert 0.035 <= rejection_rate(name, N_SIMS, effect=0.0, seed=1) <= 0.065


@pytest.mark.slow
def test_wilcoxon_holm_controls_the_familywise_error():
    # Holm over six pairs is conservative by design: at most alpha, not alpha.
    assert rejection_rate("wilcoxon_holm (any pair, FWER)", N_SIMS, effect=0.0, seed=1) <= 0.065


def test_plain_paired_t_on_cv_folds_is_too_liberal():
    # The reason for Nadeau-Bengio: correlated folds make the naive test reject about three times too often.
    assert rejection_rate("paired_t on folds (wrong test)", N_SIMS, effect=0.0, seed=1) > 0.10


def test_power_of_the_paired_t_matches_statsmodels():
    expected = paired_t_power(N_SEEDS, 1.0)  # 0.80
    assert rejection_rate("paired_t", N_POWER, effect=1.0, seed=2) == pytest.approx(expected, abs=0.04)


@pytest.mark.slow
def test_power_of_the_wilcoxon_test_is_near_its_efficiency_approximation():
    expected = paired_t_power(N_SEEDS * 3 / math.pi, 1.0)
    assert rejection_rate("wilcoxon", N_POWER, effect=1.0, seed=2) == pytest.approx(expected, abs=0.05)


def test_power_of_nadeau_bengio_matches_the_noncentral_t():
    # The sample sd of correlated folds estimates sqrt(1 - rho) times the marginal sd (rho = 1/k).
    expected = nadeau_bengio_power(N_FOLDS, 1.5 * SD, math.sqrt(1 - 1 / N_FOLDS) * SD, 1 / (N_FOLDS - 1))
    assert rejection_rate("nadeau_bengio", N_POWER, effect=1.5, seed=2) == pytest.approx(expected, abs=0.04)


def test_power_of_mcnemar_matches_connor():
    expected = mcnemar_power(N_TEST, 0.3 * P_DISCORDANT, P_DISCORDANT)  # 0.85
    assert rejection_rate("mcnemar_exact", N_POWER, effect=0.3, seed=2) == pytest.approx(expected, abs=0.04)


def test_friedman_detects_a_better_method():
    assert rejection_rate("friedman", 500, effect=1.5, seed=2) > 0.75
