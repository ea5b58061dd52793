"""Summaries and comparisons on the experiment's own metric (evaluate.metric), following its direction and
range, and, for a pretrained model, paired per test sample as well as per seed.

Used when the model is pretrained or its metric is not one that every trial of a trained model stores
(SEED_METRICS); those keep the paired-by-seed comparison of `slimlab.stats.compare_scores`. Each
comparison says which unit its interval is over (`interval_unit`: "seeds" or "test samples")."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from slimlab.evaluate.metrics import get_metric
from slimlab.stats import holm, mean_ci
from slimlab.stats.paired import paired_comparison
from slimlab.stats.per_sample import per_sample_comparison
from slimlab.stats.verdict import FAMILIES, holm_verdicts

# Compared by seed through stats.compare_scores when the model is trained: accuracy (every classifier)
# and AUROC (every binary task's trial stores it).
SEED_METRICS = ("accuracy", "auroc")


def uses_metric_path(config: Mapping[str, Any]) -> bool:
    return config["evaluate"].get("metric", "accuracy") not in SEED_METRICS or is_pretrained(config)


def is_pretrained(config: Mapping[str, Any]) -> bool:
    model = config.get("model", {})
    if model.get("pretrained") is not None:
        return bool(model["pretrained"])
    return bool(model.get("checkpoint") or model.get("hf") or model.get("onnx"))


def _clip(ci: Sequence[float], bounds: tuple[float | None, float | None]) -> list[float]:
    lo, hi = ci
    if bounds[0] is not None:
        lo, hi = max(lo, bounds[0]), max(hi, bounds[0])
    if bounds[1] is not None:
        lo, hi = min(lo, bounds[1]), min(hi, bounds[1])
    return [lo, hi]


def metric_summary(
    trials: Sequence[Mapping[str, Any]], config: Mapping[str, Any]
) -> dict[tuple[str, str], dict]:
    """Per (dataset, variant): the metric's mean over seeds and its t interval, clipped to the metric's
    range."""
    ev = config["evaluate"]
    metric = get_metric(ev.get("metric", "accuracy"), ev.get("source"))
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t in trials:
        if t["status"] == "ok" and t["metrics"].get(metric.name) is not None:
            by_key[(t["dataset"], t["variant"])].append(float(t["metrics"][metric.name]))
    out = {}
    for key, values in by_key.items():
        m, ci = mean_ci(values, 1 - ev["alpha"])
        out[key] = {
            "name": metric.name,
            "mean": m,
            "ci": _clip(ci, metric.bounds),
            "higher_is_better": metric.higher_is_better,
            "interval_unit": "seeds",
        }
    return out


def metric_comparisons(trials: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> list[dict]:
    """Each variant against the baseline on the experiment's metric. Oriented so that a positive `delta`
    is better, whatever the metric's direction; the margin is in the metric's units. For a pretrained
    model the verdict is the per-test-sample one (the seeds vary only calibration and fine-tuning), with
    the by-seed comparison kept beside it; Holm adjusts the p-values of the verdicts used."""
    ev = config["evaluate"]
    metric = get_metric(ev.get("metric", "accuracy"), ev.get("source"))
    sign = 1.0 if metric.higher_is_better else -1.0
    pretrained = is_pretrained(config)
    index = {(t["dataset"], t["variant"], t["seed"]): t for t in trials if t["status"] == "ok"}
    out = []
    for dataset in dict.fromkeys(t["dataset"] for t in trials):
        for variant in dict.fromkeys(t["variant"] for t in trials if t["dataset"] == dataset):
            if variant == ev["baseline"]:
                continue
            pairs = [
                (index[(dataset, variant, s)], index[(dataset, ev["baseline"], s)])
                for s in sorted({k[2] for k in index if k[:2] == (dataset, variant)})
                if (dataset, ev["baseline"], s) in index
            ]
            if not pairs:
                continue
            a = [sign * float(v["metrics"][metric.name]) for v, _ in pairs]
            b = [sign * float(base["metrics"][metric.name]) for _, base in pairs]
            by_seed = paired_comparison(a, b, margin=ev["margin"], alpha=ev["alpha"]).to_dict()
            by_seed["interval_unit"] = "seeds"
            c: dict[str, Any] = {
                "dataset": dataset,
                "variant": variant,
                "baseline": ev["baseline"],
                "metric": metric.name,
                "higher_is_better": metric.higher_is_better,
                "oriented": "delta > 0 is better",
                "seeds": [v["seed"] for v, _ in pairs],
                "by_seed": by_seed,
            }
            scored = [(v.get("scores"), base.get("scores")) for v, base in pairs]
            per_sample = None
            if all(x is not None and y is not None and len(x) == len(y) for x, y in scored):
                per_sample = per_sample_comparison(
                    [x for x, _ in scored],
                    [y for _, y in scored],
                    margin=ev["margin"],
                    alpha=ev["alpha"],
                    higher_is_better=metric.higher_is_better,
                    binary=metric.name == "accuracy",
                )
                c["per_sample"] = per_sample
            chosen = per_sample if (pretrained and per_sample) else by_seed
            c.update(
                {
                    "delta": chosen["delta"],
                    "ci": list(chosen["ci"]),
                    "test": chosen["test"],
                    "p_value": chosen["p_value"],
                    "verdict": chosen["verdict"],
                    "interval_unit": "test samples" if chosen is per_sample else "seeds",
                    "margin": ev["margin"],
                    # What the one Holm verdict rule reads (stats.verdict.holm_verdicts).
                    **{k: _p(chosen.get(k)) for k in FAMILIES},
                    "inconclusive_reason": chosen.get("reason"),
                    "non_inferiority_unresolvable": chosen.get("non_inferiority_unresolvable"),
                    "design": "per_sample" if chosen.get("design") == "per_sample" else None,
                }
            )
            out.append(c)
    adjusted = holm([c["p_value"] for c in out]) if out else []
    for c, p in zip(out, adjusted, strict=True):
        c["p_adjusted"] = None if p is None or (isinstance(p, float) and np.isnan(p)) else float(p)
    holm_verdicts(out, ev["alpha"])  # the verdicts: Holm-adjusted one-sided p's, as every other comparison
    return out


def _p(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
