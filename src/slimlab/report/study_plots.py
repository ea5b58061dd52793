"""The studies' figures, as base64 PNGs (matplotlib's object API, no pyplot state). Every curve is the
mean over seeds with its 95% t interval shaded."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from slimlab.plotting import png_base64


def _band(ax, x, summary: dict, label: str, color, style: str = "-") -> None:
    mean = np.asarray(summary["mean"], dtype=float)
    lo = np.asarray([v if v is not None else math.nan for v in summary["lo"]], dtype=float)
    hi = np.asarray([v if v is not None else math.nan for v in summary["hi"]], dtype=float)
    ax.plot(x, mean, style, color=color, label=label, linewidth=1.6)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def deep_bootstrap_curves(analysis: dict) -> str:
    """One row per (architecture, augmentation): hard and soft test error of both worlds against the step,
    the Real World's train error dashed, and its convergence step marked."""
    settings = analysis["settings"]
    fig = Figure(figsize=(10, 3.1 * len(settings)))
    for row, s in enumerate(settings):
        for col, metric in enumerate(("test_error", "test_soft_error")):
            ax = fig.add_subplot(len(settings), 2, 2 * row + col + 1)
            steps = s["steps"]
            _band(ax, steps, s["curves"]["real"][metric], "Real World (test)", "tab:red")
            _band(ax, steps, s["curves"]["ideal"][metric], "Ideal World (test)", "tab:blue")
            train = "train_error" if metric == "test_error" else "train_soft_error"
            _band(ax, steps, s["curves"]["real"][train], "Real World (train)", "tab:red", "--")
            conv = s["converged"]["step"]["mean"]
            if conv is not None and conv == conv:
                ax.axvline(conv, color="gray", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            kind = "hard" if metric == "test_error" else "soft"
            ax.set_title(f"{s['arch']}{' + augmentation' if s['augment'] else ''}: {kind} error", fontsize=9)
            ax.set_xlabel("step")
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return png_base64(fig, dpi=90)


def deep_bootstrap_gap(analysis: dict) -> str:
    """The soft-error bootstrap gap (Real − Ideal, paired by seed) against the step, every setting."""
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    for i, s in enumerate(analysis["settings"]):
        name = f"{s['arch']}{' + aug' if s['augment'] else ''}"
        _band(ax, s["steps"], s["gap"]["test_soft_error"], name, colors[i % len(colors)])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("soft test error: Real − Ideal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_base64(fig, dpi=100)


def switch_curves(analysis: dict) -> str:
    """Test loss against steps and against training wall-clock, every variant."""
    fig = Figure(figsize=(11, 3.9))
    by_step, by_time = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, row in enumerate(analysis["variants"]):
        c = row["curves"]
        color = colors[i % len(colors)]
        _band(by_step, c["step"], c["test_loss"], row["variant"], color)
        _band(by_time, c["seconds"]["mean"], c["test_loss"], row["variant"], color)
    for ax, label in ((by_step, "step"), (by_time, "training wall-clock (s, mean over seeds)")):
        ax.set_xlabel(label)
        ax.set_ylabel("test cross-entropy")
        ax.grid(alpha=0.3)
    by_step.legend(fontsize=7)
    fig.tight_layout()
    return png_base64(fig, dpi=95)


def switch_load(analysis: dict) -> str | None:
    """Fraction of routed tokens per expert, per Switch layer, over the last evaluation window."""
    rows = [r for r in analysis["variants"] if r["load_per_expert"]]
    if not rows:
        return None
    fig = Figure(figsize=(11, 2.6 * math.ceil(len(rows) / 3)))
    for i, r in enumerate(rows):
        ax = fig.add_subplot(math.ceil(len(rows) / 3), 3, i + 1)
        load = np.asarray(r["load_per_expert"])
        width = 0.8 / len(load)
        for layer, fractions in enumerate(load):
            ax.bar(np.arange(len(fractions)) + layer * width, fractions, width=width, label=f"layer {layer}")
        ax.axhline(1 / load.shape[1], color="black", linewidth=0.8, linestyle=":")
        ax.set_title(f"{r['variant']}: tokens per expert", fontsize=9)
        ax.set_xlabel("expert")
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return png_base64(fig, dpi=90)
