"""The metrics slimlab knows by name, in the one registry idiom (`slimlab.registry.Registry`).

A metric carries what the statistics need besides its value: its direction (so that a margin and a verdict
point the right way), its range (so that an interval never leaves it), and whether it is an average of
per-sample scores (so that a paired per-sample test applies). `score(outputs, targets)` takes the model's
outputs (logits or probabilities, one row per sample, or class labels) and the targets.

    @METRICS.register("my_score", description="...")
    ... or METRICS.register("my_score", Metric(...))

Registered here: accuracy, f1_macro, auroc, mse, mae, agreement, cosine, log_loss and normalized_entropy.
`agreement` and `cosine` are fidelity metrics (`targets = "dense"`): their targets are the dense parent's
outputs on the same samples.
A user's metric is an import path, `evaluate.metric = "my_metrics:score"`: a function of (outputs,
targets) as numpy arrays that returns a float or per-sample floats. It may carry `higher_is_better`
(default True) and `bounds` (lo, hi) attributes (`get_metric` with the recorded `source`).

Only numpy here: the module sits low, below `stats` and `evaluate`'s audits, so that any layer can read a
metric's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slimlab.registry import Registry

Direction = Literal["higher", "lower"]
Targets = Literal["labels", "dense"]
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
    targets: Targets = "labels"  # "dense": scored against the dense parent's outputs (fidelity)

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
    def bounds(self) -> tuple[float | None, float | None]:
        """The range with open ends as None (for clipping an interval)."""
        return (
            None if math.isinf(self.lower) else self.lower,
            None if math.isinf(self.upper) else self.upper,
        )

    @property
    def fn(self) -> Callable[[np.ndarray, np.ndarray], Any]:
        """The scoring function: per-sample scores, or the aggregate."""
        fn = self.per_sample if self.per_sample is not None else self.aggregate
        assert fn is not None
        return fn

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


def _as_2d(outputs: np.ndarray) -> np.ndarray:
    out = np.asarray(outputs, dtype=np.float64)
    return out.reshape(len(out), -1)


def _softmax(outputs: np.ndarray) -> np.ndarray:
    z = _as_2d(outputs)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def correct(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample, 1 where the predicted class is the label."""
    return _correct(outputs, labels)


def _f1_macro(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, _as_2d(outputs).argmax(1), average="macro", zero_division=0))


