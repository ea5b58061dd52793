"""results.json: trials, per-variant summaries with intervals, paired comparisons with verdicts, the Pareto
front. Built from trial records alone, so that it can be rebuilt at any time (`slimlab report DIR`)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

import slimlab
from slimlab.stats import compare_scores, mean_ci, rows_from_trials


def _bench(trial: dict, scenario: str, batch_size: int, backend: str = "eager") -> dict | None:
    for record in trial.get("bench", []):
        if (
            record.get("status", "ok") == "ok"
            and record["backend"] == backend
            and record.get("scenario", scenario) == scenario
            and record["batch_size"] == batch_size
        ):
            return record
    return None


def _latency_p50(trial: dict, batch_size: int, backend: str = "eager") -> float | None:
    record = _bench(trial, "single-stream", batch_size, backend)
    return record["latency_ms"]["p50"] if record else None


def _throughput(trial: dict, batch_size: int, backend: str = "eager") -> float | None:
    record = _bench(trial, "offline", batch_size, backend)
    return record["throughput_per_s"] if record else None


def _backends(trials: list[dict], latency_batch: int, throughput_batch: int) -> dict[str, dict]:
    """Per backend, over the seeds: mean p50 latency, offline throughput, validation accuracy, and the
    reasons it was skipped or flagged, if it was."""
    out: dict[str, dict] = {}
    names = dict.fromkeys(r["backend"] for t in trials for r in t.get("bench", []))
    for name in names:
        records = [r for t in trials for r in t.get("bench", []) if r["backend"] == name]
        skipped = sorted({r.get("reason", "") for r in records if r.get("status") == "skipped"})
        accuracy = [
            r["accuracy"] for r in records if r.get("status") == "ok" and r.get("accuracy") is not None
        ]
        out[name] = {
            "latency_p50_ms": _mean([_latency_p50(t, latency_batch, name) for t in trials]),
            "throughput_per_s": _mean([_throughput(t, throughput_batch, name) for t in trials]),
            "val_accuracy": _mean(accuracy),
            "accuracy_flagged": any(r.get("accuracy_flagged") for r in records),
            "skipped": skipped,
        }
    return out


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(vals)))) if vals else None


def _ratio_ci(ratios: list[float], alpha: float) -> tuple[float | None, list[float | None]]:
    """Geometric mean of paired ratios and its t interval, computed on the logs: a speedup is an estimate
    with its own uncertainty (timings of tiny models vary by 10% from trial to trial)."""
    logs = [math.log(r) for r in ratios if r and r > 0 and math.isfinite(r)]
    if not logs:
        return None, [None, None]
    mean, (lo, hi) = mean_ci(logs, 1 - alpha)
    return math.exp(mean), [math.exp(lo) if lo == lo else None, math.exp(hi) if hi == hi else None]


def summarize(trials: list[dict], config: dict) -> list[dict]:
    """One row per (dataset, variant): mean accuracy with its t interval over seeds, and mean costs."""
    latency_batch = config["bench"]["latency_batch_size"]
    throughput_batch = config["bench"]["throughput_batch_size"]
    alpha = config["evaluate"]["alpha"]
    rows = []
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in trials:
        by_key[(t["dataset"], t["variant"])].append(t)
    for (dataset, variant), group in by_key.items():
        ok = [t for t in group if t["status"] == "ok"]
        accuracy, ci = mean_ci([t["metrics"]["accuracy"] for t in ok], 1 - alpha)
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "n_ok": len(ok),
                "n_failed": len(group) - len(ok),
                "accuracy": {"mean": accuracy, "ci": list(ci)},
                "latency_p50_ms": _mean([_latency_p50(t, latency_batch) for t in ok]),
                "latency_batch_size": latency_batch,
                "throughput_per_s": _mean([_throughput(t, throughput_batch) for t in ok]),
                "throughput_batch_size": throughput_batch,
                "params": _mean([t["metrics"]["params"] for t in ok]),
                "nonzero_params": _mean([t["metrics"]["nonzero_params"] for t in ok]),
                "size_bytes": _mean([t["metrics"]["size_bytes"] for t in ok]),
                "size_compressed_bytes": _mean([t["metrics"]["size_compressed_bytes"] for t in ok]),
                "flops": _mean([t["metrics"]["flops"] for t in ok]),
                "backends": _backends(ok, latency_batch, throughput_batch),
            }
        )
    return rows


def compare(trials: list[dict], config: dict) -> dict:
    """Each variant against the baseline on accuracy, paired by seed (slimlab.stats.compare_scores: the
    test chosen by the design, with its reason, power and equivalence; Holm across the experiment), with
    the measured speedups added. Returns compare_scores' dict."""
    ev = config["evaluate"]
    latency_batch = config["bench"]["latency_batch_size"]
    throughput_batch = config["bench"]["throughput_batch_size"]
    rows = rows_from_trials(trials)
    if not rows:
        return {"comparisons": [], "ranking": {}, "pitfalls": []}
    out = compare_scores(rows, ev["baseline"], margin=ev["margin"], alpha=ev["alpha"], design="seeds")
    index = {(t["dataset"], t["variant"], t["seed"]): t for t in trials if t["status"] == "ok"}
    for c in out["comparisons"]:
        c["metric"] = "accuracy"
        pairs = [
            (index[(c["dataset"], c["variant"], s)], index[(c["dataset"], c["baseline"], s)])
            for s in c["runs"]
            if (c["dataset"], c["variant"], s) in index and (c["dataset"], c["baseline"], s) in index
        ]
        c["seeds"] = [a["seed"] for a, _ in pairs]
        latency = [(_latency_p50(a, latency_batch), _latency_p50(b, latency_batch)) for a, b in pairs]
        rate = [(_throughput(a, throughput_batch), _throughput(b, throughput_batch)) for a, b in pairs]
        # Ratios paired by seed, summarised by their geometric mean (eager, the variant's own backend).
        c["speedup"], c["speedup_ci"] = _ratio_ci([b / a for a, b in latency if a and b], ev["alpha"])
        c["speedup_batch_size"] = latency_batch
        c["throughput_ratio"] = _geomean([a / b for a, b in rate if a and b])
        c["throughput_batch_size"] = throughput_batch
    return out


