"""The analysis layer: turns a run (its typed config, trial records and environment) into conclusions.

    analysis = analyze(config, trials, environment)
    analysis.results            # results.json, strict JSON
    slimlab.report.render_report(analysis)

Each section (summary and comparisons, pitfalls, fairness, lottery, search, ...) is a function of a
`RunView`, registered once in `slimlab.analysis.sections`; `analyze` runs them in order. Nothing here
draws or writes HTML: `slimlab.report` renders an `Analysis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import slimlab
from slimlab.analysis.jsonable import jsonable
from slimlab.analysis.sections import SECTIONS, Section
from slimlab.analysis.view import RunView
from slimlab.config import ExperimentConfig
from slimlab.experiment.record import TrialRecord

__all__ = ["SECTIONS", "Analysis", "RunView", "Section", "analyze", "jsonable"]


@dataclass(frozen=True)
class Analysis:
    config: ExperimentConfig
    trials: list[TrialRecord]
    environment: dict
    results: dict[str, Any]  # results.json: strict JSON (NaN already None)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def baseline(self) -> str:
        return self.config.evaluate.baseline

    @property
    def confidence(self) -> float:
        return 1 - self.config.evaluate.alpha


def analyze(config: ExperimentConfig, trials: list[TrialRecord], env: dict | None = None) -> Analysis:
    """Run every registered section on the run, in order, and assemble results.json."""
    view = RunView(config, list(trials), dict(env or {}))
    computed: dict[str, Any] = {}
    for s in SECTIONS:
        computed.update(s.compute(view, computed))
    results = {
        "slimlab_version": slimlab.__version__,
        "experiment": {"name": config.name, "config": config.to_dict()},
        "environment": view.environment,
        "trials": view.trial_dicts,
        **computed,
    }
    return Analysis(config, view.trials, view.environment, jsonable(results))
