"""results.json: trials, per-variant summaries with intervals, paired comparisons with verdicts, the Pareto
front. Built from trial records alone, so that it can be rebuilt at any time (`slimlab report DIR`)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

import slimlab
from slimlab.stats import holm, mean_ci, paired_comparison


def _latency_p50(trial: dict, batch_size: int) -> float | None:
    for record in trial.get("bench", []):
        if record["backend"] == "eager" and record["batch_size"] == batch_size:
            return record["latency_ms"]["p50"]
    return None


def _throughput(trial: dict, batch_size: int) -> float | None:
    for record in trial.get("bench", []):
        if record["backend"] == "eager" and record["batch_size"] == batch_size:
            return record["throughput_per_s"]
    return None


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(vals)))) if vals else None


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
            }
        )
    return rows


def compare(trials: list[dict], config: dict) -> list[dict]:
    """Each variant against the baseline on accuracy, paired by seed, Holm-adjusted across the experiment."""
    ev = config["evaluate"]
    latency_batch = config["bench"]["latency_batch_size"]
    throughput_batch = config["bench"]["throughput_batch_size"]
    ok = [t for t in trials if t["status"] == "ok"]
    index = {(t["dataset"], t["variant"], t["seed"]): t for t in ok}
    out = []
    for dataset in dict.fromkeys(t["dataset"] for t in trials):
        for variant in dict.fromkeys(t["variant"] for t in trials):
            if variant == ev["baseline"]:
                continue
            seeds = sorted(
                s
                for (d, v, s) in index
                if d == dataset and v == variant and (dataset, ev["baseline"], s) in index
            )
            pairs = [(index[(dataset, variant, s)], index[(dataset, ev["baseline"], s)]) for s in seeds]
            result = paired_comparison(
                [a["metrics"]["accuracy"] for a, _ in pairs],
                [b["metrics"]["accuracy"] for _, b in pairs],
                margin=ev["margin"],
                alpha=ev["alpha"],
            )
            speedups = [
                _latency_p50(b, latency_batch) / _latency_p50(a, latency_batch)
                for a, b in pairs
                if _latency_p50(a, latency_batch) and _latency_p50(b, latency_batch)
            ]
            gains = [
                _throughput(a, throughput_batch) / _throughput(b, throughput_batch)
                for a, b in pairs
                if _throughput(a, throughput_batch) and _throughput(b, throughput_batch)
            ]
            out.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "baseline": ev["baseline"],
                    "metric": "accuracy",
                    "seeds": seeds,
                    **result.to_dict(),
                    # Ratios paired by seed, summarised by their geometric mean.
                    "speedup": _geomean(speedups),
                    "speedup_batch_size": latency_batch,
                    "throughput_ratio": _geomean(gains),
                    "throughput_batch_size": throughput_batch,
                }
            )
    for row, adjusted in zip(out, holm([c["p_value"] for c in out]), strict=True):
        row["p_adjusted"] = adjusted
        row["correction"] = "holm"
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


def build_results(config: dict, trials: list[dict], environment: dict) -> dict:
    summary = summarize(trials, config)
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in summary:
        by_dataset[row["dataset"]].append(row)
    pareto_by_dataset = {d: pareto_front(rows) for d, rows in by_dataset.items()}
    return {
        "slimlab_version": slimlab.__version__,
        "experiment": {"name": config["name"], "config": config},
        "environment": environment,
        "trials": trials,
        "summary": summary,
        "comparisons": compare(trials, config),
        "pareto": list(dict.fromkeys(v for front in pareto_by_dataset.values() for v in front)),
        "pareto_by_dataset": pareto_by_dataset,
    }
