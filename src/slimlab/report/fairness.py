"""Draws and renders the per-group section that `slimlab.analysis.fairness` computed: one three-panel
plot per group attribute, and an HTML fragment placed inside report.html."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from slimlab.report.plots import _png
from slimlab.report.templating import ENV

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
