"""Disparities between groups, and the disparate impact of compression.

Disparities (per group attribute, per model): the worst group's accuracy, the largest accuracy gap, the
demographic-parity difference and ratio and the equalized-odds difference, as fairlearn defines them
(`disparities` calls fairlearn's `MetricFrame`, `demographic_parity_*` and `equalized_odds_difference`;
`fast_disparities` counts the same with numpy for the many calls of a report, and the tests check that
the two agree), computed over the groups large enough to rank (see evaluate.groups). Over seeds: the mean
and its interval over seeds on the logit scale (stats.bounded: every disparity lies in [0, 1]).

Disparate impact of compression: for each compressed variant and each group, the change in the group's
accuracy against the baseline, paired by seed (the same dense parent and test set), by slimlab's one
paired comparison (slimlab.stats.paired_comparison: its CI, its one-sided p-values at the margin and its
degenerate-data rule). Checking many groups finds a "harmed" group by chance, so the verdicts come from
the one verdict rule (slimlab.stats.verdict.holm_verdicts), Holm-corrected over the whole family of
groups × variants (every attribute and intersection, small groups excluded):

    superior      Holm-adjusted p(H0: delta <= 0)        < alpha / 2
    non-inferior  Holm-adjusted p(H0: delta <= -margin)  < alpha / 2
    inferior      Holm-adjusted p(H0: delta >= -margin)  < alpha / 2
    inconclusive  otherwise

It is the rule of the experiment's own comparisons; the one-sided level alpha / 2 matches the two-sided
(1 - alpha) CI shown beside it. A group whose differences do not vary over seeds, or that has too few
seeds, is inconclusive with its reason; a group so small that one row moves its accuracy by more than
the margin is never non-inferior (`non_inferiority_unresolvable`). The per-group CI is over seeds on a
fixed test set: it says how reliably compression changes the model on these samples, not how the group's
population accuracy would change. That is why groups flagged small_n get no verdict at all.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from sklearn.metrics import accuracy_score

from slimlab.evaluate.groups import MAX_CI_WIDTH, MIN_N, group_metrics_over_seeds, is_small, ranked
from slimlab.stats.bounded import bounded_mean_ci
from slimlab.stats.degenerate import resolution_reason
from slimlab.stats.intervals import wilson_ci
from slimlab.stats.paired import paired_comparison
from slimlab.stats.verdict import FAMILIES, holm_verdicts

DISPARITIES = (
    "worst_group_accuracy",
    "accuracy_gap",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)


def disparities(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray, rankable: Sequence[str], binary: bool
) -> dict[str, float | str | None]:
    """The disparity metrics of one model over the groups in `rankable` (at least two; else all None)."""
    out: dict[str, float | str | None] = dict.fromkeys((*DISPARITIES, "worst_group"))
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, list(rankable))
    if len(rankable) < 2:
        return out
    y, p, s = np.asarray(y_true)[keep], np.asarray(y_pred)[keep], labels[keep]
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=s)
    out["worst_group"] = str(frame.by_group.idxmin())
    out["worst_group_accuracy"] = float(frame.group_min())
    out["accuracy_gap"] = float(frame.difference())
    if binary:
        out["demographic_parity_difference"] = float(
            demographic_parity_difference(y, p, sensitive_features=s)
        )
        with warnings.catch_warnings():
            # A ratio with a zero selection rate is 0/0 in some group; fairlearn warns and returns nan.
            warnings.simplefilter("ignore", RuntimeWarning)
            out["demographic_parity_ratio"] = _finite(demographic_parity_ratio(y, p, sensitive_features=s))
        # Equalized odds needs positives and negatives in every group; otherwise a TPR or FPR is undefined.
        if all(len(np.unique(y[s == g])) == 2 for g in rankable):
            out["equalized_odds_difference"] = float(equalized_odds_difference(y, p, sensitive_features=s))
    return out


def fast_disparities(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray, rankable: Sequence[str], binary: bool
) -> dict[str, float | str | None]:
    """The same numbers as `disparities`, by counting with numpy: fairlearn builds a DataFrame per metric
    and takes about 0.3 s per call on Adult's 16k test rows, which over variants × seeds × attributes is
    minutes on two cores. Definitions as fairlearn's: DP difference = max - min selection rate, DP ratio
    = min / max, equalized-odds difference = max(TPR range, FPR range). tests/test_fair_metrics.py checks
    that both agree."""
    out: dict[str, float | str | None] = dict.fromkeys((*DISPARITIES, "worst_group"))
    if len(rankable) < 2:
        return out
    labels = np.asarray(labels).astype(str)
    y, p = np.asarray(y_true), np.asarray(y_pred)
    acc, sel, tpr, fpr = {}, {}, {}, {}
    for g in sorted(rankable):
        m = labels == g
        acc[g] = float((y[m] == p[m]).mean())
        if binary:
            pos, neg = m & (y == 1), m & (y != 1)
            sel[g] = float((p[m] == 1).mean())
            tpr[g] = float((p[pos] == 1).mean()) if pos.any() else None
            fpr[g] = float((p[neg] == 1).mean()) if neg.any() else None
    worst = min(acc, key=acc.get)
    out["worst_group"], out["worst_group_accuracy"] = worst, acc[worst]
    out["accuracy_gap"] = max(acc.values()) - acc[worst]
    if binary:
        out["demographic_parity_difference"] = max(sel.values()) - min(sel.values())
        out["demographic_parity_ratio"] = min(sel.values()) / max(sel.values()) if max(sel.values()) else None
        if all(v is not None for v in (*tpr.values(), *fpr.values())):
            out["equalized_odds_difference"] = max(
                max(tpr.values()) - min(tpr.values()), max(fpr.values()) - min(fpr.values())
            )
    return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def disparities_over_seeds(
    y_true: np.ndarray,
    predictions: Sequence[np.ndarray],
    labels: np.ndarray,
    rankable: Sequence[str],
    binary: bool,
    confidence: float = 0.95,
) -> dict[str, dict]:
    """{metric: {mean, ci, per_seed}} over seeds; the worst group per seed is listed as well."""
    per_seed = [fast_disparities(y_true, p, labels, rankable, binary) for p in predictions]
    out: dict[str, dict] = {}
    for metric in DISPARITIES:
        values = [s[metric] for s in per_seed]
        if any(v is None for v in values) or not values:
            out[metric] = {"mean": None, "ci": [None, None], "per_seed": values}
            continue
        # Every disparity lies in [0, 1] (a difference of rates, taken as max - min, or a ratio of rates):
        # a t interval over a few seeds would reach below 0; the logit-t interval cannot.
        mean, (lo, hi), _ = bounded_mean_ci(values, confidence, 0.0, 1.0)
        out[metric] = {"mean": mean, "ci": [_nan_none(lo), _nan_none(hi)], "per_seed": values}
    out["worst_group"] = {"per_seed": [s["worst_group"] for s in per_seed]}
    return out


def _nan_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def predictions_by_variant(
    trials: Sequence[Mapping], dataset: str | None = None, key: str = "predictions"
) -> dict[str, dict[int, np.ndarray]]:
    """{variant: {seed: trial[key]}} of the finished trials (of one dataset, when given). `key` is
    "predictions" (labels) or "probabilities" (class probabilities, when the runner stores them)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for t in trials:
        if t.get("status") != "ok" or t.get(key) is None:
            continue
        if dataset is not None and t.get("dataset") != dataset:
            continue
        dtype = np.int64 if key == "predictions" else float
        out.setdefault(t["variant"], {})[int(t["seed"])] = np.asarray(t[key], dtype=dtype)
    return out


