"""The learning-curve section: test accuracy against the number of labelled training examples, per
recipe (variant), with intervals over seeds, each recipe's paired gain over the scratch baseline, and its
data multiplier with a bootstrap-over-seeds interval (`slimlab.stats.learning_curve` does the statistics;
`slimlab.report.learning_curve` draws it).

Input: the trial records and the typed config; each record's dataset label carries its n
(`mnist1d[n=50]`), and `metrics.n_train` + `metrics.n_val` is the number of labels it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slimlab.analysis.view import RunView
from slimlab.config import ExperimentConfig
from slimlab.stats.learning_curve import curve_table, format_multiplier


def _curves(
    trials: list[Mapping[str, Any]], config: ExperimentConfig
) -> dict[str, dict[str, dict[int, dict[int, float]]]]:
    """{base dataset name: {recipe: {n: {seed: test accuracy}}}}."""
    sizes = {d.label: (d.name, d.train_size) for d in config.data if d.train_size is not None}
    out: dict[str, dict[str, dict[int, dict[int, float]]]] = {}
    for t in trials:
        if t.get("status", "ok") != "ok" or t["dataset"] not in sizes:
            continue
        name, n = sizes[t["dataset"]]
        out.setdefault(name, {}).setdefault(t["variant"], {}).setdefault(n, {})[t["seed"]] = t["metrics"][
            "accuracy"
        ]
    return out


def learning_curve_sections(
    trials: list[Mapping[str, Any]], config: ExperimentConfig
) -> list[dict[str, Any]]:
    """One section per base dataset: {dataset, baseline, recipes, sizes, table, summary}."""
    curve = config.learning_curve
    if curve is None:
        return []
    baseline = curve.baseline or config.evaluate.baseline
    confidence = 1 - config.evaluate.alpha
    out = []
    for dataset, curves in _curves(trials, config).items():
        if baseline not in curves:
            continue
        recipes = [v.name for v in config.variants if v.name in curves]
        curves = {r: curves[r] for r in recipes}
        table = curve_table(curves, baseline, confidence=confidence, resamples=curve.bootstrap, seed=0)
        for row in table:
            row["multiplier_text"] = format_multiplier(row["multiplier"]) if row["multiplier"] else None
        sizes = sorted({row["n"] for row in table})
        out.append(
            {
                "dataset": dataset,
                "baseline": baseline,
                "recipes": recipes,
                "sizes": sizes,
                "confidence": confidence,
                "table": table,
                "summary": _summary(table, baseline, sizes),
                "test_use": "report-only",
            }
        )
    return out


def _summary(table: list[dict], baseline: str, sizes: list[int]) -> list[str]:
    """Sentences on each recipe at the smallest and the largest n: its gain and its multiplier."""
    cell = {(r["recipe"], r["n"]): r for r in table}
    lines = []
    for recipe in dict.fromkeys(r["recipe"] for r in table):
        if recipe == baseline:
            continue
        parts = []
        for n in (sizes[0], sizes[-1]):
            row, base = cell.get((recipe, n)), cell.get((baseline, n))
            if row is None or base is None or row["delta"] is None:
                continue
            parts.append(
                f"at n={n} {100 * row['mean']:.1f}% against {100 * base['mean']:.1f}% "
                f"({100 * row['delta']:+.1f} points"
                + (f", worth {row['multiplier_text']} the data" if row["multiplier_text"] else "")
                + ")"
            )
        if parts:
            lines.append(f"{recipe}: " + "; ".join(parts))
    return lines


def learning_curve_analysis(view: RunView, computed: dict[str, Any]) -> dict[str, Any]:
    """results.json's `learning_curves`, for a run with a `[learning_curve]` section."""
    if view.config.learning_curve is None:
        return {}
    return {"learning_curves": learning_curve_sections(view.trial_dicts, view.config)}
