"""Draws the lottery-ticket section that `slimlab.analysis.lottery` computed: test accuracy against the
weights remaining, and a markdown table for BENCHMARKS.md."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from slimlab.plotting import HoverPoint, clip_unit_axis, png_with_points

CONTROL_LABELS = {"none": "IMP ticket", "reinit": "random reinit", "random_prune": "random pruning"}
CONTROL_COLORS = {"none": "tab:blue", "reinit": "tab:orange", "random_prune": "tab:green"}


def _unknown(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def lottery_plot(
    summary: dict[str, Any], title: str = "Lottery tickets", confidence: float = 0.95
) -> dict | None:
    """The lottery figure as a PNG with its hover points, or None without lottery records."""
    drawn = lottery_figure(summary, title, confidence)
    return png_with_points(*drawn) if drawn else None


def lottery_figure(
    summary: dict[str, Any], title: str = "Lottery tickets", confidence: float = 0.95
) -> tuple[Figure, list[HoverPoint]] | None:
    """Test accuracy (mean and CI band over seeds) against the percentage of weights remaining (log x,
    decreasing to the right as pruning proceeds), one line per arm, and the dense parents' accuracy.
    `summary` is the lottery section (`slimlab.analysis.lottery.lottery_summary`)."""
    rows = summary["table"]
    if not rows:
        return None
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    hover = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        points = [r for r in rows if r["arm"] == arm]
        control = points[0]["control"]
        x = [100 * r["remaining_fraction"] for r in points]
        mean = [r["test_accuracy"]["mean"] for r in points]
        color = CONTROL_COLORS.get(control)
        ax.plot(
            x,
            mean,
            marker="o",
            markersize=3,
            color=color,
            label=f"{arm} ({CONTROL_LABELS.get(control, control)})",
        )
        lo = [r["test_accuracy"]["ci"][0] for r in points]
        hi = [r["test_accuracy"]["ci"][1] for r in points]
        for r, xi, m, a, b in zip(points, x, mean, lo, hi, strict=True):
            ci = "" if _unknown(a) or _unknown(b) else f" [{100 * a:.1f}, {100 * b:.1f}]"
            hover.append(
                HoverPoint(
                    ax, xi, m, f"{arm}, round {r['round']}: {xi:.3g}% of weights\naccuracy {100 * m:.1f}%{ci}"
                )
            )
        if not any(_unknown(v) for v in lo + hi):
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
    dense = summary["dense"]
    ax.axhline(
        dense["mean"], color="black", linestyle="--", linewidth=1, label=f"dense ({dense['n_seeds']} seeds)"
    )
    if not any(_unknown(v) for v in dense["ci"]):
        ax.axhspan(*dense["ci"], color="black", alpha=0.08, linewidth=0)
    ax.set_xscale("log")
    lowest = min(100 * r["remaining_fraction"] for r in rows)
    ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if t >= lowest * 0.9]
    if len(ticks) < 3:  # a short search (100% -> 80% -> 64%) would get one tick: mark its rounds instead
        ticks = sorted({float(f"{100 * r['remaining_fraction']:.3g}") for r in rows}, reverse=True)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel(f"test accuracy (mean, {round(100 * confidence)}% CI over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    clip_unit_axis(ax)
    return fig, hover


def lottery_markdown(summary: dict[str, Any]) -> str:
    """A markdown table (remaining %, then each arm's mean test accuracy [CI]) and one line per arm saying
    where it stops matching dense; for BENCHMARKS.md. `summary` is the lottery section."""
    rows = summary["table"]
    limits = {limit["arm"]: limit for limit in summary["limits"]}
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    rounds = sorted({r["round"] for r in rows})
    cell = {(r["arm"], r["round"]): r for r in rows}

    def fmt(r: dict | None) -> str:
        if r is None:
            return ""
        m, (lo, hi) = r["test_accuracy"]["mean"], r["test_accuracy"]["ci"]
        return f"{100 * m:.1f}" + ("" if _unknown(lo) else f" [{100 * lo:.1f}, {100 * hi:.1f}]")

    lines = ["| round | weights left | " + " | ".join(arms) + " |", "|---" * (len(arms) + 2) + "|"]
    for rnd in rounds:
        left = next(cell[(a, rnd)]["remaining_fraction"] for a in arms if (a, rnd) in cell)
        lines.append(
            f"| {rnd} | {100 * left:.1f}% | " + " | ".join(fmt(cell.get((a, rnd))) for a in arms) + " |"
        )
    lines.append("")
    for arm in arms:
        limit = limits[arm]
        margin = limit["margin"]
        if limit["last_matching_round"] is None:
            matched = f"not shown to match dense (CI of the difference above -{margin}) even at round 1"
        else:
            matched = (
                f"matches dense (CI of the difference above -{margin}) down to "
                f"{100 * limit['last_matching_remaining_fraction']:.1f}% of the weights "
                f"(round {limit['last_matching_round']}; matching rounds: {limit['matching_rounds']})"
            )
        if limit["first_inferior_round"] is None:
            worse = "never shown to be worse"
        else:
            left, rnd = 100 * limit["first_inferior_remaining_fraction"], limit["first_inferior_round"]
            worse = f"shown to be worse (CI below -{margin}) from {left:.1f}% (round {rnd})"
        lines.append(f"- {arm}: {matched}; {worse}.")
    return "\n".join(lines)