def _auroc(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    probs = _softmax(outputs)
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:  # one class in the split: undefined
        return float("nan")
    if probs.shape[1] == 1:  # one logit: a binary classifier's score
        return float(roc_auc_score(labels, _as_2d(outputs)[:, 0]))
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    present = np.unique(labels)
    # One-vs-rest, macro-averaged over the classes present in the test labels.
    return float(
        roc_auc_score(
            labels,
            probs[:, present] / probs[:, present].sum(1, keepdims=True),
            multi_class="ovr",
            labels=present,
        )
    )


def _targets_like(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = _as_2d(outputs)
    t = np.asarray(targets, dtype=np.float64).reshape(len(out), -1)
    if t.shape[1] != out.shape[1]:
        raise ValueError(f"outputs have {out.shape[1]} values per sample but targets {t.shape[1]}")
    return out, t


def _squared_error(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    out, t = _targets_like(outputs, targets)
    return ((out - t) ** 2).mean(1)


def _absolute_error(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    out, t = _targets_like(outputs, targets)
    return np.abs(out - t).mean(1)


def agreement(outputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per sample, 1 where the top-1 class equals the reference's."""
    return (_as_2d(outputs).argmax(1) == _as_2d(reference).argmax(1)).astype(np.float64)


def cosine(outputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per sample, the cosine similarity of the output vector to the reference's (1 where both are 0)."""
    a, b = _as_2d(outputs), _as_2d(reference)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dot / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.nan_to_num(out, nan=0.0))


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
ACCURACY = METRICS.get("accuracy")
register_metric(Metric("f1_macro", "higher", 0.0, 1.0, aggregate=_f1_macro, description="macro F1"))
register_metric(Metric("auroc", "higher", 0.0, 1.0, aggregate=_auroc, description="AUROC (one-vs-rest)"))
register_metric(Metric("mse", "lower", 0.0, per_sample=_squared_error, description="mean squared error"))
register_metric(Metric("mae", "lower", 0.0, per_sample=_absolute_error, description="mean absolute error"))
register_metric(
    Metric(
        "agreement",
        "higher",
        0.0,
        1.0,
        per_sample=agreement,
        targets="dense",
        description="top-1 agreement with the dense parent",
    )
)
register_metric(
    Metric(
        "cosine",
        "higher",
        -1.0,
        1.0,
        per_sample=cosine,
        targets="dense",
        description="cosine similarity of outputs to the dense parent's",
    )
)


def locate_metric(spec: str, base_dir: str | Path | None) -> dict[str, Any]:
    """A user metric's import path, located (not imported): its file and hash, for the stored config."""
    from slimlab.imports import locate

    located = locate(spec, base_dir, "evaluate.metric")
    return {"spec": spec, "file": located.file, "sha256": located.sha256}


def get_metric(name: str, source: dict[str, Any] | str | None = None) -> Metric:
    """A registered metric, or a user's function by import path (imported from its recorded `source`).
    A string `source` is where the name was written (for the registry's error message)."""
    if name in METRICS or isinstance(source, str) or ":" not in name:
        return METRICS.get(name, source if isinstance(source, str) else None)
    from slimlab.imports import Located, load_object, parse_spec

    module, attr = parse_spec(name, "evaluate.metric")
    located = Located(name, module, attr, (source or {}).get("file"), (source or {}).get("sha256"))
    fn = load_object(located, "evaluate.metric")
    bounds = getattr(fn, "bounds", (None, None))
    return Metric(
        name,
        "higher" if getattr(fn, "higher_is_better", True) else "lower",
        -math.inf if bounds[0] is None else float(bounds[0]),
        math.inf if bounds[1] is None else float(bounds[1]),
        per_sample=fn,  # may also return one number: `score` takes either
        targets=getattr(fn, "targets", "labels"),
        description=getattr(fn, "__doc__", None) or name,
    )


def score(metric: Metric, outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray | None]:
    """(the metric on the whole split, per-sample scores or None)."""
    value = metric.fn(outputs, targets)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array), None
    if len(array) != len(outputs):
        raise ValueError(f"metric {metric.name!r} returned {len(array)} scores for {len(outputs)} samples")
    return float(array.mean()), array


def fidelity(outputs: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """How far a treated model's outputs are from its dense parent's on the same inputs: the largest
    absolute difference, the mean and worst cosine similarity, and (for a classifier's logits) the share of
    samples whose top-1 class agrees."""
    a, b = _as_2d(outputs), _as_2d(reference)
    if a.shape != b.shape:
        return {
            "max_abs_diff": None,
            "cosine": None,
            "cosine_min": None,
            "agreement": None,
            "n": len(a),
            "note": f"output shapes differ: {a.shape} vs {b.shape}",
        }
    cos = cosine(a, b)
    return {
        "max_abs_diff": float(np.max(np.abs(a - b))) if a.size else 0.0,
        "cosine": float(cos.mean()) if len(cos) else None,
        "cosine_min": float(cos.min()) if len(cos) else None,
        "agreement": float(agreement(a, b).mean()) if a.shape[1] > 1 else None,
        "n": len(a),
    }


def _click_p(outputs: np.ndarray) -> np.ndarray:
    from slimlab.evaluate.binary import click_probabilities

    return click_probabilities(outputs)


def _click(name: str) -> Aggregate:
    def score(outputs: np.ndarray, targets: np.ndarray) -> float:
        from slimlab.evaluate.binary import binary_metrics

        return binary_metrics(targets, _click_p(outputs))[name]

    return score


# Click (binary) models; the values are what `evaluate_trial` stores for every binary task (AUROC is the
# general one above: on one logit or two it ranks by the same score as the click probability).
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
