"""Fidelity to the dense parent, across seeds: each treated variant's outputs on the validation inputs
against its dense parent's (the trials' `fidelity` records, evaluate/fidelity.py), and a flag for each
variant that diverged. The headline (analysis/headline.py) lists the flags first among its alerts and
recommends no diverged variant: a treatment that corrupts the outputs makes its other numbers moot."""

from __future__ import annotations

from slimlab.analysis.view import RunView
from slimlab.evaluate.fidelity import fidelity_summary


def fidelity_section(view: RunView, results: dict) -> dict:
    fidelity = fidelity_summary(view.trial_dicts)
    if not fidelity["variants"]:
        return {}
    return {"fidelity": fidelity}
