"""Which paired test fits the data: chosen from the design, recorded with the reason, overridable.

Lones 5.3: an unsuitable test gives invalid conclusions. The design decides:
- one run per model with per-sample correctness on one test set -> McNemar's exact test;
- k-fold or repeated train/test splits (overlapping training sets) -> the Nadeau-Bengio corrected t-test;
- independent seeds -> the paired t-test, or the Wilcoxon signed-rank test when there are enough seeds
  for it to reach significance and a Shapiro-Wilk test on the differences makes normality doubtful.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from slimlab.errors import ConfigError
from slimlab.stats import paired_tests as pt

Design = Literal["per_sample", "folds", "seeds"]
TEST_NAMES = ("mcnemar_exact", "wilcoxon", "paired_t", "nadeau_bengio", "permutation")
# Tests that work on per-seed or per-fold scores (McNemar needs per-sample correctness instead).
SCORE_TESTS = ("wilcoxon", "paired_t", "nadeau_bengio", "permutation")


@dataclass(frozen=True)
class ChosenTest:
    test: str
    reason: str
    overridden: bool = False


def min_pairs(test: str, alpha: float = 0.05) -> int:
    """The fewest pairs (seeds, folds; discordant samples for McNemar) with which `test` can reach
    p < alpha two-sided at all. Rank, sign-flip and binomial tests have a smallest attainable p-value of
    2 / 2^n, so with n = 5 seeds the Wilcoxon test can never reject at 0.05, whatever the data. The t tests
    need two pairs to estimate a variance."""
    if test in ("wilcoxon", "permutation", "mcnemar_exact"):
        return math.ceil(math.log2(2 / alpha)) if alpha < 1 else 1
    if test in ("paired_t", "nadeau_bengio"):
        return 2
    raise ConfigError(f"unknown test {test!r}; known: {', '.join(TEST_NAMES)}")


def choose_test(
    design: Design,
    n: int,
    differences: Sequence[float] | None = None,
    override: str | None = None,
    alpha: float = 0.05,
) -> ChosenTest:
    """The test for a comparison of `n` pairs of this design, and why. `differences` (variant - baseline
    per seed) lets the seeds design check normality. An `override` is used as given, provided the data
    can support it, and the reason says what the design would have chosen."""
    if design not in ("per_sample", "folds", "seeds"):
        raise ConfigError(f"design must be one of per_sample, folds, seeds; got {design!r}")
    auto = _auto(design, n, differences, alpha)
    if override is None or override == "auto":
        return auto
    if override not in TEST_NAMES:
        raise ConfigError(f"unknown test {override!r}; known: {', '.join(TEST_NAMES)}, auto")
    if override == "mcnemar_exact" and design != "per_sample":
        raise ConfigError("test 'mcnemar_exact' needs per-sample correctness (a `correct` column)")
    if override == auto.test:
        return ChosenTest(auto.test, f"chosen by the user, and the design agrees: {auto.reason}", True)
    reason = f"chosen by the user; the design alone would use {auto.test}: {auto.reason}"
    return ChosenTest(override, reason, True)


def _auto(design: Design, n: int, differences: Sequence[float] | None, alpha: float) -> ChosenTest:
    if design == "per_sample":
        return ChosenTest(
            "mcnemar_exact",
            "one run per model with per-sample correctness on the same test set: McNemar's exact test on "
            "the discordant samples (Dietterich 1998); it covers test-sample variation, not training runs",
        )
    if design == "folds":
        return ChosenTest(
            "nadeau_bengio",
            "scores from k folds or repeated splits share training data, so they are correlated and a plain "
            "paired t-test is too liberal; the Nadeau-Bengio correction inflates the variance by "
            "n_test/n_train",
        )
    need = min_pairs("wilcoxon", alpha)
    if n < need:
        return ChosenTest(
            "paired_t",
            f"{n} independent seeds: the Wilcoxon test cannot reach p < {alpha:g} with fewer than {need} "
            "pairs, so the paired t-test, which assumes roughly normal differences",
        )
    d = np.asarray(differences, dtype=float) if differences is not None else np.array([])
    if d.size >= 3 and np.ptp(d) > 0:
        shapiro_p = float(stats.shapiro(d).pvalue)
        if shapiro_p < 0.05:
            return ChosenTest(
                "wilcoxon",
                f"{n} independent seeds and normality of the differences is doubtful (Shapiro-Wilk "
                f"p = {shapiro_p:.3g}): the Wilcoxon signed-rank test",
            )
        return ChosenTest(
            "paired_t",
            f"{n} independent seeds and no evidence against normal differences (Shapiro-Wilk p = "
            f"{shapiro_p:.3g}; a weak check with few seeds): the paired t-test",
        )
    return ChosenTest("paired_t", f"{n} independent seeds: the paired t-test")


def run_test(
    test: str,
    variant: Sequence[float],
    baseline: Sequence[float],
    alpha: float = 0.05,
    test_train_ratio: float | None = None,
    seed: int = 0,
) -> pt.PairedTestResult:
    """Run a test by name. For mcnemar_exact, `variant` and `baseline` are per-sample correctness."""
    runners: dict[str, Callable[[], pt.PairedTestResult]] = {
        "paired_t": lambda: pt.paired_t(variant, baseline, alpha),
        "wilcoxon": lambda: pt.wilcoxon_signed_rank(variant, baseline, alpha),
        "permutation": lambda: pt.paired_permutation(variant, baseline, alpha, seed=seed),
        "mcnemar_exact": lambda: pt.mcnemar_exact(variant, baseline, alpha, seed=seed),
    }
    if test == "nadeau_bengio":
        if test_train_ratio is None:
            raise ConfigError(
                "the Nadeau-Bengio test needs test_train_ratio (n_test / n_train; 1/(k-1) for k-fold CV)"
            )
        return pt.nadeau_bengio(variant, baseline, test_train_ratio, alpha)
    if test not in runners:
        raise ConfigError(f"unknown test {test!r}; known: {', '.join(TEST_NAMES)}")
    return runners[test]()
