"""Experiments: grid expansion and the local runner."""

from slimlab.experiment.grid import TrialSpec, expand, trial_id
from slimlab.experiment.runner import load_trials, run_experiment

__all__ = ["TrialSpec", "expand", "load_trials", "run_experiment", "trial_id"]
