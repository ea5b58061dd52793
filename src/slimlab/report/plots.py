"""Plots for the report, as base64 PNGs, drawn with matplotlib's object API (no global pyplot state)."""

from __future__ import annotations

from matplotlib.figure import Figure

from slimlab.plotting import HoverPoint, cd_diagram, clip_unit_axis, png_base64, png_with_points

_png = png_base64  # the dpi these plots were always drawn at (110)


def pareto_plot(rows: list[dict], front: list[str], title: str) -> dict:
    """The Pareto figure as a PNG with its hover points (see `pareto_figure`)."""
    return png_with_points(*pareto_figure(rows, front, title))


def _score(row: dict) -> tuple[str, float | None, tuple]:
    """(metric name, mean, CI) of a summary row: the experiment's own metric where it has one (an encoder
    scored by fidelity has no accuracy), else accuracy."""
    metric = row.get("metric")
    if metric and metric.get("mean") is not None:
        return metric["name"], metric["mean"], tuple(metric["ci"])
    return "accuracy", row["accuracy"]["mean"], tuple(row["accuracy"]["ci"])


def pareto_figure(rows: list[dict], front: list[str], title: str) -> tuple[Figure, list[HoverPoint]]:
    """Accuracy (or the experiment's metric; mean, with its CI) against p50 latency, the Pareto front
    joined and filled. Each variant has its own colour and marker in a legend instead of a text label
    beside its point, so that names of nearby points never overlap; hovering a point in the report shows
    its values."""
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    points = [r for r in rows if r["n_ok"] and r["latency_p50_ms"] is not None and _score(r)[1] is not None]
    colors = [f"C{i % 10}" for i in range(len(points))]
    markers = "osD^vP*Xhp"
    hover = []
    name = _score(points[0])[0] if points else "accuracy"
    unit = name == "accuracy"
    for i, r in enumerate(points):
        _, acc, (lo, hi) = _score(r)
        on_front = r["variant"] in front
        known = lo is not None and hi is not None and lo == lo and hi == hi  # x == x: not NaN
        # An accuracy interval lies in [0, 1]; the bars are drawn inside it whatever the method gave.
        if known and unit:
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        yerr = [[max(acc - lo, 0.0)], [max(hi - acc, 0.0)]] if known else None
        ax.errorbar(
            r["latency_p50_ms"],
            acc,
            yerr=yerr,
            fmt=markers[i % len(markers)],
            color=colors[i],
            markerfacecolor=colors[i] if on_front else "white",
            capsize=3,
            markersize=7,
            label=r["variant"] + (" ★" if on_front else ""),
        )
        if unit:
            value = f"accuracy {100 * acc:.1f}%" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if known else "")
        else:
            value = f"{name} {acc:.4g}" + (f" [{lo:.4g}, {hi:.4g}]" if known else "")
        hover.append(
            HoverPoint(
                ax,
                r["latency_p50_ms"],
                acc,
                f"{r['variant']}{' (Pareto front)' if on_front else ''}\n{value}\n"
                f"p50 {r['latency_p50_ms']:.4g} ms",
            )
        )
    best = sorted((r for r in points if r["variant"] in front), key=lambda r: r["latency_p50_ms"])
    if len(best) > 1:
        ax.step(
            [r["latency_p50_ms"] for r in best],
            [_score(r)[1] for r in best],
            where="post",
            color="tab:red",
            alpha=0.4,
            label="Pareto front",
        )
    if points:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    batch = points[0]["latency_batch_size"] if points else 1
    ax.set_xlabel(f"p50 latency at batch {batch} (ms, eager)")
    ax.set_ylabel(f"test {name} (mean, 95% CI over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if unit:
        clip_unit_axis(ax)
    return fig, hover


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
    clip_unit_axis(ax)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def cd_diagram_png(ranking: dict) -> str | None:
    """The critical-difference diagram of a `compare_scores` ranking, when it has one (several datasets)."""
    return png_base64(cd_diagram(ranking), dpi=120) if "cd" in ranking else None
