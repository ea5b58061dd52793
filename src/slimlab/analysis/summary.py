"""Summary and comparisons: per (dataset, variant) the mean accuracy with its t interval over seeds and
the mean costs; each variant against the baseline, paired by seed (`slimlab.stats.compare_scores`), with
the measured speedups; the Pareto front per dataset."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from slimlab.analysis.metric import SEED_METRICS, metric_comparisons, metric_summary, uses_metric_path
from slimlab.analysis.view import RunView
from slimlab.bench import records as bench_records
from slimlab.bench.stability import latency_flags, unstable_variants
from slimlab.experiment.record import TrialRecord
from slimlab.stats import compare_scores, mean_ci, rows_from_trials
from slimlab.stats.bounded import bounded_mean_ci


def latency_p50(trial: TrialRecord, batch_size: int, backend: str = "eager") -> float | None:
    """The p50 latency of the single-stream scenario at `batch_size`."""
    return bench_records.p50_ms(trial.bench, "single-stream", batch_size, backend)


def throughput(trial: TrialRecord, batch_size: int, backend: str = "eager") -> float | None:
    return bench_records.throughput(trial.bench, batch_size, backend)


def mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def geomean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(vals)))) if vals else None


def ratio_ci(ratios: list[float], alpha: float) -> tuple[float | None, list[float | None]]:
    """Geometric mean of paired ratios and its t interval, computed on the logs: a speedup is an estimate
    with its own uncertainty (timings of tiny models vary by 10% from trial to trial)."""
    logs = [math.log(r) for r in ratios if r and r > 0 and math.isfinite(r)]
    if not logs:
        return None, [None, None]
    m, (lo, hi) = mean_ci(logs, 1 - alpha)
    return math.exp(m), [math.exp(lo) if lo == lo else None, math.exp(hi) if hi == hi else None]


def _backends(trials: list[TrialRecord], latency_batch: int, throughput_batch: int) -> dict[str, dict]:
    """Per backend, over the seeds: mean p50 latency, offline throughput, validation accuracy, and the
    reasons it was skipped or flagged, if it was."""
    out: dict[str, dict] = {}
    names = dict.fromkeys(r["backend"] for t in trials for r in t.bench)
    for name in names:
        records = [r for t in trials for r in t.bench if r["backend"] == name]
        skipped = sorted({r.get("reason", "") for r in records if r.get("status") == "skipped"})
        accuracy = [
            r["accuracy"] for r in records if r.get("status") == "ok" and r.get("accuracy") is not None
        ]
        out[name] = {
            "latency_p50_ms": mean([latency_p50(t, latency_batch, name) for t in trials]),
            "throughput_per_s": mean([throughput(t, throughput_batch, name) for t in trials]),
            "val_accuracy": mean(accuracy),
            "accuracy_flagged": any(r.get("accuracy_flagged") for r in records),
            "skipped": skipped,
        }
    return out


def summarize(
    trials: list[TrialRecord],
    *,
    latency_batch: int,
    throughput_batch: int,
    alpha: float,
    metric: str = "accuracy",
) -> list[dict]:
    """One row per (dataset, variant): mean accuracy with its t interval over seeds, and mean costs."""
    rows = []
    by_key: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for t in trials:
        by_key[(t.dataset, t.variant)].append(t)
    for (dataset, variant), group in by_key.items():
        ok = [t for t in group if t.status == "ok"]
        # Accuracy lies in [0, 1]: the logit-t interval over seeds (stats.bounded), not a plain t interval
        # that two seeds stretch to [-56%, 82%]. A model without class labels (an encoder scored by
        # fidelity, a regressor) has no accuracy.
        scores = [t.metrics["accuracy"] for t in ok if t.metrics.get("accuracy") is not None]
        n_test = next((t.metrics.get("n_test") for t in ok if t.metrics.get("n_test")), None)
        if scores:
            accuracy, ci, ci_method = bounded_mean_ci(scores, 1 - alpha, 0, 1, n_test)
        else:
            accuracy, ci, ci_method = None, (None, None), None
        extra = {}
        if metric in SEED_METRICS and metric != "accuracy":  # e.g. a click model's AUC, with its interval
            value, value_ci = mean_ci([t.metrics[metric] for t in ok if metric in t.metrics], 1 - alpha)
            extra[metric] = {"mean": value, "ci": list(value_ci)}
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "n_ok": len(ok),
                "n_failed": len(group) - len(ok),
                "accuracy": {"mean": accuracy, "ci": list(ci), "ci_method": ci_method},
                "latency_p50_ms": mean([latency_p50(t, latency_batch) for t in ok]),
                "latency_batch_size": latency_batch,
                "throughput_per_s": mean([throughput(t, throughput_batch) for t in ok]),
                "throughput_batch_size": throughput_batch,
                "params": mean([t.metrics["params"] for t in ok]),
                "nonzero_params": mean([t.metrics["nonzero_params"] for t in ok]),
                "size_bytes": mean([t.metrics["size_bytes"] for t in ok]),
                "size_compressed_bytes": mean([t.metrics["size_compressed_bytes"] for t in ok]),
                "flops": mean([t.metrics["flops"] for t in ok]),
                "backends": _backends(ok, latency_batch, throughput_batch),
                **extra,
            }
        )
    return rows


def compare(
    trials: list[TrialRecord],
    *,
    baseline: str,
    margin: float,
    alpha: float,
    latency_batch: int,
    throughput_batch: int,
    metric: str = "accuracy",
) -> dict:
    """Each variant against the baseline on accuracy, paired by seed (slimlab.stats.compare_scores: the
    test chosen by the design, with its reason, power and equivalence; Holm across the experiment), with
    the measured speedups added. Returns compare_scores' dict."""
    rows = rows_from_trials([t.to_dict() for t in trials], metric)
    if not rows:
        return {"comparisons": [], "ranking": {}, "pitfalls": []}
    out = compare_scores(rows, baseline, margin=margin, alpha=alpha, design="seeds")
    index = {(t.dataset, t.variant, t.seed): t for t in trials if t.status == "ok"}
    for c in out["comparisons"]:
        c["metric"] = metric
        pairs = [
            (index[(c["dataset"], c["variant"], s)], index[(c["dataset"], c["baseline"], s)])
            for s in c["runs"]
            if (c["dataset"], c["variant"], s) in index and (c["dataset"], c["baseline"], s) in index
        ]
        c["seeds"] = [a.seed for a, _ in pairs]
        latency = [(latency_p50(a, latency_batch), latency_p50(b, latency_batch)) for a, b in pairs]
        rate = [(throughput(a, throughput_batch), throughput(b, throughput_batch)) for a, b in pairs]
        # Ratios paired by seed, summarised by their geometric mean (eager, the variant's own backend).
        c["speedup"], c["speedup_ci"] = ratio_ci([b / a for a, b in latency if a and b], alpha)
        c["speedup_batch_size"] = latency_batch
        c["throughput_ratio"] = geomean([a / b for a, b in rate if a and b])
        c["throughput_batch_size"] = throughput_batch
    return out


