"""Experiments: grid expansion and the local runner."""

from slimlab.experiment.grid import TrialSpec, expand, trial_id
from slimlab.experiment.runner import load_run, run_experiment
from slimlab.experiment.store import Store

__all__ = ["Store", "TrialSpec", "expand", "load_run", "run_experiment", "trial_id"]
