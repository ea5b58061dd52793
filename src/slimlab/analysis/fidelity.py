"""Fidelity to the dense parent, across seeds: each treated variant's outputs on the validation inputs
against its dense parent's (the trials' `fidelity` records, evaluate/fidelity.py), and the headline flags
of the variants that diverged. The report shows the flags before any verdict: a treatment that corrupts
the outputs makes its other numbers moot. Rendered by `report.html` (the `fidelity` renderer)."""

from __future__ import annotations

from slimlab.analysis.view import RunView
from slimlab.evaluate.fidelity import fidelity_summary


def fidelity_section(view: RunView, results: dict) -> dict:
    fidelity = fidelity_summary(view.trial_dicts)
    if not fidelity["variants"]:
        return {}
    return {"fidelity": fidelity, "headline_flags": [{"kind": "fidelity", **f} for f in fidelity["flags"]]}
