"""Plots for the report, as base64 PNGs, drawn with matplotlib's object API (no global pyplot state)."""

from __future__ import annotations

from matplotlib.figure import Figure

from slimlab.plotting import cd_diagram, png_base64

_png = png_base64  # the dpi these plots were always drawn at (110)


def pareto_plot(rows: list[dict], front: list[str], title: str) -> str:
    """Accuracy (mean, with its CI) against p50 latency, the Pareto front joined and marked."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    points = [r for r in rows if r["n_ok"] and r["latency_p50_ms"] is not None]
    for r in points:
        acc, (lo, hi) = r["accuracy"]["mean"], r["accuracy"]["ci"]
        on_front = r["variant"] in front
        known = lo is not None and hi is not None and lo == lo and hi == hi  # x == x: not NaN
        yerr = [[acc - lo], [hi - acc]] if known else None
        ax.errorbar(
            r["latency_p50_ms"],
            acc,
            yerr=yerr,
            fmt="o" if on_front else "s",
            color="tab:red" if on_front else "tab:gray",
            capsize=3,
            markersize=7,
        )
        ax.annotate(
            r["variant"], (r["latency_p50_ms"], acc), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    best = sorted((r for r in points if r["variant"] in front), key=lambda r: r["latency_p50_ms"])
    if len(best) > 1:
        ax.step(
            [r["latency_p50_ms"] for r in best],
            [r["accuracy"]["mean"] for r in best],
            where="post",
            color="tab:red",
            alpha=0.5,
            label="Pareto front",
        )
        ax.legend(loc="lower right", fontsize=8)
    batch = points[0]["latency_batch_size"] if points else 1
    ax.set_xlabel(f"p50 latency at batch {batch} (ms, eager)")
    ax.set_ylabel("test accuracy (mean, 95% CI over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def learning_curves(trials: list[dict], baseline: str, title: str) -> str | None:
    """Validation accuracy per epoch of each seed's dense parent."""
    curves = [
        (t["seed"], t["train"]["history"])
        for t in trials
        if t["status"] == "ok" and t["variant"] == baseline and t.get("train")
    ]
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for seed, history in curves:
        ax.plot(
            [h["epoch"] for h in history],
            [h["val_accuracy"] for h in history],
            label=f"seed {seed}",
            alpha=0.8,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def cd_diagram_png(ranking: dict) -> str | None:
    """The critical-difference diagram of a `compare_scores` ranking, when it has one (several datasets)."""
    return png_base64(cd_diagram(ranking), dpi=120) if "cd" in ranking else None
