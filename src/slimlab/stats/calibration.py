"""Calibration of the tests by simulation: the rejection rate under H0 (it should be close to alpha) and
the power against a known effect.

A test whose false-positive rate is not alpha gives wrong p-values, however carefully it is coded. Each
scenario below draws data of the design the test is meant for, with a known true difference, runs slimlab's
own function on it (not scipy's directly, so that our plumbing is what is checked), and counts rejections.
The tests in tests/test_stats_calibration.py and benchmarks/stats_calibration.py both use it.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slimlab.stats import paired_tests as pt
from slimlab.stats.choose import choose_test, run_test
from slimlab.stats.ranking import average_ranks, friedman, nemenyi, wilcoxon_holm


@dataclass(frozen=True)
class Scenario:
    name: str  # the test as reported
    design: str  # the data it is run on, in words
    effect: str  # the unit of the effect, in words
    run: Callable[[np.random.Generator, float], bool]  # one simulated comparison: rejected at alpha?


ALPHA = 0.05
N_SEEDS = 10
SD = 0.01  # sd of the per-seed differences, in accuracy
N_FOLDS = 10
N_TEST = 1000
P_DISCORDANT = 0.1
K_METHODS, N_DATASETS = 4, 12


def _seeds(rng: np.random.Generator, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and variant scores over independent seeds; the differences are N(effect * SD, SD)."""
    base = rng.normal(0.9, 0.02, N_SEEDS)
    return base + rng.normal(effect * SD, SD, N_SEEDS), base


def _folds(rng: np.random.Generator, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold differences of k-fold CV, equicorrelated with rho = n_test / (n_test + n_train) = 1 / k:
    the model under which the Nadeau-Bengio statistic is exactly t with k - 1 df."""
    rho = 1 / N_FOLDS
    shared = rng.normal(0, math.sqrt(rho) * SD)
    d = effect * SD + shared + rng.normal(0, math.sqrt(1 - rho) * SD, N_FOLDS)
    base = rng.normal(0.9, 0.02, N_FOLDS)
    return base + d, base


def _correctness(rng: np.random.Generator, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample correctness of two models on one test set; a fraction P_DISCORDANT of samples is
    classified differently, and the variant wins a share (1 + effect) / 2 of them."""
    base = rng.random(N_TEST) < 0.85
    flip = rng.random(N_TEST) < P_DISCORDANT
    win = rng.random(N_TEST) < (1 + effect) / 2
    # On a discordant sample exactly one model is right: the variant when it wins.
    variant = np.where(flip, win, base)
    baseline = np.where(flip, ~win, base)
    return variant, baseline


def _rank_table(rng: np.random.Generator, effect: float) -> np.ndarray:
    """Scores of K_METHODS methods on N_DATASETS datasets; the first method is better by `effect` sd."""
    scores = rng.normal(0.8, 0.05, (N_DATASETS, 1)) + rng.normal(0, 0.01, (N_DATASETS, K_METHODS))
    scores[:, 0] += effect * 0.01
    return scores


def _nemenyi_any(scores: np.ndarray) -> bool:
    p = nemenyi(average_ranks(scores), len(scores), ALPHA)["p_values"]
    return bool((p < ALPHA).any())


SCENARIOS = [
    Scenario(
        "paired_t",
        f"{N_SEEDS} seeds",
        "d_z",
        lambda rng, e: pt.paired_t(*_seeds(rng, e)).p_value < ALPHA,
    ),
    Scenario(
        "wilcoxon",
        f"{N_SEEDS} seeds",
        "d_z",
        lambda rng, e: pt.wilcoxon_signed_rank(*_seeds(rng, e)).p_value < ALPHA,
    ),
    Scenario(
        "permutation",
        f"{N_SEEDS} seeds (exact, 2^{N_SEEDS} sign flips)",
        "d_z",
        lambda rng, e: pt.paired_permutation(*_seeds(rng, e), n_resamples=2**N_SEEDS).p_value < ALPHA,
    ),
    Scenario(
        "auto (choose_test)",
        f"{N_SEEDS} seeds, Shapiro-Wilk pre-test",
        "d_z",
        lambda rng, e: _auto(*_seeds(rng, e)),
    ),
    Scenario(
        "nadeau_bengio",
        f"{N_FOLDS}-fold CV, correlated folds",
        "d_z",
        lambda rng, e: pt.nadeau_bengio(*_folds(rng, e), 1 / (N_FOLDS - 1)).p_value < ALPHA,
    ),
    Scenario(
        "paired_t on folds (wrong test)",
        f"{N_FOLDS}-fold CV, correlated folds",
        "d_z",
        lambda rng, e: pt.paired_t(*_folds(rng, e)).p_value < ALPHA,
    ),
    Scenario(
        "mcnemar_exact",
        f"{N_TEST} test samples, {P_DISCORDANT:.0%} discordant",
        "share of discordant won, 2w - 1",
        lambda rng, e: pt.mcnemar_exact(*_correctness(rng, e), with_ci=False).p_value < ALPHA,
    ),
    Scenario(
        "friedman",
        f"{K_METHODS} methods x {N_DATASETS} datasets",
        "first method + e sd",
        lambda rng, e: friedman(_rank_table(rng, e))["p_value"] < ALPHA,
    ),
    Scenario(
        "iman_davenport",
        f"{K_METHODS} methods x {N_DATASETS} datasets",
        "first method + e sd",
        lambda rng, e: friedman(_rank_table(rng, e))["iman_davenport_p"] < ALPHA,
    ),
    Scenario(
        "nemenyi (any pair, FWER)",
        f"{K_METHODS} methods x {N_DATASETS} datasets",
        "first method + e sd",
        lambda rng, e: _nemenyi_any(_rank_table(rng, e)),
    ),
    Scenario(
        "wilcoxon_holm (any pair, FWER)",
        f"{K_METHODS} methods x {N_DATASETS} datasets",
        "first method + e sd",
        lambda rng, e: bool((wilcoxon_holm(_rank_table(rng, e)) < ALPHA).any()),
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def _auto(variant: np.ndarray, baseline: np.ndarray) -> bool:
    choice = choose_test("seeds", len(variant), variant - baseline)
    return run_test(choice.test, variant, baseline).p_value < ALPHA


def rejection_rate(name: str, n_sims: int, effect: float = 0.0, seed: int = 0) -> float:
    """Fraction of `n_sims` simulated comparisons of scenario `name` that reject at ALPHA."""
    scenario = BY_NAME[name]
    rng = np.random.default_rng(seed)
    # statsmodels' multipletests (Holm) calls gc.collect() on every call, which costs ~0.1 s with scipy
    # loaded. Freezing the objects alive now keeps those collections to the few new ones.
    gc.freeze()
    try:
        return float(np.mean([scenario.run(rng, effect) for _ in range(n_sims)]))
    finally:
        gc.unfreeze()
