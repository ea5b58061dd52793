"""Compression Identified Exemplars (Hooker et al., "What do compressed deep neural networks forget?",
2019/2020): the test samples on which the modal prediction of a population of compressed models differs
from the modal prediction of the dense population. Overall accuracy can barely move while the compressed
models disagree with the dense ones on a small set of samples, and that set can fall on some groups far
more than on others.

Here a population is one variant's models over the experiment's seeds (Hooker et al. train 30 per
setting; with 5 seeds the modal label is coarser, so the CIE count is an estimate, and the report says
how many seeds it rests on). A tie between labels is broken towards the smaller label, deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from slimlab.evaluate.groups import MIN_N
from slimlab.stats.intervals import wilson_ci


def modal_predictions(predictions: Sequence[np.ndarray], num_classes: int | None = None) -> np.ndarray:
    """The most frequent label per sample across models (rows: models; ties -> the smaller label)."""
    stacked = np.asarray(predictions, dtype=np.int64)
    if stacked.ndim != 2 or stacked.shape[0] == 0:
        raise ValueError("modal_predictions needs a non-empty list of prediction vectors of equal length")
    k = num_classes or int(stacked.max()) + 1
    votes = np.zeros((k, stacked.shape[1]), dtype=np.int64)
    for row in stacked:
        votes[row, np.arange(stacked.shape[1])] += 1
    return votes.argmax(axis=0)  # argmax returns the first maximum: the smaller label on a tie


def compression_identified_exemplars(
    dense: Sequence[np.ndarray], compressed: Sequence[np.ndarray], num_classes: int | None = None
) -> np.ndarray:
    """A boolean mask over test samples: True where the modal labels of the two populations differ."""
    return modal_predictions(dense, num_classes) != modal_predictions(compressed, num_classes)


def _mean_accuracy(y_true: np.ndarray, predictions: Sequence[np.ndarray], mask: np.ndarray) -> float | None:
    if not mask.any():
        return None
    return float(np.mean([(np.asarray(p)[mask] == y_true[mask]).mean() for p in predictions]))


def cie_summary(
    y_true: np.ndarray,
    dense: Sequence[np.ndarray],
    compressed: Sequence[np.ndarray],
    groups: Mapping[str, np.ndarray],
    *,
    num_classes: int | None = None,
    min_n: int = MIN_N,
    confidence: float = 0.95,
) -> dict:
    """CIE count and rate overall; the mean per-model accuracy of both populations on the CIEs and off
    them; and per group: n, CIE count, CIE rate (with a Wilson interval), the group's share of all CIEs
    and its over-representation (its CIE rate over the overall CIE rate)."""
    y_true = np.asarray(y_true)
    mask = compression_identified_exemplars(dense, compressed, num_classes)
    total = int(mask.sum())
    overall_rate = total / len(mask) if len(mask) else 0.0
    out: dict = {
        "count": total,
        "rate": overall_rate,
        "seeds": {"dense": len(dense), "compressed": len(compressed)},
        "accuracy": {
            "dense": {
                "overall": _mean_accuracy(y_true, dense, np.ones_like(mask)),
                "on_cie": _mean_accuracy(y_true, dense, mask),
                "off_cie": _mean_accuracy(y_true, dense, ~mask),
            },
            "compressed": {
                "overall": _mean_accuracy(y_true, compressed, np.ones_like(mask)),
                "on_cie": _mean_accuracy(y_true, compressed, mask),
                "off_cie": _mean_accuracy(y_true, compressed, ~mask),
            },
        },
        "by_group": {},
    }
    for attribute, labels in groups.items():
        labels = np.asarray(labels).astype(str)
        rows = {}
        for group in sorted(set(labels.tolist())):
            in_group = labels == group
            n, count = int(in_group.sum()), int((mask & in_group).sum())
            _, (lo, hi) = wilson_ci(count, n, confidence)
            rate = count / n
            rows[group] = {
                "n": n,
                "cie": count,
                "rate": rate,
                "ci": [lo, hi],
                "share_of_cies": count / total if total else 0.0,
                "over_representation": rate / overall_rate if overall_rate else None,
                "small_n": n < min_n,
            }
        out["by_group"][attribute] = rows
    return out
