"""The lottery-ticket section: per-round accuracies across seeds, and the sparsity at which a ticket stops
matching dense (its curve and table are drawn by `slimlab.report.lottery`).

Input: trial records (dicts with `variant`, `seed`, `status` and `artifacts["lottery"]`, as the runner
stores them). Round 0 of every arm is the trained dense parent of that seed, so the dense reference and the
paired differences (ticket - dense, per seed) come from the records themselves.
"""

from __future__ import annotations

from typing import Any

from slimlab.analysis.view import RunView
from slimlab.stats import mean_ci, paired_comparison


def _arms(trials: list[dict]) -> dict[str, list[dict]]:
    """Variant name -> the lottery records of its successful trials, one per seed, in seed order."""
    arms: dict[str, list[dict]] = {}
    for t in sorted(trials, key=lambda t: t["seed"]):
        lottery = (t.get("artifacts") or {}).get("lottery")
        if t.get("status", "ok") == "ok" and lottery:
            arms.setdefault(t["variant"], []).append({"seed": t["seed"], **lottery})
    return arms


def _by_round(records: list[dict]) -> dict[int, list[tuple[int, dict]]]:
    rounds: dict[int, list[tuple[int, dict]]] = {}
    for rec in records:
        for r in rec["rounds"]:
            rounds.setdefault(r["round"], []).append((rec["seed"], r))
    return dict(sorted(rounds.items()))


def _ci(values: list[float], confidence: float) -> dict[str, Any]:
    mean, (lo, hi) = mean_ci(values, confidence)
    return {"mean": mean, "ci": [lo, hi]}


def lottery_table(trials: list[dict], confidence: float = 0.95) -> list[dict]:
    """One row per arm and round: remaining fraction, seeds, and mean test (and validation) accuracy with a
    Student-t CI over seeds."""
    rows = []
    for arm, records in _arms(trials).items():
        for rnd, entries in _by_round(records).items():
            rows.append(
                {
                    "arm": arm,
                    "control": records[0]["control"],
                    "round": rnd,
                    "remaining_fraction": sum(r["remaining_fraction"] for _, r in entries) / len(entries),
                    "n_seeds": len(entries),
                    "test_accuracy": _ci([r["test_accuracy"] for _, r in entries], confidence),
                    "val_accuracy": _ci([r["val_accuracy"] for _, r in entries], confidence),
                }
            )
    return rows


def dense_accuracy(trials: list[dict], confidence: float = 0.95) -> dict[str, Any]:
    """The dense parents' test accuracy (round 0), one value per seed, with its CI."""
    per_seed: dict[int, float] = {}
    for records in _arms(trials).values():
        for rec in records:
            per_seed.setdefault(rec["seed"], rec["rounds"][0]["test_accuracy"])
    return {"n_seeds": len(per_seed), **_ci(list(per_seed.values()), confidence)}


def ticket_limit(
    trials: list[dict], arm: str, margin: float = 0.01, confidence: float = 0.95
) -> dict[str, Any]:
    """Where `arm` stops matching dense. Per round, the paired difference (arm - dense parent of the same
    seed) in test accuracy, with its CI and slimlab's verdict: a round matches (superior or non-inferior)
    when the CI's lower end is above -margin, and is inferior when its upper end is below -margin.
    `last_matching_round` is the last round of the unbroken run of matches from round 1 (None: round 1 is
    not shown to match, e.g. with few seeds); `matching_rounds` lists every matching round, since a ticket
    can match again after a dip; `first_inferior_round` is where it is shown to be worse. With few seeds
    the rounds between the two are inconclusive, and both ends should be read together."""
    records = _arms(trials).get(arm)
    if not records:
        raise ValueError(f"no lottery records for arm {arm!r}; arms: {', '.join(_arms(trials)) or 'none'}")
    rounds = []
    for rnd, entries in _by_round(records).items():
        if rnd == 0:
            continue
        dense = {rec["seed"]: rec["rounds"][0]["test_accuracy"] for rec in records}
        # The one paired comparison of slimlab.stats (paired t over seeds, its CI, the degenerate-data rule
        # and the verdict rule at alpha/2). Each round is decided alone: `last_matching_round` walks the
        # rounds in their fixed order and stops at the first that does not match, a fixed-sequence
        # procedure that keeps the family-wise error at alpha/2 without a Holm adjustment.
        paired = paired_comparison(
            [r["test_accuracy"] for _, r in entries],
            [dense[seed] for seed, _ in entries],
            margin=margin,
            alpha=1 - confidence,
        )
        lo, hi = paired.ci
        rounds.append(
            {
                "round": rnd,
                "remaining_fraction": sum(r["remaining_fraction"] for _, r in entries) / len(entries),
                "delta": paired.delta,
                "ci": [lo, hi],
                "verdict": paired.verdict,
                # False with one seed, or degenerate data (no spread over seeds, fewer than 3 seeds)
                "matches": paired.verdict in ("superior", "non-inferior"),
                "inconclusive_reason": paired.reason,
            }
        )
    last = None
    for r in rounds:
        if not r["matches"]:
            break
        last = r
    first_inferior = next((r for r in rounds if r["verdict"] == "inferior"), None)
    return {
        "arm": arm,
        "control": records[0]["control"],
        "margin": margin,
        "confidence": confidence,
        "rounds": rounds,
        "last_matching_round": last["round"] if last else None,
        "last_matching_remaining_fraction": last["remaining_fraction"] if last else None,
        "first_inferior_round": first_inferior["round"] if first_inferior else None,
        "first_inferior_remaining_fraction": first_inferior["remaining_fraction"] if first_inferior else None,
        "matching_rounds": [r["round"] for r in rounds if r["matches"]],
    }


def lottery_summary(trials: list[dict], margin: float = 0.01, confidence: float = 0.95) -> dict[str, Any]:
    """Everything above, JSON-able, for results.json and the HTML report."""
    arms = _arms(trials)
    return {
        "table": lottery_table(trials, confidence),
        "dense": dense_accuracy(trials, confidence) if arms else None,
        "limits": [ticket_limit(trials, arm, margin, confidence) for arm in arms],
        "test_use": "report-only",
    }


def lottery_analysis(view: RunView, results: dict) -> dict:
    if not any((t.artifacts or {}).get("lottery") for t in view.trials):
        return {}
    ev = view.config.evaluate
    return {"lottery": lottery_summary(view.trial_dicts, margin=ev.margin, confidence=1 - ev.alpha)}
