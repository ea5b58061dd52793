"""Experiments: grid expansion and the local runner.

The names are loaded on first use (PEP 562), so that importing a light submodule such as
`slimlab.experiment.executors` does not import torch through the runner."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slimlab.experiment.grid import TrialSpec, expand, trial_id
    from slimlab.experiment.runner import load_run, run_experiment
    from slimlab.experiment.store import Store

_WHERE = {
    "Store": "slimlab.experiment.store",
    "TrialSpec": "slimlab.experiment.grid",
    "expand": "slimlab.experiment.grid",
    "trial_id": "slimlab.experiment.grid",
    "load_run": "slimlab.experiment.runner",
    "run_experiment": "slimlab.experiment.runner",
}

__all__ = ["Store", "TrialSpec", "expand", "load_run", "run_experiment", "trial_id"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
