"""One rule decides a comparison's verdict: Holm-adjusted one-sided tests at the margin.

For each comparison three one-sided p-values come from the comparison's own test (paired t, Wilcoxon,
permutation, Nadeau-Bengio), the margin tests by shifting the variant's scores by the margin:
superiority (H1: Δ > 0), non-inferiority (H1: Δ > -margin) and inferiority (H1: Δ < -margin). Each family
is Holm-adjusted over the comparisons of the table, and the verdict is the first of superior, non-inferior,
inferior whose adjusted p is below alpha / 2 (one-sided at alpha / 2 matches the two-sided 1 - alpha
interval shown beside it); else inconclusive. The verdict and the Holm correction can therefore never
disagree, and the table shows the adjusted p that decided (`p_decision`, `decided_by`).

A degenerate comparison (`slimlab.stats.degenerate`) is `inconclusive`, with its reason; it stays in the
families with p = 1, since it was tested. McNemar's per-sample design keeps the verdict of its exact
interval, Holm-adjusted by its two-sided p: a shifted margin has no meaning for 0/1 correctness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slimlab.stats.choose import run_test
from slimlab.stats.paired import holm

FAMILIES = ("p_superiority", "p_noninferiority", "p_inferiority")
DECIDES = {"p_superiority": "superior", "p_noninferiority": "non-inferior", "p_inferiority": "inferior"}


def _one_sided(p_two: float, estimate: float, greater: bool) -> float | None:
    if p_two is None or math.isnan(p_two):
        return None
    toward = estimate > 0 if greater else estimate < 0
    return p_two / 2 if toward else 1 - p_two / 2


def margin_pvalues(
    test: str,
    variant: Sequence[float],
    baseline: Sequence[float],
    margin: float,
    alpha: float,
    test_train_ratio: float | None = None,
    seed: int = 0,
) -> dict[str, float | None]:
    """The three one-sided p-values of the rule above (oriented: higher is better)."""
    if test == "mcnemar_exact":
        return dict.fromkeys(FAMILIES)
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    plain = run_test(test, a, b, alpha, test_train_ratio, seed)
    shifted = run_test(test, a + margin, b, alpha, test_train_ratio, seed)
    return {
        "p_superiority": _one_sided(plain.p_value, plain.delta, True),
        "p_noninferiority": _one_sided(shifted.p_value, shifted.delta, True),
        "p_inferiority": _one_sided(shifted.p_value, shifted.delta, False),
    }


def holm_verdicts(comparisons: list[dict], alpha: float) -> None:
    """Set each comparison's `verdict`, `p_<family>_holm`, `p_decision` and `decided_by` in place."""
    level = alpha / 2
    # Degenerate comparisons stay in the families with p = 1: they were looked at, so they count for the
    # multiplicity, and they can pass no test.
    testable = [c for c in comparisons if c.get("design") != "per_sample"]
    for key in FAMILIES:
        values = [
            1.0 if c.get("inconclusive_reason") else (c.get(key) if c.get(key) is not None else math.nan)
            for c in testable
        ]
        adjusted = holm(values) if values else []
        for c, p in zip(testable, adjusted, strict=True):
            c[f"{key}_holm"] = None if math.isnan(p) else p
    for c in comparisons:
        for key in FAMILIES:
            c.setdefault(key, None)
            c.setdefault(f"{key}_holm", None)
        if c.get("inconclusive_reason"):
            c["verdict"], c["decided_by"], c["p_decision"] = "inconclusive", "degenerate data", None
            continue
        if c.get("design") == "per_sample":
            # McNemar: the exact interval's verdict, kept only when the Holm-adjusted two-sided p agrees.
            p = c.get("p_adjusted")
            if c["verdict"] in ("superior", "inferior") and not (p is not None and p < alpha):
                c["verdict"] = "inconclusive"
            c["decided_by"], c["p_decision"] = "exact CI, two-sided p (Holm)", p
            continue
        c["verdict"], c["decided_by"], c["p_decision"] = "inconclusive", None, None
        for key in FAMILIES:
            p = c[f"{key}_holm"]
            if p is not None and p < level:
                c["verdict"], c["decided_by"], c["p_decision"] = DECIDES[key], f"{key} (Holm)", p
                break
        if c["decided_by"] is None:  # show the closest call: the smallest adjusted one-sided p
            known = [(c[f"{k}_holm"], k) for k in FAMILIES if c[f"{k}_holm"] is not None]
            if known:
                p, key = min(known)
                c["decided_by"], c["p_decision"] = f"none below alpha/2; closest: {key} (Holm)", p
