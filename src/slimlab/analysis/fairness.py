"""The per-group (fairness) section: per-group metrics, disparities, compression impact, CIEs and data
reliability, JSON-able for results.json; `slimlab.report.fairness` draws and renders it.

    section = fairness_section(trials, data, baseline="dense", margin=0.01, alpha=0.05)
    html = render_fairness_html(section)     # slimlab.report.fairness

`data` is any Dataset whose test split is the one the trials were scored on. slimlab's test split depends
only on `data.split_seed`, never on the trial seed, so `load_dataset(data_config, seed)` with any seed
gives the same test labels and groups; the `fairness` analysis section does that for every dataset of an
experiment, through the run view's one cached rebuild. The plots are drawn from the section itself when
rendering, so results.json holds numbers only.

A trial record may also carry "probabilities" (one list of class probabilities per test sample); the
section then adds the expected calibration error per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from slimlab.analysis.view import RunView
from slimlab.data.dataset import Dataset
from slimlab.evaluate.cie import cie_summary
from slimlab.evaluate.fairness import audit_variant, compression_impact, predictions_by_variant
from slimlab.evaluate.groups import MAX_CI_WIDTH, MIN_N
from slimlab.evaluate.reliability import data_reliability

SCHEMA = "slimlab.fairness/1"


def _jsonable(value):
    """numpy scalars -> Python; NaN and inf -> None (results.json must be strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def fairness_section(
    trials: Sequence[Mapping],
    data: Dataset,
    *,
    baseline: str,
    margin: float,
    alpha: float = 0.05,
    min_n: int = MIN_N,
    max_ci_width: float | None = MAX_CI_WIDTH,
    reliability: bool = True,
) -> dict:
    """Everything the per-group section shows, for the trials of `data.name`: per-group metrics of each
    variant, disparities, per-group compression impact with Holm-corrected verdicts, CIEs per variant,
    proxy warnings and data reliability. Strict JSON (no NaN)."""
    y, groups = data.test.y, data.test.groups
    if not groups:
        return {"schema": SCHEMA, "dataset": data.name, "groups": [], "note": "the dataset defines no groups"}
    preds = predictions_by_variant(trials, data.name)
    variants = [v for v in dict.fromkeys(t["variant"] for t in trials if t.get("dataset") == data.name)]
    variants = [v for v in variants if v in preds]
    probabilities = predictions_by_variant(trials, data.name, key="probabilities")
    audits = {
        v: audit_variant(
            y,
            preds[v],
            groups,
            num_classes=data.num_classes,
            min_n=min_n,
            max_ci_width=max_ci_width,
            probabilities=probabilities.get(v),
        )
        for v in variants
    }
    impact = compression_impact(
        trials,
        y,
        groups,
        baseline=baseline,
        margin=margin,
        alpha=alpha,
        dataset=data.name,
        min_n=min_n,
        max_ci_width=max_ci_width,
    )
    cies = {}
    if baseline in preds:
        for v in variants:
            if v == baseline:
                continue
            seeds = sorted(set(preds[baseline]) & set(preds[v]))
            if seeds:
                cies[v] = cie_summary(
                    y,
                    [preds[baseline][s] for s in seeds],
                    [preds[v][s] for s in seeds],
                    groups,
                    num_classes=data.num_classes,
                    min_n=min_n,
                )
    section = {
        "schema": SCHEMA,
        "dataset": data.name,
        "baseline": baseline,
        "test_n": len(y),
        "binary": data.num_classes == 2,
        "calibration": bool(probabilities),  # ECE per group, when the trials stored class probabilities
        "classes": data.meta.get("classes"),
        "groups": list(groups),
        "variants": variants,
        "settings": {
            "min_n": min_n,
            "max_ci_width": max_ci_width,
            "margin": margin,
            "alpha": alpha,
            "interval": "Wilson 95% interval at the mean over seeds, n = the group's test rows (the "
            "test-set uncertainty); seed_sd is the spread over seeds",
            "correction": impact["correction"],
        },
        "per_variant": audits,
        "compression": impact,
        "cie": cies,
        "proxy_warnings": data.meta.get("proxy_warnings", []),
        "reliability": data_reliability(data) if reliability else None,
    }
    section["summary"] = _summary(section)
    return _jsonable(section)


def _summary(section: dict) -> dict:
    verdicts: dict[str, dict[str, int]] = {}
    for r in section["compression"]["rows"]:
        counts = verdicts.setdefault(r["variant"], {})
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    worst = {
        v: {a: audit["worst_group"] for a, audit in audits.items()}
        for v, audits in section["per_variant"].items()
    }
    # Why verdicts are inconclusive (degenerate data, small groups): the report says so beside the counts.
    reasons: dict[str, int] = {}
    for r in section["compression"]["rows"]:
        if r.get("inconclusive_reason"):
            reasons[r["inconclusive_reason"]] = reasons.get(r["inconclusive_reason"], 0) + 1
    return {
        "most_hurt": section["compression"]["most_hurt"][:5],
        "verdicts": verdicts,
        "inconclusive_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "worst_groups": worst,
        "cie_rates": {v: c["rate"] for v, c in section["cie"].items()},
    }


def fairness_sections(view: RunView) -> dict[str, dict]:
    """{dataset name: section} for every dataset of the run that defines groups. The test split (labels
    and groups) is rebuilt from the data config, which is why it need not be stored."""
    ev = view.config.evaluate
    trials = view.trial_dicts
    out = {}
    for data_config in view.config.data:
        data = view.dataset(data_config)
        if data.test.groups:
            out[data.name] = fairness_section(
                trials, data, baseline=ev.baseline, margin=ev.margin, alpha=ev.alpha
            )
    return out


def fairness_analysis(view: RunView, results: dict) -> dict:
    sections = fairness_sections(view)
    return {"fairness": sections} if sections else {}