def _quality(row: dict) -> float | None:
    """The row's score, oriented so that higher is better: the experiment's metric where it has one."""
    metric = row.get("metric")
    if metric and metric.get("mean") is not None:
        return metric["mean"] if metric["higher_is_better"] else -metric["mean"]
    return row["accuracy"]["mean"]


def _add_speedups(
    comparisons: list[dict], trials: list[TrialRecord], latency_batch: int, alpha: float
) -> None:
    index = {(t.dataset, t.variant, t.seed): t for t in trials if t.status == "ok"}
    for c in comparisons:
        pairs = [
            (index[(c["dataset"], c["variant"], s)], index[(c["dataset"], c["baseline"], s)])
            for s in c["seeds"]
        ]
        latency = [(latency_p50(a, latency_batch), latency_p50(b, latency_batch)) for a, b in pairs]
        c["speedup"], c["speedup_ci"] = ratio_ci([b / a for a, b in latency if a and b], alpha)
        c["speedup_batch_size"] = latency_batch


def pareto_front(rows: list[dict]) -> list[str]:
    """Variants not dominated on (score up, latency down): no other is at least as good on both and
    better on one."""
    points = [
        (r["variant"], _quality(r), r["latency_p50_ms"])
        for r in rows
        if r["n_ok"] and r["latency_p50_ms"] is not None and _quality(r) is not None
    ]
    front = []
    for name, acc, lat in points:
        dominated = any(a >= acc and b <= lat and (a > acc or b < lat) for _, a, b in points)
        if not dominated:
            front.append(name)
    return front


def summary_section(view: RunView, results: dict) -> dict:
    ev, bench = view.config.evaluate, view.config.bench
    summary = summarize(
        view.trials,
        latency_batch=bench.latency_batch_size,
        throughput_batch=bench.throughput_batch_size,
        alpha=ev.alpha,
        metric=ev.metric,
    )
    config = view.config.to_dict()
    metric_path = uses_metric_path(config)
    if metric_path:
        # The experiment's own metric (its direction and range), paired per test sample for a pretrained
        # model; the accuracy table stays for classifiers.
        by_metric = metric_summary(view.trial_dicts, config)
        for row in summary:
            row["metric"] = by_metric.get((row["dataset"], row["variant"]))
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in summary:
        by_dataset[row["dataset"]].append(row)
    # Unstable latencies (bench.stability) are not ranked: they are left off the front and flagged.
    flags = latency_flags(view.trial_dicts, bench.latency_batch_size)
    pareto_by_dataset = {
        d: pareto_front([r for r in rows if r["variant"] not in unstable_variants(flags, d)])
        for d, rows in by_dataset.items()
    }
    if metric_path:
        stats = {"comparisons": metric_comparisons(view.trial_dicts, config), "ranking": {}, "pitfalls": []}
        _add_speedups(stats["comparisons"], view.trials, bench.latency_batch_size, ev.alpha)
    else:
        stats = compare(
            view.trials,
            baseline=ev.baseline,
            margin=ev.margin,
            alpha=ev.alpha,
            latency_batch=bench.latency_batch_size,
            throughput_batch=bench.throughput_batch_size,
            metric=ev.metric,
        )
    out = {
        "summary": summary,
        "comparisons": stats["comparisons"],
        "ranking": stats["ranking"],
        "pareto": list(dict.fromkeys(v for front in pareto_by_dataset.values() for v in front)),
        "pareto_by_dataset": pareto_by_dataset,
        "pitfalls": stats["pitfalls"],  # the statistics' own checks; the pitfalls section adds the data's
        "latency_flags": flags,
    }
    if metric_path:
        out["metric_path"] = True
    return out
