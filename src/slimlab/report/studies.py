"""A study's report.html (and results.json beside it), rendered from the results that
`slimlab.analysis.studies.analyze_study` assembled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from slimlab.report import study_plots
from slimlab.report.templating import ENV
from slimlab.report.writer import write_json_and_html

# Study type -> its figures (name -> base64 PNG), placed by the study template.
STUDY_FIGURES: dict[str, Callable[[dict], dict[str, str | None]]] = {
    "deep_bootstrap": lambda s: {
        "curves": study_plots.deep_bootstrap_curves(s),
        "gap": study_plots.deep_bootstrap_gap(s),
    },
    "switch_moe": lambda s: {"curves": study_plots.switch_curves(s), "load": study_plots.switch_load(s)},
}


def figures(results: dict) -> dict[str, str | None]:
    return STUDY_FIGURES[results["study"]["type"]](results["study"])


def render_study_report(results: dict) -> str:
    return ENV.get_template("study.html.j2").render(r=results, s=results["study"], fig=figures(results))


def write_study_outputs(results: dict, out: str | Path) -> tuple[Path, Path]:
    """`results` as `analyze_study` made them (strict JSON already)."""
    return write_json_and_html(results, render_study_report(results), out)
