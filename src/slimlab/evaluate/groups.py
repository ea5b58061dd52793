"""Per-group metrics, each with an interval, and a flag on groups too small to say much.

For one model's predictions on the test split and one group attribute (e.g. "race"), each group gets: n,
its share of the test set, accuracy, error rate and, for binary tasks, the true-positive rate, the
false-positive rate and the selection rate (the share predicted positive), each with a Wilson score
interval (slimlab.stats.wilson_ci, statsmodels' `proportion_confint(method="wilson")`), and the expected
calibration error when class probabilities are given.

Multiclass tasks: TPR, FPR and the selection rate are defined for one positive class, so they are
reported for binary tasks only. The per-class accuracy of a multiclass task is what the class-as-group
attribute gives (the one-vs-rest TPR of that class).

Small groups: a group with n < `min_n`, or whose accuracy interval is wider than `max_ci_width`, is
flagged `small_n`. Its numbers are shown but it is never ranked (no worst group, no largest gap, no
verdict) because its interval is too wide for a ranking to mean anything.

Several seeds: the point is the mean over seeds; the interval is the Wilson interval at that mean rate
with the group's n, i.e. the uncertainty from the finite test set, which every seed shares; the spread
from training (seeds) is given separately as `seed_sd`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from slimlab.stats.intervals import wilson_ci

MIN_N = 30
MAX_CI_WIDTH = 0.3  # a 95% accuracy interval wider than 30 points ranks nothing (n=30 at 50% gives 0.34)
ECE_BINS = 15
RATES = ("accuracy", "error_rate", "tpr", "fpr", "selection_rate")


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: sum over equal-width confidence bins of (bin share) * |accuracy - mean confidence|."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _counts(
    y_true: np.ndarray, y_pred: np.ndarray, binary: bool, positive: int
) -> dict[str, tuple[int, int]]:
    """(successes, trials) behind each rate."""
    n = len(y_true)
    correct = int((y_true == y_pred).sum())
    out = {"accuracy": (correct, n), "error_rate": (n - correct, n)}
    if binary:
        pos, pred_pos = y_true == positive, y_pred == positive
        out["tpr"] = (int((pred_pos & pos).sum()), int(pos.sum()))
        out["fpr"] = (int((pred_pos & ~pos).sum()), int((~pos).sum()))
        out["selection_rate"] = (int(pred_pos.sum()), n)
    return out


def _rate(successes: float, trials: float, confidence: float) -> dict:
    if trials == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    _, (lo, hi) = wilson_ci(successes, trials, confidence)
    return {"value": successes / trials, "ci": [lo, hi], "n": int(trials)}


def is_small(n: int, accuracy_ci: Sequence[float | None], min_n: int, max_ci_width: float | None) -> bool:
    if n < min_n:
        return True
    lo, hi = accuracy_ci
    return max_ci_width is not None and lo is not None and hi is not None and hi - lo > max_ci_width


def group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    num_classes: int | None = None,
    positive: int = 1,
    min_n: int = MIN_N,
    max_ci_width: float | None = MAX_CI_WIDTH,
    confidence: float = 0.95,
) -> dict[str, dict]:
    """{group: {n, share, small_n, accuracy: {value, ci, n}, error_rate, [tpr, fpr, selection_rate],
    [ece]}} for one model's predictions and one group attribute. Binary when `num_classes` is 2 (default:
    when y_true and y_pred hold at most two labels)."""
    y_true, y_pred, labels = np.asarray(y_true), np.asarray(y_pred), np.asarray(labels).astype(str)
    binary = (num_classes == 2) if num_classes else len(np.union1d(y_true, y_pred)) <= 2
    out = {}
    for group in sorted(set(labels.tolist())):
        mask = labels == group
        counts = _counts(y_true[mask], y_pred[mask], binary, positive)
        entry: dict = {"n": int(mask.sum()), "share": float(mask.mean())}
        entry.update({k: _rate(s, t, confidence) for k, (s, t) in counts.items()})
        if probs is not None:
            entry["ece"] = {
                "value": expected_calibration_error(y_true[mask], probs[mask]),
                "ci": [None, None],
            }
        entry["small_n"] = is_small(entry["n"], entry["accuracy"]["ci"], min_n, max_ci_width)
        out[group] = entry
    return out


def group_metrics_over_seeds(
    y_true: np.ndarray,
    predictions: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    num_classes: int | None = None,
    positive: int = 1,
    min_n: int = MIN_N,
    max_ci_width: float | None = MAX_CI_WIDTH,
    confidence: float = 0.95,
    probabilities: Sequence[np.ndarray] | None = None,
) -> dict[str, dict]:
    """Per-group metrics of one variant over its seeds (same test set): for each rate the mean over seeds,
    the Wilson interval at that mean with the group's n (test-set uncertainty), the seed sd (training
    spread), and the per-seed values. With `probabilities` (one (n, classes) array per seed, in the order
    of `predictions`), also the ECE: its mean and sd over seeds (no interval)."""
    preds = list(predictions.values()) if isinstance(predictions, Mapping) else list(predictions)
    if not preds:
        return {}
    probs = list(probabilities) if probabilities is not None else [None] * len(preds)
    if len(probs) != len(preds):
        raise ValueError(f"{len(probs)} probability arrays for {len(preds)} prediction vectors")
    per_seed = [
        group_metrics(
            y_true,
            p,
            labels,
            probs=None if q is None else np.asarray(q, dtype=float),
            num_classes=num_classes,
            positive=positive,
            min_n=min_n,
            max_ci_width=max_ci_width,
            confidence=confidence,
        )
        for p, q in zip(preds, probs, strict=True)
    ]
    out = {}
    for group, first in per_seed[0].items():
        entry: dict = {"n": first["n"], "share": first["share"], "seeds": len(preds)}
        for rate in RATES:
            if rate not in first:
                continue
            values = [s[group][rate]["value"] for s in per_seed]
            trials = first[rate]["n"]
            if trials == 0 or any(v is None for v in values):
                entry[rate] = {
                    "value": None,
                    "ci": [None, None],
                    "n": trials,
                    "seed_sd": None,
                    "per_seed": values,
                }
                continue
            mean = float(np.mean(values))
            _, (lo, hi) = wilson_ci(mean * trials, trials, confidence)
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
            entry[rate] = {"value": mean, "ci": [lo, hi], "n": trials, "seed_sd": sd, "per_seed": values}
        if "ece" in first:
            values = [s[group]["ece"]["value"] for s in per_seed]
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
            entry["ece"] = {
                "value": float(np.mean(values)),
                "ci": [None, None],
                "seed_sd": sd,
                "per_seed": values,
            }
        entry["small_n"] = is_small(entry["n"], entry["accuracy"]["ci"], min_n, max_ci_width)
        out[group] = entry
    return out


def ranked(groups: Mapping[str, dict]) -> list[str]:
    """The groups that may be ranked (not small_n), worst accuracy first."""
    ok = [g for g, m in groups.items() if not m["small_n"] and m["accuracy"]["value"] is not None]
    return sorted(ok, key=lambda g: groups[g]["accuracy"]["value"])


def trial_group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    probs: np.ndarray | None = None,
    min_n: int = MIN_N,
) -> dict[str, dict[str, dict]]:
    """{attribute: {group: metrics}} of one trial: what a trial record's `groups` field holds."""
    return {
        attribute: group_metrics(y_true, y_pred, labels, probs=probs, num_classes=num_classes, min_n=min_n)
        for attribute, labels in groups.items()
    }
