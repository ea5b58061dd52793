"""report.html: one self-contained file (PNGs embedded), every user string escaped by jinja2's autoescape."""

from __future__ import annotations

import math
from collections import defaultdict

from jinja2 import Environment, PackageLoader, select_autoescape

from slimlab.report.plots import learning_curves, pareto_plot

_env = Environment(
    loader=PackageLoader("slimlab.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def _p(value) -> str:
    if value is None or value != value:
        return "–"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


_env.filters.update(num=_num, pct=_pct, p=_p)


def render_report(results: dict) -> str:
    config = results["experiment"]["config"]
    baseline = config["evaluate"]["baseline"]
    rows_by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in results["summary"]:
        rows_by_dataset[row["dataset"]].append(row)
    comparisons = {(c["dataset"], c["variant"]): c for c in results["comparisons"]}
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
                "pareto_png": pareto_plot(rows, front, f"{results['experiment']['name']} · {dataset}"),
                "curves_png": learning_curves(trials, baseline, f"{dataset}: dense parent, validation split"),
            }
        )
    failed = [t for t in results["trials"] if t["status"] != "ok"]
    return _env.get_template("report.html.j2").render(
        results=results,
        config=config,
        sections=sections,
        failed=failed,
        baseline=baseline,
    )
