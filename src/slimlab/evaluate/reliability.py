"""How reliable the data is for each group: coverage, missing values, and an estimate of label noise, with
a warning when one group's data is much thinner, more often missing or noisier than the rest.

- Coverage: each group's count and share of the training and test rows.
- Missing values: the share of each group's rows with a missing raw field, measured by the loader before
  imputation (Dataset.meta["missing"]); datasets without raw missing values have none to report.
- Label noise: the share of each group's training labels that a cross-validated probe (by default a
  logistic regression), fitted without that row (sklearn `cross_val_predict`, out-of-fold, on the training
  split only), does not reproduce. This mixes label errors with samples that are hard for the probe, so it
  is an upper bound on noise and a prompt to inspect a group's labels, not a measurement of their error.
  Two corrections keep the warning honest: a group whose classes are more balanced is harder for any
  model (Adult: men's incomes are more often >50K than women's), so a group is warned about only when
  its rate is above both the rest's rate and the rest's rate scaled by the ratio of the two sides'
  majority-class errors; and when the probe itself is weak (its overall
  disagreement is more than 3/4 of the majority-class error, as a linear model on MNIST-1D) no noise
  warning is given at all, because the signal would be the probe's weakness, not the labels.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from slimlab.data.dataset import Dataset
from slimlab.stats.intervals import wilson_ci

THIN_SHARE = 0.2  # thin: a group with less than a fifth of an equal share (1 / number of groups)
NOISE_FACTOR = 1.5  # noisier: the group's interval lies above 1.5x what the rest's rate predicts for it
MISSING_FACTOR = 2.0  # more missing: at least twice the rest's rate...
MIN_MISSING = 0.05  # ...and at least 5% of the group's rows
WEAK_PROBE = 0.75  # probe disagreement / majority-class error above this: too weak to estimate noise
MAX_NOISE_ROWS = 10_000  # label noise on a random sample of at most this many rows (2 shared CPU cores)


def out_of_fold_disagreement(
    x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, estimator: BaseEstimator | None = None
) -> tuple[np.ndarray, bool]:
    """(per-row disagreement of out-of-fold predictions with the labels, converged)."""
    model = estimator if estimator is not None else LogisticRegression(max_iter=300)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        predicted = cross_val_predict(model, x.reshape(len(x), -1), y, cv=cv)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return predicted != y, converged


def majority_error(y: np.ndarray) -> float:
    """The error of always predicting the most common class: how hard the labels are to guess blind."""
    if y.size == 0:
        return 0.0
    return float(1 - np.bincount(y).max() / y.size)


def data_reliability(
    data: Dataset,
    *,
    folds: int = 5,
    seed: int = 0,
    label_noise: bool = True,
    estimator: BaseEstimator | None = None,
) -> dict:
    """{"groups": {attribute: {group: {n_train, share_train, n_test, share_test, missing_rate,
    label_disagreement: {value, ci}}}}, "warnings": [...], "method": {...}}."""
    train, test = data.train, data.test
    disagreement, converged, sample = None, None, np.arange(len(train))
    if label_noise and len(np.unique(train.y)) > 1:
        if len(train) > MAX_NOISE_ROWS:
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(len(train), MAX_NOISE_ROWS, replace=False))
        disagreement, converged = out_of_fold_disagreement(
            train.x[sample], train.y[sample], folds, seed, estimator
        )
    y_sample = train.y[sample]
    probe_strength = None
    if disagreement is not None:
        probe_strength = float(disagreement.mean() / max(majority_error(y_sample), 1e-12))
    missing = data.meta.get("missing", {}).get("train", {})
    out: dict = {"groups": {}, "warnings": []}
    for attribute, labels in train.groups.items():
        labels = np.asarray(labels).astype(str)
        test_labels = np.asarray(test.groups.get(attribute, np.array([], dtype=str))).astype(str)
        val_labels = np.asarray(data.val.groups.get(attribute, np.array([], dtype=str))).astype(str)
        # Every group the data holds, wherever its rows fell: a group whose only row landed in validation
        # must be reported, not vanish.
        names = sorted(set(labels.tolist()) | set(test_labels.tolist()) | set(val_labels.tolist()))
        rows = {}
        for group in names:
            mask = labels == group
            row: dict = {
                "n_train": int(mask.sum()),
                "share_train": float(mask.mean()) if len(mask) else 0.0,
                "n_val": int((val_labels == group).sum()),
                "n_test": int((test_labels == group).sum()),
                "share_test": float((test_labels == group).mean()) if len(test_labels) else 0.0,
                "missing_rate": missing.get(attribute, {}).get(group, {}).get("missing_rate"),
                "label_disagreement": None,
            }
            if disagreement is not None:
                in_sample = mask[sample]
                k, n = int(disagreement[in_sample].sum()), int(in_sample.sum())
                if n:
                    row["label_disagreement"] = {
                        "value": k / n,
                        "ci": list(wilson_ci(k, n)[1]),
                        "n": n,
                        "majority_error": majority_error(y_sample[in_sample]),
                    }
            rows[group] = row
        out["groups"][attribute] = rows
        if "×" not in attribute:  # intersections repeat what their parts say, more thinly
            weak = probe_strength is None or probe_strength > WEAK_PROBE
            noise = None if weak else disagreement
            out["warnings"] += _warnings(attribute, rows, labels, sample, y_sample, noise, missing)
    out["method"] = {
        "label_noise": f"out-of-fold {type(estimator or LogisticRegression()).__name__} (sklearn "
        "cross_val_predict) on the training split; disagreement with the label: an upper bound on noise",
        "probe_disagreement": float(disagreement.mean()) if disagreement is not None else None,
        "probe_relative_to_majority_error": probe_strength,
        "probe_too_weak": probe_strength is not None and probe_strength > WEAK_PROBE,
        "folds": folds,
        "rows_used": len(sample) if disagreement is not None else 0,
        "converged": converged,
        "thin": f"share of training rows < {THIN_SHARE} / number of groups",
        "noisier": f"lower Wilson bound > {NOISE_FACTOR}x max(rest's rate, "
        "rest's rate scaled by the majority-class errors)",
    }
    return out


def _warnings(
    attribute: str,
    rows: Mapping[str, dict],
    labels: np.ndarray,
    sample: np.ndarray,
    y_sample: np.ndarray,
    disagreement: np.ndarray | None,
    missing: Mapping,
) -> list[dict]:
    found = []
    k = max(len(rows), 1)
    for group, row in rows.items():
        where = {"attribute": attribute, "group": group}
        if row["n_test"] == 0:
            found.append(
                {
                    **where,
                    "kind": "not in the test split",
                    "detail": f"{row['n_train']} training and {row.get('n_val', 0)} validation rows, no test "
                    "rows: this group cannot be audited; collect more of its data or split by group",
                }
            )
            continue
        if row["n_train"] == 0:
            found.append({**where, "kind": "missing population", "detail": "no training rows; only in test"})
            continue
        if row["share_train"] < THIN_SHARE / k:
            found.append(
                {
                    **where,
                    "kind": "thin",
                    "detail": f"{row['n_train']} training rows ({row['share_train']:.1%}); an equal share "
                    f"would be {1 / k:.1%}",
                }
            )
        noise = row["label_disagreement"]
        if disagreement is not None and noise is not None:
            mask = labels[sample] == group
            rest = float(disagreement[~mask].mean()) if (~mask).any() else 0.0
            # What the rest's rate predicts for this group, given how balanced each side's classes are.
            scale = noise["majority_error"] / max(majority_error(y_sample[~mask]), 1e-12)
            expected = rest * scale
            # Both: above the rest's raw rate and above what the rest predicts for a group this balanced
            # (either alone mistakes a class-balance difference for noise, one way or the other).
            if noise["ci"][0] > NOISE_FACTOR * max(expected, rest):
                found.append(
                    {
                        **where,
                        "kind": "noisier labels",
                        "detail": f"out-of-fold disagreement {noise['value']:.1%} "
                        f"(95% CI {noise['ci'][0]:.1%}-{noise['ci'][1]:.1%}); the rest's rate predicts "
                        f"{expected:.1%} for this group",
                    }
                )
        rate = row["missing_rate"]
        table = missing.get(attribute, {})
        if rate is not None and rate >= MIN_MISSING and table:
            n_rest = sum(v["n"] for g, v in table.items() if g != group)
            rest = sum(v["n"] * v["missing_rate"] for g, v in table.items() if g != group) / max(n_rest, 1)
            if rate >= MISSING_FACTOR * rest:
                found.append(
                    {
                        **where,
                        "kind": "missing values",
                        "detail": f"{rate:.1%} of rows vs {rest:.1%} for the rest",
                    }
                )
    return found
