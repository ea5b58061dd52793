"""Intervals that respect the range of their metric (issue 11), with their coverage checked by simulation,
and the reasons a comparison is degenerate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slimlab.evaluate.fairness import disparities_over_seeds
from slimlab.stats import mean_ci
from slimlab.stats.bounded import bounded_mean_ci
from slimlab.stats.degenerate import degenerate_reason


def test_two_seeds_far_apart_stay_inside_0_1():
    # The example: a t interval of [-8.5, 118.5] points for an accuracy.
    _, (lo, hi) = mean_ci([0.12, 0.97])
    assert lo < 0 and hi > 1  # what the plain t interval did
    mean, (lo, hi), method = bounded_mean_ci([0.12, 0.97], n_samples=1000)
    assert 0 <= lo <= mean <= hi <= 1 and "logit" in method


def test_near_the_top_the_interval_stays_below_1():
    mean, (lo, hi), _ = bounded_mean_ci([0.99, 1.0, 1.0, 0.98, 1.0], n_samples=200)
    assert hi <= 1 and lo < mean


def test_no_spread_over_seeds_uses_the_test_set_size():
    _, (lo, hi), method = bounded_mean_ci([0.9, 0.9, 0.9], n_samples=100)
    assert lo < 0.9 < hi and "Wilson" in method
    lo, hi = bounded_mean_ci([0.9, 0.9], n_samples=None)[1]
    assert math.isnan(lo) and math.isnan(hi)  # no spread and no sample count: no interval, not [0.9, 0.9]


@pytest.mark.parametrize(("p", "seeds"), [(0.6, 5), (0.95, 5), (0.99, 10)])
def test_coverage_of_the_logit_interval(p, seeds):
    # Per-seed accuracies: binomial test-set noise around a per-seed true accuracy that varies by seed.
    rng = np.random.default_rng(0)
    n, reps, covered, inside = 500, 1500, 0, True
    for _ in range(reps):
        true = np.clip(rng.normal(p, 0.01, seeds), 0, 1)
        acc = rng.binomial(n, true) / n
        _, (lo, hi), _ = bounded_mean_ci(acc, 0.95, n_samples=n)
        covered += lo <= true.mean() <= hi
        inside &= lo >= 0 and hi <= 1
    assert inside
    assert covered / reps >= 0.90, covered / reps


def test_demographic_parity_interval_never_goes_below_0():
    y = np.array([0, 1] * 50)
    labels = np.array(["a"] * 50 + ["b"] * 50)
    rng = np.random.default_rng(1)
    predictions = [np.where(rng.random(100) < 0.5, 1, 0) for _ in range(2)]
    out = disparities_over_seeds(y, predictions, labels, ["a", "b"], binary=True)
    lo, hi = out["demographic_parity_difference"]["ci"]
    assert lo is None or lo >= 0
    assert hi is None or hi <= 1


def test_degenerate_reasons():
    assert "do not vary" in degenerate_reason([-0.01] * 5, margin=0.01)
    assert "needs at least 3" in degenerate_reason([0.06, 0.06 + 1e-3], margin=0.01)
    assert "needs at least 6" in degenerate_reason([0.1, 0.2, 0.3], test="wilcoxon")
    assert "cannot be resolved" in degenerate_reason([0.0, 0.02, -0.02], margin=0.01, n_samples=46)
    assert degenerate_reason([0.001, -0.002, 0.003], margin=0.01, n_samples=1000) is None
