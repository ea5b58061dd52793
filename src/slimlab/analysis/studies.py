"""A study's results.json: the config, the environment, every cell's curves and the study's analysis with
the paper's claims checked. `analyze_study` picks the study's analysis by its `type`, from
`analysis.sections.STUDY_SECTIONS`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from slimlab import __version__
from slimlab.analysis.jsonable import jsonable
from slimlab.analysis.sections import STUDY_SECTIONS
from slimlab.bench.environment import environment

if TYPE_CHECKING:
    from slimlab.studies import StudyFile


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
    """results.json of a study, strict JSON (a value that could not be computed is None)."""
    env = environment()
    env["threads"] = study.threads  # what the study ran with (run_study restores the caller's count)
    env["load_average_1min"] = load_average()
    analysis = STUDY_SECTIONS.get(study.study.type, where="study.type")(study.study, records)
    return jsonable(
        {
            "slimlab_version": __version__,
            "experiment": {"name": study.name, "kind": "study", "config": study.to_dict()},
            "environment": env,
            "study": analysis,
            "cells": records,
            "trials": [],
            "comparisons": [],
            "pitfalls": _pitfalls(study.study.seeds),
        }
    )
