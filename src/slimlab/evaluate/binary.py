"""Metrics of a click (binary) model: AUC, log loss and normalized entropy.

Normalized entropy (He et al., "Practical lessons from predicting clicks on ads at Facebook", 2014) is the
average log loss divided by the entropy of the background click rate: 1.0 is what predicting the base
rate for everyone scores, lower is better. The background rate is the evaluated split's own, as in the
paper. AUC and log loss come from scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS], so one confident mistake cannot give inf


def binary_entropy(rate: float) -> float:
    if rate <= 0 or rate >= 1:
        return 0.0
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, log loss (nats), normalized entropy and the click rate, for labels `y` (0/1) and click
    probabilities `p`. AUC is NaN when the split has one class only; NE is NaN when its entropy is 0."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(y).astype(np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    rate = float(y.mean()) if len(y) else math.nan
    loss = float(log_loss(y, p, labels=[0, 1])) if len(y) else math.nan
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    entropy = binary_entropy(rate) if len(y) else 0.0
    return {
        "auroc": auc,
        "log_loss": loss,
        "normalized_entropy": loss / entropy if entropy > 0 else math.nan,
        "click_rate": rate,
        "mean_prediction": float(p.mean()) if len(p) else math.nan,
    }


def click_probabilities(logits: np.ndarray) -> np.ndarray:
    """P(click) from two-class logits (softmax, class 1) or from one logit per sample (sigmoid)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 2 and logits.shape[1] == 2:
        z = logits[:, 1] - logits[:, 0]
    else:
        z = logits.reshape(len(logits))
    return 1 / (1 + np.exp(-z))
