"""A study's results.json and report.html."""

from __future__ import annotations

from pathlib import Path

from slimlab import __version__
from slimlab.bench.environment import environment
from slimlab.report.templating import ENV
from slimlab.report.writer import _finite, write_json_and_html
from slimlab.studies import plots
from slimlab.studies.common import load_average


def _pitfalls(study: dict) -> list[dict]:
    seeds = study["study"]["seeds"]
    return [
        {
            "check": "4.4 evaluate many times",
            "status": "pass" if seeds >= 3 else "warn",
            "detail": f"{seeds} seeds per cell; curves show 95% t intervals over seeds"
            + ("" if seeds >= 3 else " (fewer than 3: the intervals are wide or undefined)"),
        },
        {
            "check": "4.1 independent test set",
            "status": "pass",
            "detail": "the test set is its own draw from the generator (a seed no training data uses)",
        },
    ]


def build_study_results(study, records: list[dict], analysis: dict) -> dict:
    env = environment()
    env["threads"] = study.threads  # what the study ran with (run_study restores the caller's count)
    env["load_average_1min"] = load_average()
    config = study.to_dict()
    return {
        "slimlab_version": __version__,
        "experiment": {"name": study.name, "kind": "study", "config": config},
        "environment": env,
        "study": analysis,
        "cells": records,
        "trials": [],
        "comparisons": [],
        "pitfalls": _pitfalls(config),
    }


def figures(results: dict) -> dict[str, str | None]:
    analysis = results["study"]
    if analysis["type"] == "deep_bootstrap":
        return {"curves": plots.deep_bootstrap_curves(analysis), "gap": plots.deep_bootstrap_gap(analysis)}
    return {"curves": plots.switch_curves(analysis), "load": plots.switch_load(analysis)}


def render_study_report(results: dict) -> str:
    return ENV.get_template("study.html.j2").render(r=results, s=results["study"], fig=figures(results))


def write_study_outputs(results: dict, out: Path) -> tuple[Path, Path]:
    clean = _finite(results)
    return write_json_and_html(clean, render_study_report(clean), out)
