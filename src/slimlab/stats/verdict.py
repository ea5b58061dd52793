"""One rule decides a comparison's verdict: one-sided tests at the margin, Holm-adjusted over the family.

For each comparison three one-sided p-values come from the comparison's own test (paired t, Wilcoxon,
permutation, Nadeau-Bengio), the margin tests by shifting the variant's scores by the margin:
superiority (H1: Δ > 0), non-inferiority (H1: Δ > -margin) and inferiority (H1: Δ < -margin). These are
the only non-inferiority p-values slimlab computes (`margin_pvalues`). Each family is Holm-adjusted over
the comparisons of a table (`holm_verdicts`), and the verdict is the first of superior, non-inferior,
inferior whose adjusted p is below alpha / 2 (`decide`; one-sided at alpha / 2 matches the two-sided
1 - alpha interval shown beside it, so for a paired t-test in a family of one the verdict is the one the
CI gives, `verdict_from_ci`); else inconclusive. The verdict and the Holm correction can therefore never
disagree, and the table shows the adjusted p that decided (`p_decision`, `decided_by`).

A degenerate comparison (`slimlab.stats.degenerate`) is `inconclusive`, with its reason; it stays in the
families with p = 1, since it was tested. A comparison whose test set cannot resolve the margin
(`non_inferiority_unresolvable`) can be shown superior or inferior but never non-inferior. McNemar's
per-sample design keeps the verdict of its exact interval, Holm-adjusted by its two-sided p: a shifted
margin has no meaning for 0/1 correctness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

from slimlab.stats.choose import run_test

Verdict = Literal["superior", "non-inferior", "inconclusive", "inferior"]
FAMILIES = ("p_superiority", "p_noninferiority", "p_inferiority")
DECIDES: dict[str, Verdict] = {
    "p_superiority": "superior",
    "p_noninferiority": "non-inferior",
    "p_inferiority": "inferior",
}


def holm(p_values: Sequence[float | None]) -> list[float]:
    """Holm-adjusted p-values (statsmodels). NaNs (and None) stay NaN and are left out of the family."""
    p = np.array([math.nan if v is None else v for v in p_values], dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return [float(v) for v in out]


def holm_family(p_values: Sequence[float | None], degenerate: Sequence[bool]) -> list[float | None]:
    """Holm over one family under the rule above: a degenerate member counts with p = 1 (it was looked
    at, so it counts for the multiplicity, and it can pass no test); a member without a p (None or NaN) is
    left out. Returns the adjusted p-values, None where there is none."""
    values = [
        1.0 if bad else (math.nan if p is None else p) for p, bad in zip(p_values, degenerate, strict=True)
    ]
    return [None if math.isnan(p) else p for p in holm(values)]


def verdict_from_ci(ci: tuple[float, float], margin: float) -> Verdict:
    """The verdict a (1 - alpha) two-sided CI gives alone: what `decide` gives for a paired t-test in a
    family of one, and the verdict of McNemar's exact interval."""
    lo, hi = ci
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > 0:
        return "superior"
    if lo > -margin:
        return "non-inferior"
    if hi < -margin:
        return "inferior"
    return "inconclusive"


def decide(
    p_values: Mapping[str, float | None], alpha: float, non_inferiority_blocked: bool = False
) -> tuple[Verdict, str | None, float | None]:
    """(verdict, decided_by, p_decision): the first of superior, non-inferior, inferior whose p (adjusted
    or not: the caller says which by the keys it passes) is below alpha / 2; else inconclusive, with the
    closest call."""
    level = alpha / 2
    for key in FAMILIES:
        p = p_values.get(key)
        if key == "p_noninferiority" and non_inferiority_blocked:
            continue
        if p is not None and not math.isnan(p) and p < level:
            return DECIDES[key], key, p
    known = [(p, k) for k in FAMILIES if (p := p_values.get(k)) is not None and not math.isnan(p)]
    if known:
        p, key = min(known)
        return "inconclusive", f"none below alpha/2; closest: {key}", p
    return "inconclusive", None, None


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
    """Set each comparison's `verdict`, `p_<family>_holm`, `p_decision` and `decided_by` in place. The
    comparisons passed are the family: a caller leaves out what it does not test (fairness: small groups).
    Each dict holds `p_superiority`, `p_noninferiority`, `p_inferiority` (None when there is none),
    `inconclusive_reason` (the degenerate rule), optionally `non_inferiority_unresolvable`, and `design`
    ("per_sample" for McNemar, with its CI `verdict` and Holm-adjusted two-sided `p_adjusted`)."""
    testable = [c for c in comparisons if c.get("design") != "per_sample"]
    degenerate = [bool(c.get("inconclusive_reason")) for c in testable]
    for key in FAMILIES:
        adjusted = holm_family([c.get(key) for c in testable], degenerate) if testable else []
        for c, p in zip(testable, adjusted, strict=True):
            c[f"{key}_holm"] = p
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
        verdict, key, p = decide(
            {k: c[f"{k}_holm"] for k in FAMILIES}, alpha, bool(c.get("non_inferiority_unresolvable"))
        )
        c["verdict"], c["decided_by"], c["p_decision"] = verdict, f"{key} (Holm)" if key else None, p