def audit_variant(
    y_true: np.ndarray,
    predictions: Mapping[int, np.ndarray],
    groups: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    min_n: int = MIN_N,
    max_ci_width: float | None = MAX_CI_WIDTH,
    confidence: float = 0.95,
    probabilities: Mapping[int, np.ndarray] | None = None,
) -> dict[str, dict]:
    """{attribute: {groups: per-group metrics over seeds, ranked: worst first, small: [...],
    disparities: ...}} for one variant. With `probabilities` for every seed, also the ECE per group."""
    preds = [predictions[s] for s in sorted(predictions)]
    probs = None
    if probabilities and set(probabilities) >= set(predictions):
        probs = [probabilities[s] for s in sorted(predictions)]
    out = {}
    for attribute, labels in groups.items():
        per_group = group_metrics_over_seeds(
            y_true,
            preds,
            labels,
            num_classes=num_classes,
            min_n=min_n,
            max_ci_width=max_ci_width,
            confidence=confidence,
            probabilities=probs,
        )
        order = ranked(per_group)
        out[attribute] = {
            "groups": per_group,
            "ranked": order,
            "small_n": sorted(g for g, m in per_group.items() if m["small_n"]),
            "worst_group": order[0] if order else None,
            "disparities": disparities_over_seeds(y_true, preds, labels, order, num_classes == 2, confidence),
        }
    return out


