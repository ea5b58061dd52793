"""The lottery-ticket section of a report: per-round accuracies across seeds, the curve of test accuracy
against the fraction of weights remaining, and the sparsity at which a ticket stops matching dense.

Input: trial records (dicts with `variant`, `seed`, `status` and `artifacts["lottery"]`, as the runner
stores them). Round 0 of every arm is the trained dense parent of that seed, so the dense reference and the
paired differences (ticket - dense, per seed) come from the records themselves.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from slimlab.report.plots import _png
from slimlab.stats import mean_ci, verdict_from_ci

CONTROL_LABELS = {"none": "IMP ticket", "reinit": "random reinit", "random_prune": "random pruning"}
CONTROL_COLORS = {"none": "tab:blue", "reinit": "tab:orange", "random_prune": "tab:green"}


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
        deltas = [r["test_accuracy"] - dense[seed] for seed, r in entries]
        delta, (lo, hi) = mean_ci(deltas, confidence)
        rounds.append(
            {
                "round": rnd,
                "remaining_fraction": sum(r["remaining_fraction"] for _, r in entries) / len(entries),
                "delta": delta,
                "ci": [lo, hi],
                "verdict": verdict_from_ci((lo, hi), margin),
                "matches": bool(lo > -margin),  # False when the CI is unknown (one seed)
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


def lottery_plot(trials: list[dict], title: str = "Lottery tickets", confidence: float = 0.95) -> str | None:
    """Test accuracy (mean and CI band over seeds) against the percentage of weights remaining (log x,
    decreasing to the right as pruning proceeds), one line per arm, and the dense parents' accuracy."""
    rows = lottery_table(trials, confidence)
    if not rows:
        return None
    fig = Figure(figsize=(6.8, 4.2))
    ax = fig.add_subplot()
    for arm in dict.fromkeys(r["arm"] for r in rows):
        points = [r for r in rows if r["arm"] == arm]
        control = points[0]["control"]
        x = [100 * r["remaining_fraction"] for r in points]
        mean = [r["test_accuracy"]["mean"] for r in points]
        color = CONTROL_COLORS.get(control)
        ax.plot(
            x,
            mean,
            marker="o",
            markersize=3,
            color=color,
            label=f"{arm} ({CONTROL_LABELS.get(control, control)})",
        )
        lo = [r["test_accuracy"]["ci"][0] for r in points]
        hi = [r["test_accuracy"]["ci"][1] for r in points]
        if not any(math.isnan(v) for v in lo + hi):
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
    dense = dense_accuracy(trials, confidence)
    ax.axhline(
        dense["mean"], color="black", linestyle="--", linewidth=1, label=f"dense ({dense['n_seeds']} seeds)"
    )
    if not any(math.isnan(v) for v in dense["ci"]):
        ax.axhspan(*dense["ci"], color="black", alpha=0.08, linewidth=0)
    ax.set_xscale("log")
    lowest = min(100 * r["remaining_fraction"] for r in rows)
    ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if t >= lowest * 0.9]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel(f"test accuracy (mean, {round(100 * confidence)}% CI over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def lottery_summary(trials: list[dict], margin: float = 0.01, confidence: float = 0.95) -> dict[str, Any]:
    """Everything above, JSON-able, for results.json and the HTML report."""
    arms = _arms(trials)
    return {
        "table": lottery_table(trials, confidence),
        "dense": dense_accuracy(trials, confidence) if arms else None,
        "limits": [ticket_limit(trials, arm, margin, confidence) for arm in arms],
        "test_use": "report-only",
    }


def lottery_markdown(trials: list[dict], margin: float = 0.01, confidence: float = 0.95) -> str:
    """A markdown table (remaining %, then each arm's mean test accuracy [CI]) and one line per arm saying
    where it stops matching dense; for BENCHMARKS.md."""
    rows = lottery_table(trials, confidence)
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    rounds = sorted({r["round"] for r in rows})
    cell = {(r["arm"], r["round"]): r for r in rows}

    def fmt(r: dict | None) -> str:
        if r is None:
            return ""
        m, (lo, hi) = r["test_accuracy"]["mean"], r["test_accuracy"]["ci"]
        return f"{100 * m:.1f}" + ("" if math.isnan(lo) else f" [{100 * lo:.1f}, {100 * hi:.1f}]")

    lines = ["| round | weights left | " + " | ".join(arms) + " |", "|---" * (len(arms) + 2) + "|"]
    for rnd in rounds:
        left = next(cell[(a, rnd)]["remaining_fraction"] for a in arms if (a, rnd) in cell)
        lines.append(
            f"| {rnd} | {100 * left:.1f}% | " + " | ".join(fmt(cell.get((a, rnd))) for a in arms) + " |"
        )
    lines.append("")
    for arm in arms:
        limit = ticket_limit(trials, arm, margin, confidence)
        if limit["last_matching_round"] is None:
            matched = f"not shown to match dense (CI of the difference above -{margin}) even at round 1"
        else:
            matched = (
                f"matches dense (CI of the difference above -{margin}) down to "
                f"{100 * limit['last_matching_remaining_fraction']:.1f}% of the weights "
                f"(round {limit['last_matching_round']}; matching rounds: {limit['matching_rounds']})"
            )
        if limit["first_inferior_round"] is None:
            worse = "never shown to be worse"
        else:
            left, rnd = 100 * limit["first_inferior_remaining_fraction"], limit["first_inferior_round"]
            worse = f"shown to be worse (CI below -{margin}) from {left:.1f}% (round {rnd})"
        lines.append(f"- {arm}: {matched}; {worse}.")
    return "\n".join(lines)
