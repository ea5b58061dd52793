"""Comparisons paired per test sample, for a pretrained model: when the dense model is not retrained per
seed, the seeds vary only what the treatment depends on (calibration sample, fine-tuning order), so the
variation over seeds understates what matters; the test samples are then the unit of replication too.

Per sample, the variant's and the baseline's scores are averaged over the paired seeds. For accuracy with
one seed, McNemar's exact test on per-sample correctness (statsmodels); otherwise a seeded BCa bootstrap
over test samples for the interval of the mean difference (scipy.stats.bootstrap, pairing kept) and a
paired sign-flip permutation test for the p-value (scipy.stats.permutation_test). The difference is
oriented so that positive is better (a lower MSE is a gain), and the margin is in the metric's units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slimlab.stats.intervals import bootstrap_ci
from slimlab.stats.paired import verdict_from_ci
from slimlab.stats.paired_tests import mcnemar_exact, paired_permutation
from slimlab.stats.verdict import FAMILIES, margin_pvalues


def per_sample_comparison(
    variant: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    *,
    margin: float,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    binary: bool = False,
    seed: int = 0,
) -> dict:
    """`variant[i]` and `baseline[i]`: per-sample scores of seed i (same test samples, same order)."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"per-sample scores differ in shape: {a.shape} vs {b.shape}")
    sign = 1.0 if higher_is_better else -1.0
    va, vb = a.mean(0), b.mean(0)
    mcnemar = binary and a.shape[0] == 1
    if mcnemar:
        result = mcnemar_exact(va, vb, alpha=alpha, seed=seed)
        delta, ci, p, test = result.delta, result.ci, result.p_value, "McNemar exact over test samples"
        one_sided = dict.fromkeys(FAMILIES)  # its verdict is the exact interval's (stats.verdict)
    else:
        delta, ci = bootstrap_ci(va, vb, confidence=1 - alpha, seed=seed)
        p = paired_permutation(va, vb, alpha=alpha, seed=seed).p_value
        test = "paired bootstrap (BCa) + sign-flip permutation over test samples"
        # The three one-sided p-values at the margin, by the same sign-flip permutation test, for the one
        # Holm verdict rule (stats.verdict.holm_verdicts).
        one_sided = margin_pvalues("permutation", sign * va, sign * vb, margin, alpha, seed=seed)
    lo, hi = ci
    oriented = (sign * lo, sign * hi) if sign > 0 else (sign * hi, sign * lo)
    return {
        "unit": "test samples",
        "n_samples": int(a.shape[1]),
        "n_seeds": int(a.shape[0]),
        "delta": sign * delta,
        "ci": list(oriented),
        "test": test,
        "p_value": p,
        "margin": margin,
        "verdict": verdict_from_ci(oriented, margin) if not math.isnan(oriented[0]) else "inconclusive",
        "design": "per_sample" if mcnemar else "per_sample_scores",
        **one_sided,
        "oriented": "positive is better" + ("" if higher_is_better else " (lower metric values are better)"),
    }
