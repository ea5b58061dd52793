"""The per-group section of a report: JSON-able results (for results.json) and an HTML fragment.

    section = fairness_section(trials, data, baseline="dense", margin=0.01, alpha=0.05)
    html = render_fairness_html(section)

`data` is any Dataset whose test split is the one the trials were scored on. slimlab's test split depends
only on `data.split_seed`, never on the trial seed, so `load_dataset(data_config, seed)` with any seed
gives the same test labels and groups; `fairness_sections(config, trials)` does exactly that for every
dataset of an experiment. The plots are drawn from the section itself when rendering, so results.json
holds numbers only.

Wiring into a run (done by the caller; this module imports neither experiment nor cli):

    from slimlab.report.fairness import fairness_sections, render_fairness_html
    fairness = fairness_sections(config, trials)          # {} for datasets without groups
    results["fairness"] = fairness                         # strict JSON, next to "comparisons"
    html_fragments = [render_fairness_html(s) for s in fairness.values()]   # into report.html

A trial record may also carry "probabilities" (one list of class probabilities per test sample); the
section then adds the expected calibration error per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from slimlab.data.dataset import Dataset
from slimlab.evaluate.cie import cie_summary
from slimlab.evaluate.fairness import audit_variant, compression_impact, predictions_by_variant
from slimlab.evaluate.groups import MAX_CI_WIDTH, MIN_N
from slimlab.evaluate.reliability import data_reliability
from slimlab.report.plots import _png
from slimlab.report.templating import ENV

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
    return {
        "most_hurt": section["compression"]["most_hurt"][:5],
        "verdicts": verdicts,
        "worst_groups": worst,
        "cie_rates": {v: c["rate"] for v, c in section["cie"].items()},
    }


def fairness_sections(config, trials: Sequence[Mapping]) -> dict[str, dict]:
    """{dataset name: section} for every dataset of an ExperimentConfig that defines groups. The test
    split (labels and groups) is rebuilt from the data config, which is why it need not be stored."""
    from slimlab.data import load_dataset

    out = {}
    seeds = config.evaluate.seed_list
    for data_config in config.data:
        data = load_dataset(data_config, seeds[0])
        if data.test.groups:
            out[data.name] = fairness_section(
                trials,
                data,
                baseline=config.evaluate.baseline,
                margin=config.evaluate.margin,
                alpha=config.evaluate.alpha,
            )
    return out


# --- plots --------------------------------------------------------------------------------------------------

_COLORS = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def _label(text: str, limit: int = 38) -> str:
    # Matplotlib reads $...$ as mathtext: a group name is data, never markup.
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _err(value, ci) -> list[float]:
    if value is None or ci[0] is None or ci[1] is None:
        return [0.0, 0.0]
    return [max(0.0, value - ci[0]), max(0.0, ci[1] - value)]


def attribute_plot(section: dict, attribute: str) -> str:
    """Three panels for one group attribute: accuracy per group per variant (Wilson intervals), the change
    in accuracy against the baseline (CI over seeds, the margin dashed), and the CIE rate per group."""
    variants = section["variants"]
    baseline = section["baseline"]
    names = list(section["per_variant"][variants[0]][attribute]["groups"])
    fig = Figure(figsize=(12.5, max(3.0, 0.9 + 0.38 * len(names) * max(1, len(variants)) / 2.2)))
    axes = fig.subplots(1, 3, sharey=True)
    y = np.arange(len(names))
    width = 0.8 / max(1, len(variants))
    small = {g for g in names if section["per_variant"][variants[0]][attribute]["groups"][g]["small_n"]}
    for i, v in enumerate(variants):
        rows = section["per_variant"][v][attribute]["groups"]
        acc = [rows[g]["accuracy"]["value"] or 0.0 for g in names]
        err = np.array([_err(rows[g]["accuracy"]["value"], rows[g]["accuracy"]["ci"]) for g in names]).T
        axes[0].barh(
            y + i * width, acc, width, xerr=err, color=_COLORS[i % len(_COLORS)], label=_label(v), capsize=2
        )
    axes[0].set_xlabel("test accuracy\n(mean over seeds, Wilson 95%)", fontsize=9)
    lo = min(
        (
            min(r["accuracy"]["ci"][0] or 1 for r in a[attribute]["groups"].values())
            for a in section["per_variant"].values()
        ),
        default=0.0,
    )
    axes[0].set_xlim(max(0.0, lo - 0.05), 1.0)
    rows = [r for r in section["compression"]["rows"] if r["attribute"] == attribute]
    others = [v for v in variants if v != baseline]
    w2 = 0.8 / max(1, len(others))
    for i, v in enumerate(others):
        by_group = {r["group"]: r for r in rows if r["variant"] == v}
        delta = [by_group[g]["delta"] or 0.0 if g in by_group else 0.0 for g in names]
        err = np.array(
            [_err(by_group[g]["delta"], by_group[g]["ci"]) if g in by_group else [0, 0] for g in names]
        ).T
        color = _COLORS[(variants.index(v)) % len(_COLORS)]
        axes[1].barh(y + i * w2, delta, w2, xerr=err, color=color, capsize=2, label=_label(v))
        cie = section["cie"].get(v, {}).get("by_group", {}).get(attribute, {})
        rate = [cie[g]["rate"] if g in cie else 0.0 for g in names]
        cerr = np.array([_err(cie[g]["rate"], cie[g]["ci"]) if g in cie else [0, 0] for g in names]).T
        axes[2].barh(y + i * w2, rate, w2, xerr=cerr, color=color, capsize=2, label=_label(v))
        if v in section["cie"]:
            axes[2].axvline(section["cie"][v]["rate"], color=color, linestyle=":", linewidth=1)
    axes[1].axvline(0, color="black", linewidth=0.8)
    axes[1].axvline(-section["settings"]["margin"], color="tab:red", linestyle="--", linewidth=1)
    axes[1].set_xlabel(f"accuracy change vs {_label(baseline)}\n(CI over seeds; dashed: -margin)", fontsize=9)
    axes[2].set_xlabel(
        "share of the group's samples that are CIEs\n(Wilson 95%; dotted: overall)", fontsize=9
    )
    axes[0].set_yticks(
        y + 0.4 - width / 2, [_label(g) + (" (small n)" if g in small else "") for g in names], fontsize=8
    )
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    handles, names_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, names_, loc="upper right", ncol=len(variants), fontsize=8, frameon=False)
    fig.suptitle(_label(f"{section['dataset']} · groups by {attribute}", 80), fontsize=10, x=0.3)
    return _png(fig)


# --- HTML ---------------------------------------------------------------------------------------------------


def render_fairness_html(section: dict, plots: bool = True) -> str:
    """An HTML fragment (no <html> or <body>) to place inside report.html, every string escaped."""
    images = {}
    if plots and section.get("variants"):
        images = {a: attribute_plot(section, a) for a in section["groups"]}
    return ENV.get_template("fairness.html.j2").render(s=section, images=images)
