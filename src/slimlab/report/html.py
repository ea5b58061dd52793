"""report.html: one self-contained file (PNGs embedded), every user string escaped by jinja2's autoescape."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from markupsafe import Markup

from slimlab.analysis.headline import speedup_interval
from slimlab.bench.plots import latency_vs_batch, roofline_plot
from slimlab.report.plots import cd_diagram_png, learning_curves, pareto_plot
from slimlab.report.templating import ENV

if TYPE_CHECKING:
    from slimlab.analysis import Analysis


def _bench_plots(trials: list[dict], baseline: str, peak: dict | None) -> dict[str, str | None]:
    """Latency against batch size and the roofline, for the first seed of each variant."""
    first: dict[str, dict] = {}
    for t in trials:
        if t["status"] == "ok" and t.get("bench") and t["variant"] not in first:
            first[t["variant"]] = t
    if not first:
        return {}
    chosen = first.get(baseline) or next(iter(first.values()))
    records = [{**r, "backend": f"{v}/{r['backend']}"} for v, t in first.items() for r in t["bench"]]
    return {
        "latency": latency_vs_batch(chosen["bench"], f"{chosen['variant']}, seed {chosen['seed']}: latency"),
        "roofline": roofline_plot(records, peak, "roofline: every variant and backend, first seed")
        if peak
        else None,
    }


def _fairness(analysis: Analysis) -> list[str]:
    from slimlab.report.fairness import render_fairness_html

    return [render_fairness_html(s) for s in analysis.results.get("fairness", {}).values()]


def _clicks(analysis: Analysis) -> list[str]:
    from markupsafe import escape

    rows = analysis.results.get("clicks") or []
    if not rows:
        return []

    def cell(row: dict, key: str, digits: int = 4) -> str:
        value = row.get(key) or {}
        if value.get("mean") is None:
            return "<td>–</td>"
        lo, hi = value.get("ci", [None, None])
        ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
        return f"<td>{value['mean']:.{digits}f}{ci}</td>"

    head = ("dataset", "variant", "seeds", "AUC", "log loss", "NE", "lookups ms", "bottom MLP ms",
            "interaction + top ms", "lookup share")  # fmt: skip
    body = []
    for r in rows:
        share = r.get("embedding_share")
        body.append(
            f"<tr><td>{escape(r['dataset'])}</td><td>{escape(r['variant'])}</td><td>{int(r['n'])}</td>"
            + "".join(cell(r, k) for k in ("auroc", "log_loss", "normalized_entropy"))
            + "".join(
                cell(r, k, 3)
                for k in ("stage_embedding_ms", "stage_bottom_mlp_ms", "stage_interaction_top_mlp_ms")
            )
            + f"<td>{'–' if share is None else f'{share:.0%}'}</td></tr>"
        )
    return [
        "<section><h2>Click model: AUC, log loss, normalized entropy, and where the time goes</h2>"
        "<p>Means over seeds with t intervals. Times are p50 ms on one batch of 64 test samples, each stage "
        "called on its own.</p><table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(body)
        + "</table></section>"
    ]


# Section name -> a renderer of its HTML fragments (placed after the ranking, in this order). A new
# analysis section that shows in the report registers its renderer here.
def _sensitivity(analysis: Analysis) -> list[str]:
    from slimlab.report.sensitivity import render_sensitivity_html

    return render_sensitivity_html(analysis.results)


def _learning_curves(analysis: Analysis) -> list[str]:
    from slimlab.report.learning_curve import render_learning_curves

    return render_learning_curves(analysis)


RENDERERS: dict[str, Callable[[Analysis], list[str]]] = {
    "fairness": _fairness,
    "sensitivity": _sensitivity,
    "clicks": _clicks,
    "learning_curves": _learning_curves,
}


def render_report(analysis: Analysis) -> str:
    from slimlab.report.lottery import lottery_plot

    results = analysis.results
    baseline = analysis.baseline
    rows_by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in results["summary"]:
        rows_by_dataset[row["dataset"]].append(row)
    # On the metric path the comparisons are on the experiment's metric and get their own table.
    comparisons = {
        (c["dataset"], c["variant"]): c for c in results["comparisons"] if not results.get("metric_path")
    }
    peak = results["environment"].get("gemm_peak")
    sections = []
    for dataset, rows in rows_by_dataset.items():
        front = results["pareto_by_dataset"].get(dataset, [])
        trials = [t for t in results["trials"] if t["dataset"] == dataset]
        sections.append(
            {
                "dataset": dataset,
                "rows": rows,
                "front": front,
                "comparisons": [comparisons.get((dataset, r["variant"])) for r in rows],
                "pareto_png": pareto_plot(rows, front, f"{analysis.name} · {dataset}"),
                "curves_png": learning_curves(trials, baseline, f"{dataset}: dense parent, validation split"),
                "bench_png": _bench_plots(trials, baseline, peak),
            }
        )
    failed = [t for t in results["trials"] if t["status"] != "ok"]
    ranking = results.get("ranking") or {}
    fragments = [Markup(f) for render in RENDERERS.values() for f in render(analysis)]
    lottery = results.get("lottery")
    lottery_png = lottery_plot(lottery, confidence=analysis.confidence) if lottery else None
    return ENV.get_template("report.html.j2").render(
        results=results,
        config=analysis.config,
        sections=sections,
        failed=failed,
        baseline=baseline,
        pitfalls=results.get("pitfalls", []),
        ranking=ranking,
        cd_png=cd_diagram_png(ranking),
        fragments=fragments,
        lottery=lottery,
        lottery_png=lottery_png,
        speedup_interval=speedup_interval,
    )