def pareto_front(rows: list[dict]) -> list[str]:
    """Variants not dominated on (accuracy up, latency down): no other is at least as good on both and
    better on one."""
    points = [
        (r["variant"], r["accuracy"]["mean"], r["latency_p50_ms"])
        for r in rows
        if r["n_ok"] and r["latency_p50_ms"] is not None
    ]
    front = []
    for name, acc, lat in points:
        dominated = any(a >= acc and b <= lat and (a > acc or b < lat) for _, a, b in points)
        if not dominated:
            front.append(name)
    return front


def pitfall_checks(trials: list[dict], config: dict, from_stats: list[dict]) -> list[dict]:
    """Lones' checklist for this experiment: the data checks of each dataset (leakage, preprocessing,
    baselines, imbalance), the test-split log the trials kept, and the statistics' own checks."""
    from slimlab.config import DataConfig
    from slimlab.data import load_dataset
    from slimlab.evaluate.pitfalls import TestSetLog, run_checks

    log = TestSetLog([o for t in trials for o in t.get("test_openings", [])])
    seed = config["evaluate"]["seeds"][0] if isinstance(config["evaluate"]["seeds"], list) else 0
    out: list[dict] = []
    for options in config["data"]:
        dataset = load_dataset(DataConfig.model_validate(options), seed)
        checks = run_checks(
            dataset, trials, config["evaluate"]["baseline"], alpha=config["evaluate"]["alpha"], test_log=log
        )
        out += [{**c, "dataset": dataset.name} for c in checks]
    seen = {(c["check"], c["status"], c["detail"]) for c in out}
    return out + [c for c in from_stats if (c["check"], c["status"], c["detail"]) not in seen]


def build_results(config: dict, trials: list[dict], environment: dict) -> dict:
    from slimlab.config import parse_experiment
    from slimlab.report.fairness import fairness_sections
    from slimlab.report.lottery import lottery_summary

    summary = summarize(trials, config)
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in summary:
        by_dataset[row["dataset"]].append(row)
    pareto_by_dataset = {d: pareto_front(rows) for d, rows in by_dataset.items()}
    stats = compare(trials, config)
    results = {
        "slimlab_version": slimlab.__version__,
        "experiment": {"name": config["name"], "config": config},
        "environment": environment,
        "trials": trials,
        "summary": summary,
        "comparisons": stats["comparisons"],
        "ranking": stats["ranking"],
        "pareto": list(dict.fromkeys(v for front in pareto_by_dataset.values() for v in front)),
        "pareto_by_dataset": pareto_by_dataset,
        "pitfalls": pitfall_checks(trials, config, stats["pitfalls"]),
    }
    fairness = fairness_sections(parse_experiment(config), trials)
    if fairness:
        results["fairness"] = fairness
    if config.get("search"):
        from slimlab.report.search import search_decision

        results["search"] = search_decision(results, config)
    if any(t.get("artifacts", {}).get("lottery") for t in trials):
        ev = config["evaluate"]
        results["lottery"] = lottery_summary(trials, margin=ev["margin"], confidence=1 - ev["alpha"])
    return results
