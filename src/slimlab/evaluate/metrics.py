"""The metrics slimlab knows by name, in the one registry idiom (`slimlab.registry.Registry`).

A metric carries what the statistics need besides its value: its direction (so that a margin and a verdict
point the right way), its range (so that an interval never leaves it), and whether it is an average of
per-sample scores (so that a paired per-sample test applies). `score(outputs, targets)` takes the model's
outputs (logits or probabilities, one row per sample, or class labels) and the targets.

    @METRICS.register("my_score", description="...")
    ... or METRICS.register("my_score", Metric(...))

Only numpy here: the module sits low, below `stats` and `evaluate`'s audits, so that any layer can read a
metric's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from slimlab.registry import Registry

Direction = Literal["higher", "lower"]
PerSample = Callable[[np.ndarray, np.ndarray], np.ndarray]
Aggregate = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Metric:
    """A named score. `per_sample` (outputs, targets) -> one score per sample, whose mean is the metric; or
    `aggregate` for a metric that is not a mean over samples (e.g. AUROC). Exactly one of them is given."""

    name: str
    direction: Direction
    lower: float = -math.inf  # the range of the metric's values
    upper: float = math.inf
    per_sample: PerSample | None = None
    aggregate: Aggregate | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.per_sample is None) == (self.aggregate is None):
            raise ValueError(f"metric {self.name!r} needs exactly one of per_sample and aggregate")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower'")
        if not self.lower < self.upper:
            raise ValueError(f"metric {self.name!r}: range [{self.lower}, {self.upper}] is empty")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def range(self) -> tuple[float, float]:
        return (self.lower, self.upper)

    @property
    def is_mean(self) -> bool:
        """True when the metric is the mean of per-sample scores (paired per-sample tests apply)."""
        return self.per_sample is not None

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        outputs, targets = np.asarray(outputs), np.asarray(targets)
        if self.per_sample is not None:
            return float(np.mean(self.per_sample(outputs, targets)))
        assert self.aggregate is not None
        return float(self.aggregate(outputs, targets))

    def improvement(self, new: float, old: float) -> float:
        """How much better `new` is than `old`, in the metric's units (positive = better either way)."""
        return new - old if self.higher_is_better else old - new


def predicted_labels(outputs: np.ndarray) -> np.ndarray:
    """Class labels from outputs: the argmax of a row of logits/probabilities, or the labels themselves."""
    outputs = np.asarray(outputs)
    return outputs.argmax(axis=1) if outputs.ndim == 2 else outputs


def _correct(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    labels, targets = predicted_labels(outputs), np.asarray(targets)
    if labels.shape != targets.shape:
        raise ValueError(f"{labels.shape[0]} predictions for {targets.shape[0]} targets")
    return (labels == targets).astype(np.float64)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric, description=metric.description)


register_metric(
    Metric(
        "accuracy",
        "higher",
        0.0,
        1.0,
        per_sample=_correct,
        description="share of samples whose predicted class is the target",
    )
)


def _click_p(outputs: np.ndarray) -> np.ndarray:
    from slimlab.evaluate.binary import click_probabilities

    return click_probabilities(outputs)


def _click(name: str) -> Aggregate:
    def score(outputs: np.ndarray, targets: np.ndarray) -> float:
        from slimlab.evaluate.binary import binary_metrics

        return binary_metrics(targets, _click_p(outputs))[name]

    return score


# Click (binary) models; the values are what `evaluate_trial` stores for every binary task.
register_metric(
    Metric("auroc", "higher", 0.0, 1.0, aggregate=_click("auroc"), description="area under the ROC curve")
)
register_metric(
    Metric("log_loss", "lower", 0.0, math.inf, aggregate=_click("log_loss"), description="binary log loss")
)
register_metric(
    Metric(
        "normalized_entropy",
        "lower",
        0.0,
        math.inf,
        aggregate=_click("normalized_entropy"),
        description="log loss over the entropy of the base click rate (He et al. 2014)",
    )
)


def get_metric(name: str, where: str | None = None) -> Metric:
    return METRICS.get(name, where)
