"""Draws the learning-curve section that `slimlab.analysis.learning_curve` computed: test accuracy
against n per recipe with its intervals (a PNG), the HTML fragment, and the markdown table for
BENCHMARKS.md."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from slimlab.plotting import png_base64

if TYPE_CHECKING:
    from slimlab.analysis import Analysis

COLORS = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def learning_curve_plot(section: dict) -> str:
    """Test accuracy (mean, CI band over seeds) against n (log x), one line per recipe."""
    fig = Figure(figsize=(6.8, 4.2))
    ax = fig.add_subplot()
    for i, recipe in enumerate(section["recipes"]):
        rows = [r for r in section["table"] if r["recipe"] == recipe]
        x = [r["n"] for r in rows]
        color = COLORS[i % len(COLORS)]
        ax.plot(x, [r["mean"] for r in rows], marker="o", markersize=3, color=color, label=recipe)
        lo = [r["ci"][0] for r in rows]
        hi = [r["ci"][1] for r in rows]
        if all(v is not None and not math.isnan(v) for v in lo + hi):
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(section["sizes"]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("labelled training examples n (log scale; validation comes out of n)")
    ax.set_ylabel(f"test accuracy (mean, {round(100 * section['confidence'])}% CI over seeds)")
    ax.set_title(f"Learning curves · {section['dataset']}".replace("$", r"\$"), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return png_base64(fig)


def learning_curve_markdown(section: dict) -> str:
    """A markdown table: n, then each recipe's accuracy [CI], and each non-baseline recipe's multiplier."""
    cell = {(r["recipe"], r["n"]): r for r in section["table"]}
    others = [r for r in section["recipes"] if r != section["baseline"]]
    head = ["n", *[f"{r} acc %" for r in section["recipes"]], *[f"{r} data multiplier" for r in others]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for n in section["sizes"]:
        cells = [str(n)]
        for r in section["recipes"]:
            row = cell.get((r, n))
            if row is None:
                cells.append("")
                continue
            lo, hi = row["ci"]
            ci = "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
            cells.append(f"{100 * row['mean']:.1f}{ci}")
        for r in others:
            row = cell.get((r, n))
            cells.append(row["multiplier_text"] or "" if row else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_learning_curve_html(section: dict) -> str:
    """The section as an HTML fragment for report.html (autoescaped: recipe names are user strings)."""
    from slimlab.report.templating import ENV

    return ENV.get_template("learning_curve.html.j2").render(
        lc={**section, "png": learning_curve_plot(section)}
    )


def render_learning_curves(analysis: Analysis) -> list[str]:
    """The report's fragments: one per learning-curve section."""
    return [render_learning_curve_html(s) for s in analysis.results.get("learning_curves", [])]