def _group_accuracy(y_true: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    return float((pred[mask] == y_true[mask]).mean())


def compression_impact(
    trials: Sequence[Mapping],
    y_true: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    baseline: str,
    margin: float,
    alpha: float = 0.05,
    dataset: str | None = None,
    min_n: int = MIN_N,
    max_ci_width: float | None = MAX_CI_WIDTH,
) -> dict:
    """Per (variant, attribute, group): the accuracy change against `baseline` paired by seed, its CI,
    raw and Holm-adjusted one-sided p-values and the verdict (see the module docstring)."""
    y_true = np.asarray(y_true)
    preds = predictions_by_variant(trials, dataset)
    for variant, by_seed in preds.items():
        for seed, p in by_seed.items():
            if len(p) != len(y_true):
                raise ValueError(
                    f"{variant} seed {seed} has predictions for {len(p)} samples but {len(y_true)} test "
                    "labels: the trials and the labels come from different test sets"
                )
    base = preds.get(baseline, {})
    rows: list[dict] = []
    for variant in sorted(v for v in preds if v != baseline):
        seeds = sorted(set(base) & set(preds[variant]))
        for attribute, labels in groups.items():
            labels = np.asarray(labels).astype(str)
            for group in sorted(set(labels.tolist())):
                mask = labels == group
                a = np.array([_group_accuracy(y_true, preds[variant][s], mask) for s in seeds])
                b = np.array([_group_accuracy(y_true, base[s], mask) for s in seeds])
                n = int(mask.sum())
                row = {
                    "variant": variant,
                    "baseline": baseline,
                    "attribute": attribute,
                    "group": group,
                    "n": n,
                    "seeds": seeds,
                    "baseline_accuracy": float(b.mean()) if seeds else None,
                    "variant_accuracy": float(a.mean()) if seeds else None,
                }
                # The same rule as the per-group table: n, or the width of the baseline's accuracy interval.
                ci = wilson_ci(b.mean() * n, n)[1] if seeds else (None, None)
                row["small_n"] = is_small(n, ci, min_n, max_ci_width)
                if seeds:
                    # The one paired comparison (stats.paired), with the one degenerate-data rule:
                    # differences that do not vary over seeds, or too few seeds, are inconclusive with the
                    # reason; a group so small that one row moves its accuracy by more than the margin can
                    # be shown worse (or better), but never "no worse than the margin".
                    c = paired_comparison(a, b, margin, alpha, n_samples=n)
                    row.update(
                        delta=c.delta,
                        ci=[_nan_none(c.ci[0]), _nan_none(c.ci[1])],
                        p_value=_nan_none(c.p_value),
                        **c.pvalues(),
                        verdict_unadjusted=c.verdict,
                        inconclusive_reason=c.reason,
                        non_inferiority_unresolvable=c.non_inferiority_unresolvable,
                    )
                else:
                    row.update(
                        delta=None,
                        ci=[None, None],
                        p_value=None,
                        **dict.fromkeys(FAMILIES),
                        verdict_unadjusted="inconclusive",
                        inconclusive_reason="no paired seeds",
                        non_inferiority_unresolvable=resolution_reason(n, margin),
                    )
                rows.append(row)
    _holm_verdicts(rows, alpha)
    hurt = sorted((r for r in rows if not r["small_n"] and r["delta"] is not None), key=lambda r: r["delta"])
    return {
        "baseline": baseline,
        "margin": margin,
        "alpha": alpha,
        "correction": "Holm over all groups × variants that are not small_n",
        "family_size": sum(1 for r in rows if not r["small_n"]),
        "rows": rows,
        "most_hurt": [
            {k: r[k] for k in ("variant", "attribute", "group", "n", "delta", "ci", "verdict")}
            for r in hurt[:10]
        ],
    }


def _holm_verdicts(rows: list[dict], alpha: float) -> None:
    """The one verdict rule (stats.verdict.holm_verdicts) over the family of rows that are not small_n;
    a small_n row gets the verdict "small_n" and no adjusted p-values."""
    holm_verdicts([r for r in rows if not r["small_n"]], alpha)
    for r in rows:
        if r["small_n"]:
            r.update({f"{key}_holm": None for key in FAMILIES})
            r.update(verdict="small_n", decided_by=None, p_decision=None)


def inferior_groups(impact: Mapping, variant: str) -> list[dict]:
    """The groups that `variant` makes inferior (Holm-corrected), from a `compression_impact` result: the
    constraint an accuracy-aware search can impose ("no group is inferior") is `not inferior_groups(...)`."""
    return [
        {k: r[k] for k in ("attribute", "group", "n", "delta", "ci", "p_inferiority_holm")}
        for r in impact["rows"]
        if r["variant"] == variant and r["verdict"] == "inferior"
    ]
