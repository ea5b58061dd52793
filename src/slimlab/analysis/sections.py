"""The one list of analysis sections, in the order they run. A section is a name and a function of the
`RunView` and the results computed before it; it returns the top-level keys it adds to results.json
(JSON-able values), or an empty dict when it does not apply to this run. A new section is one module in
`slimlab.analysis` plus one line here, and (if it shows in report.html) one renderer registered under
the same name in `slimlab.report.html.RENDERERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slimlab.analysis import (
    clicks,
    deep_bootstrap,
    fairness,
    fidelity,
    headline,
    learning_curve,
    lottery,
    pitfalls,
    search,
    sensitivity,
    summary,
    switch_moe,
)
from slimlab.analysis.view import RunView
from slimlab.registry import Registry

Compute = Callable[[RunView, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Section:
    name: str
    compute: Compute
    doc: str = ""


SECTIONS: list[Section] = [
    Section("summary", summary.summary_section, "per-variant summaries, paired comparisons, Pareto"),
    Section("pitfalls", pitfalls.pitfalls_section, "the data's checks, after the statistics' own"),
    Section("fidelity", fidelity.fidelity_section, "treated variants' outputs against their dense parent"),
    Section("fairness", fairness.fairness_analysis, "per-group audits of datasets that define groups"),
    Section("lottery", lottery.lottery_analysis, "lottery rounds; where each arm stops matching dense"),
    Section("search", search.search_analysis, "the accuracy-aware search's decision (reads fairness)"),
    Section("clicks", clicks.clicks_analysis, "click metrics and a DLRM's lookup / MLP time split"),
    Section(
        "learning_curves",
        learning_curve.learning_curve_analysis,
        "accuracy against n per recipe; each recipe's data multiplier against scratch",
    ),
    Section("sensitivity", sensitivity.sensitivity_section, "per-node int8 sensitivity across seeds"),
    Section("headline", headline.headline_section, "the recommendation and every alert (reads all above)"),
]

# A study (a `kind = "study"` file, slimlab.studies) is not a grid of trials: each study type has one
# analysis, of its config and its cells' records, which returns the results' `study` key. Its figures are
# registered under the same name in `slimlab.report.studies.STUDY_FIGURES`.
StudyAnalysis = Callable[[Any, list[dict]], dict[str, Any]]
STUDY_SECTIONS: Registry[StudyAnalysis] = Registry("study analysis")
STUDY_SECTIONS.register(
    "deep_bootstrap",
    deep_bootstrap.analyze,
    description="Real and Ideal World curves, the bootstrap gap, the table at convergence, the claims",
)
STUDY_SECTIONS.register(
    "switch_moe",
    switch_moe.analyze,
    description="quality against steps and time, speedups, expert load, dropped tokens, the claims",
)
