"""The accuracy-aware search's decision: the cheapest candidate that is provably no worse.

Intel Neural Compressor tunes until a point estimate of the accuracy loss is within a tolerance. Here:

1. Screening on validation only: a candidate that is confidently worse on the validation split (the upper
   bound of the CI of its paired change of the run's metric on validation, `metrics["val_<metric>"]`, is
   below -margin) is dropped before the test split is consulted (Lones 3.7: select on validation data).
   The metric is accuracy, or the run's own (e.g. a pretrained encoder's cosine fidelity to the dense
   one), oriented so that a positive change is better. A point-estimate screen would drop good
   candidates on a few hundred validation samples; the Holm-controlled test below is the authority.
2. Ranking by cost: the measured p50 latency at the search's batch size (offline scenario, the
   candidate's own runtime through the eager backend), averaged over seeds.
3. Acceptance on the final evaluation: each screened candidate that is faster than the baseline gets its
   one-sided non-inferiority p-value (H0: delta <= -margin on the test split: the experiment comparison's,
   paired over seeds by slimlab.stats.paired_comparison, or for a pretrained model per test sample on its
   metric, analysis.metric), Holm-corrected across all of them at
   alpha/2 by the one verdict rule (slimlab.stats.verdict; a degenerate comparison counts with p = 1 and
   is never accepted); the cheapest whose corrected test rejects is accepted. If none does, the baseline
   stays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from slimlab.analysis.metric import uses_metric_path
from slimlab.analysis.summary import geomean, pareto_front
from slimlab.analysis.view import RunView
from slimlab.bench import records as bench_records
from slimlab.bench.deploy import deployed_latency, one_step_cells
from slimlab.config import ExperimentConfig
from slimlab.evaluate.fairness import inferior_groups
from slimlab.stats import mean_ci
from slimlab.stats.verdict import decide, holm_family

PREFIX = "search-"
METHOD = (
    "screen on validation (drop a candidate whose CI of the paired change lies below -margin), keep those "
    "faster than the baseline, rank by measured latency, accept the cheapest whose "
    "one-sided non-inferiority test (paired t over seeds, test split) rejects after Holm correction across "
    "the screened candidates at alpha/2"
)


def _latency(trial: Mapping, batch: int, backends: tuple[str, ...] = ("eager",)) -> float | None:
    """The trial's p50 at `batch` on its fastest measured cell among `backends` (backend x threads): a
    candidate is ranked as it would be deployed (`[search] deploy_backends`; eager only by default)."""
    if backends == ("eager",):
        return bench_records.p50_ms(trial.get("bench", []), "offline", batch, "eager")
    cell = deployed_latency(trial, batch, backends)
    return cell["p50_ms"] if cell else None


def _deployment(trials: dict, batch: int, backends: tuple[str, ...]) -> dict | None:
    """The deployment cell (backend, threads) that won for most seeds."""
    cells = [deployed_latency(t, batch, backends) for t in trials.values()]
    picks = [(c["backend"], c["threads"]) for c in cells if c]
    if not picks:
        return None
    backend, threads = max(set(picks), key=picks.count)
    return {"backend": backend, "threads": threads, "seeds": picks.count((backend, threads))}


def _not_confidently_worse(deltas: list[float], margin: float, alpha: float) -> bool:
    if not deltas:
        return False
    mean, (_, hi) = mean_ci(deltas, 1 - alpha)
    upper = hi if hi == hi else mean  # one seed: no interval, fall back on the point estimate
    return upper >= -margin


def _pairs(trials: dict, dense: dict, batch: int, backends) -> list[tuple[float | None, float | None]]:
    """(candidate, dense) p50 latency at `batch` for each seed both have."""
    return [(_latency(trials[s], batch, backends), _latency(dense[s], batch, backends)) for s in trials]


def search_decision(
    results: dict,
    *,
    baseline: str,
    margin: float,
    alpha: float,
    batch_size: int,
    reference_backend: str,
    require_no_inferior_group: bool = False,
    deploy_backends: list[str] | None = None,
    metric: str = "accuracy",
    higher_is_better: bool = True,
) -> dict:
    """Per dataset, the candidates (screened, ranked, tested) and the one accepted, from the results the
    summary and fairness sections computed (`trials`, `comparisons`, `summary`, `fairness`). `metric` is
    what validation screening compares (each trial's `metrics["val_<metric>"]`)."""
    batch = batch_size
    sign = 1.0 if higher_is_better else -1.0
    screen_on = f"val_{metric}"
    ok = [t for t in results["trials"] if t["status"] == "ok"]
    by_key = {(t["dataset"], t["variant"], t["seed"]): t for t in ok}
    comparisons = {(c["dataset"], c["variant"]): c for c in results["comparisons"]}
    deploy = tuple(deploy_backends or ("eager",))
    out = {}
    for dataset in dict.fromkeys(t["dataset"] for t in ok):
        dense = {t["seed"]: t for t in ok if t["dataset"] == dataset and t["variant"] == baseline}
        by_variant: dict[str, list[dict]] = {}
        for t in ok:
            if t["dataset"] == dataset:
                by_variant.setdefault(t["variant"], []).append(t)
        # The row a user would otherwise pick: the fastest one-step cell measured in this run.
        cells = one_step_cells(by_variant, baseline, batch)
        reference = [_latency(t, batch, (reference_backend,)) for t in dense.values()]
        reference = [r for r in reference if r]
        rows = []
        for variant in dict.fromkeys(t["variant"] for t in ok if t["dataset"] == dataset):
            if not variant.startswith(PREFIX):
                continue
            trials = {s: by_key[(dataset, variant, s)] for s in dense if (dataset, variant, s) in by_key}
            c = comparisons.get((dataset, variant), {})
            latency = [_latency(t, batch, deploy) for t in trials.values()]
            val_delta = [
                sign * (trials[s]["metrics"][screen_on] - dense[s]["metrics"][screen_on])
                for s in trials
                if trials[s]["metrics"].get(screen_on) is not None
                and dense[s]["metrics"].get(screen_on) is not None
            ]
            mean_latency = float(np.mean([v for v in latency if v])) if any(latency) else None
            rows.append(
                {
                    "variant": variant,
                    "treatments": next(iter(trials.values()))["treatments"] if trials else [],
                    "seeds": sorted(trials),
                    "latency_ms": mean_latency,
                    "deployment": _deployment(trials, batch, deploy),
                    "speedup_vs_dense": geomean(
                        [d / c for c, d in _pairs(trials, dense, batch, deploy) if c and d]
                    ),
                    "speedup_vs_reference": (
                        float(np.mean(reference)) / mean_latency if reference and mean_latency else None
                    ),
                    "speedup_vs_best_cell": (
                        cells[0]["latency_ms"] / mean_latency if cells and mean_latency else None
                    ),
                    "val_delta": float(np.mean(val_delta)) if val_delta else None,
                    "val_ci": list(mean_ci(val_delta, 1 - alpha)[1]) if val_delta else None,
                    "screened_in": _not_confidently_worse(val_delta, margin, alpha),
                    "test_delta": c.get("delta"),
                    "test_ci": c.get("ci"),
                    "test_interval_unit": c.get("interval_unit", "seeds"),
                    "p_noninferiority": c.get("p_noninferiority"),
                    "inconclusive_reason": c.get("inconclusive_reason"),
                }
            )
        dense_latency = [_latency(t, batch, deploy) for t in dense.values()]
        dense_mean = float(np.mean(dense_latency)) if dense_latency and all(dense_latency) else None
        # With `require_no_inferior_group`, a candidate that makes any group of this dataset inferior
        # (per-group non-inferiority, Holm across groups x variants; see evaluate.fairness) is excluded.
        groups = (results.get("fairness") or {}).get(dataset)
        require = require_no_inferior_group
        for r in rows:
            r["faster_than_baseline"] = bool(r["latency_ms"] and dense_mean and r["latency_ms"] < dense_mean)
            r["inferior_groups"] = inferior_groups(groups["compression"], r["variant"]) if groups else []
            r["groups_ok"] = not (require and r["inferior_groups"])
        # The one verdict rule (stats.verdict) on the non-inferiority family of the screened candidates: a
        # degenerate comparison counts with p = 1 (it was tried), and acceptance is adjusted p < alpha / 2.
        tried = [
            r
            for r in rows
            if r["screened_in"]
            and r["faster_than_baseline"]
            and (r["p_noninferiority"] is not None or r["inconclusive_reason"])
        ]
        adjusted = holm_family(
            [r["p_noninferiority"] for r in tried], [bool(r["inconclusive_reason"]) for r in tried]
        )
        for r, adj in zip(tried, adjusted, strict=True):
            r["p_noninferiority_holm"] = adj
            r["non_inferior"] = (
                decide({"p_noninferiority": adj}, alpha)[0] == "non-inferior" and not r["inconclusive_reason"]
            )
        for r in rows:
            r.setdefault("p_noninferiority_holm", None)
            r.setdefault("non_inferior", False)
        rows.sort(key=lambda r: (r["latency_ms"] is None, r["latency_ms"] or 0))
        accepted = next((r for r in rows if r["non_inferior"] and r["groups_ok"]), None)
        points = [
            {
                "variant": r["variant"],
                "n_ok": len(r["seeds"]),
                "latency_p50_ms": r["latency_ms"],
                **_quality_of(results, dataset, r["variant"]),
            }
            for r in rows
        ]
        points.append(
            {
                "variant": baseline,
                "n_ok": len(dense),
                "latency_p50_ms": dense_mean,
                **_quality_of(results, dataset, baseline),
            }
        )
        out[dataset] = {
            "batch_size": batch,
            "reference_backend": reference_backend,
            "reference_latency_ms": float(np.mean(reference)) if reference else None,
            "dense_latency_ms": points[-1]["latency_p50_ms"],
            "deploy_backends": list(deploy),
            "one_step_cells": cells,
            "best_cell": cells[0] if cells else None,
            "accepted_speedup_vs_best_cell": accepted["speedup_vs_best_cell"] if accepted else None,
            "candidates": rows,
            "accepted": accepted["variant"] if accepted else None,
            "pareto": pareto_front(points),  # it leaves out points without a score
            "metric": metric,
            "screened_on": screen_on,
            "method": METHOD,
            "require_no_inferior_group": require,
            "groups_checked": groups is not None,
        }
    return out


def _quality_of(results: dict, dataset: str, variant: str) -> dict:
    """The summary row's accuracy and, on the metric path, its metric (what the Pareto front reads)."""
    for row in results["summary"]:
        if row["dataset"] == dataset and row["variant"] == variant:
            return {"accuracy": {"mean": row["accuracy"]["mean"]}, "metric": row.get("metric")}
    return {"accuracy": {"mean": None}, "metric": None}


def search_analysis(view: RunView, results: dict) -> dict:
    search, ev = view.config.search, view.config.evaluate
    if search is None:
        return {}
    decision = search_decision(
        {**results, "trials": view.trial_dicts},
        baseline=ev.baseline,
        margin=ev.margin,
        alpha=ev.alpha,
        batch_size=search.batch_size,
        reference_backend=search.reference_backend,
        require_no_inferior_group=search.require_no_inferior_group,
        deploy_backends=search.deploy_backends,
        **screening_metric(view.config),
    )
    return {"search": decision}


def screening_metric(config: ExperimentConfig) -> dict:
    """Accuracy, unless the run compares on its own metric (a pretrained model, or a metric other than
    accuracy and AUROC: analysis.metric); then that metric, in its direction (`search_decision`'s
    `metric` and `higher_is_better`)."""
    from slimlab.evaluate.metrics import get_metric

    ev = config.evaluate
    if not uses_metric_path(config.to_dict()):
        return {}
    chosen = get_metric(ev.metric, ev.source)
    return {"metric": chosen.name, "higher_is_better": chosen.higher_is_better}
