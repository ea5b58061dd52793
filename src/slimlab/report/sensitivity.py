"""The sensitivity section's HTML: the per-node ranking plot and table, and the mixed-precision candidates."""

from __future__ import annotations

import math

import numpy as np

from slimlab.report.templating import ENV


def sensitivity_plot(summary: dict, title: str) -> str | None:
    """Nodes in rank order: SQNR of each quantized alone (bars) and the change of the metric they were
    scored on, with the interval over seeds (points), as a base64 PNG."""
    from matplotlib.figure import Figure

    from slimlab.plotting import png_base64

    layers = summary["layers"]
    if not layers:
        return None
    fig = Figure(figsize=(7.0, 0.5 + 0.45 * len(layers)))
    ax, ax2 = fig.subplots(1, 2, sharey=True)
    names = [f"{r['node']} ({r['op_type']})" for r in layers]
    y = np.arange(len(layers))
    ax.barh(y, [r["sqnr_db"] or 0 for r in layers], color="tab:blue")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("SQNR of the node alone in int8 (dB; lower = more error)")

    def known(v) -> bool:
        return v is not None and not math.isnan(v)

    deltas = [100 * r["delta"] for r in layers]
    lo = [100 * (r["delta"] - r["ci"][0]) if known(r["ci"][0]) else 0 for r in layers]
    hi = [100 * (r["ci"][1] - r["delta"]) if known(r["ci"][1]) else 0 for r in layers]
    ax2.errorbar(deltas, y, xerr=[lo, hi], fmt="o", color="tab:red", capsize=3)
    ax2.axvline(0, color="black", linewidth=0.8)
    ax2.set_xlabel(f"validation {summary.get('metric', 'accuracy')} change (points)")
    fig.suptitle(title, fontsize=9)
    return png_base64(fig)


def render_sensitivity_html(results: dict) -> list[str]:
    template = ENV.get_template("sensitivity.html.j2")
    return [
        template.render(
            dataset=d, sv=sv, png=sensitivity_plot(sv, f"{d}: per-node int8 sensitivity (validation)")
        )
        for d, sv in (results.get("sensitivity") or {}).items()
    ]
