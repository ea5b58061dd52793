"""The learning-curve section: test accuracy against the number of labelled training examples, per
recipe (variant), with intervals over seeds, each recipe's paired gain over the scratch baseline, and its
data multiplier with a bootstrap-over-seeds interval (slimlab.stats.learning_curve does the statistics).

Input: trial records and the resolved config; each record's dataset label carries its n
(`mnist1d[n=50]`), and `metrics.n_train` + `metrics.n_val` is the number of labels it used.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from slimlab.plotting import png_base64
from slimlab.stats.learning_curve import curve_table, format_multiplier

COLORS = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def _curves(trials: list[dict], config: dict) -> dict[str, dict[str, dict[int, dict[int, float]]]]:
    """{base dataset name: {recipe: {n: {seed: test accuracy}}}}."""
    from slimlab.config import DataConfig

    sizes = {}
    for options in config["data"]:
        d = DataConfig.model_validate(options)
        if d.train_size is not None:
            sizes[d.label] = (d.name, d.train_size)
    out: dict[str, dict[str, dict[int, dict[int, float]]]] = {}
    for t in trials:
        if t.get("status", "ok") != "ok" or t["dataset"] not in sizes:
            continue
        name, n = sizes[t["dataset"]]
        out.setdefault(name, {}).setdefault(t["variant"], {}).setdefault(n, {})[t["seed"]] = t["metrics"][
            "accuracy"
        ]
    return out


def learning_curve_sections(trials: list[dict], config: dict) -> list[dict[str, Any]]:
    """One section per base dataset: {dataset, baseline, recipes, sizes, table, summary}."""
    curve = config.get("learning_curve") or {}
    baseline = curve.get("baseline") or config["evaluate"]["baseline"]
    confidence = 1 - config["evaluate"]["alpha"]
    out = []
    for dataset, curves in _curves(trials, config).items():
        if baseline not in curves:
            continue
        recipes = [v["name"] for v in config["variants"] if v["name"] in curves]
        curves = {r: curves[r] for r in recipes}
        table = curve_table(
            curves, baseline, confidence=confidence, resamples=curve.get("bootstrap", 2000), seed=0
        )
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
