"""A study's results.json: the config, the environment, every cell's curves and the study's analysis with
the paper's claims checked. `analyze_study` picks the study's analysis by its `type` (`STUDY_ANALYSES`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slimlab import __version__
from slimlab.analysis import deep_bootstrap, switch_moe
from slimlab.bench.environment import environment
from slimlab.registry import Registry

if TYPE_CHECKING:
    from slimlab.studies import StudyFile

STUDY_ANALYSES: Registry[Callable[[Any, list[dict]], dict]] = Registry("study analysis")
STUDY_ANALYSES.register("deep_bootstrap")(deep_bootstrap.analyze)
STUDY_ANALYSES.register("switch_moe")(switch_moe.analyze)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover (not on every platform)
        return None


def _pitfalls(seeds: int) -> list[dict]:
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


def analyze_study(study: StudyFile, records: list[dict]) -> dict:
    env = environment()
    env["threads"] = study.threads  # what the study ran with (run_study restores the caller's count)
    env["load_average_1min"] = load_average()
    analysis = STUDY_ANALYSES.get(study.study.type, where="study.type")(study.study, records)
    return {
        "slimlab_version": __version__,
        "experiment": {"name": study.name, "kind": "study", "config": study.to_dict()},
        "environment": env,
        "study": analysis,
        "cells": records,
        "trials": [],
        "comparisons": [],
        "pitfalls": _pitfalls(study.study.seeds),
    }
