"""Lones' checklist for this experiment: the data checks of each dataset (leakage, preprocessing,
baselines, imbalance) and the test-split log the trials kept, after the statistics' own checks (which
the summary section made on the comparisons: baseline variant, enough seeds, power, corrections)."""

from __future__ import annotations

from slimlab.analysis.view import RunView
from slimlab.errors import SlimlabError
from slimlab.evaluate.pitfalls import TestSetLog, run_checks


def pitfalls_section(view: RunView, results: dict) -> dict:
    trials = view.trial_dicts
    log = TestSetLog([o for t in view.trials for o in (t.test_openings or [])])
    ev = view.config.evaluate
    out: list[dict] = []
    for data_config in view.config.data:
        try:
            dataset = view.dataset(data_config)
        except SlimlabError as e:  # e.g. data handed to slimlab.compress in another process
            out.append(
                {
                    "check": "data checks",
                    "status": "warn",
                    "dataset": data_config.name,
                    "detail": f"the data could not be loaded in this process; its checks were skipped: {e}",
                }
            )
            continue
        checks = run_checks(dataset, trials, ev.baseline, alpha=ev.alpha, test_log=log, table_checks=False)
        out += [{**c, "dataset": dataset.name} for c in checks]
    return {"pitfalls": out + results.get("pitfalls", [])}
