"""The answer first: for each dataset, the variant to use (the cheapest one that is non-inferior to the
baseline after Holm, on the Pareto front, with a stable latency), what it gains with its interval, or "none"
and why; and every failed check and flagged measurement of the run, so that none of them sits under a green
verdict at the bottom of the page."""

from __future__ import annotations

import math

ACCEPTED = ("non-inferior", "superior")
# A speedup interval wider than this ratio (hi / lo) says nothing: from 2 seeds a t interval on the log
# scale spans orders of magnitude ([0.00, 2e18] was seen).
MAX_MEANINGFUL_RATIO = 10.0
MIN_SEEDS_FOR_SPEEDUP_CI = 3


def speedup_interval(c: dict) -> tuple[list[float] | None, str | None]:
    """(the speedup's interval, or None with the reason it is not shown)."""
    lo, hi = (c.get("speedup_ci") or [None, None])[:2]
    n = len(c.get("seeds") or c.get("runs") or [])
    if n < MIN_SEEDS_FOR_SPEEDUP_CI:
        return None, f"no interval: {n} paired seed(s); at least {MIN_SEEDS_FOR_SPEEDUP_CI} are needed"
    if not lo or not hi or not (math.isfinite(lo) and math.isfinite(hi)) or hi / lo > MAX_MEANINGFUL_RATIO:
        return None, f"no interval: the timings disagree too much across {n} seeds to bound the speedup"
    return [lo, hi], None


def _cost(row: dict) -> float | None:
    """What the recommendation minimizes: the p50 latency, or without benchmarks the model's size."""
    if row.get("latency_p50_ms") is not None:
        return row["latency_p50_ms"]
    return row.get("size_bytes") or row.get("nonzero_params")


def dataset_headline(
    dataset: str,
    rows: list[dict],
    comparisons: list[dict],
    front: list[str],
    unstable: set[str],
    baseline: str,
    diverged: frozenset[str] | set[str] = frozenset(),
) -> dict:
    by_variant = {r["variant"]: r for r in rows}
    base_row = by_variant.get(baseline)
    considered = [c for c in comparisons if c["dataset"] == dataset]
    if not considered:
        return {
            "dataset": dataset,
            "recommended": None,
            "why": f"only the baseline {baseline!r} was compared",
        }
    accepted = [
        c for c in considered if c["verdict"] in ACCEPTED and by_variant.get(c["variant"], {}).get("n_ok")
    ]
    if not accepted:
        verdicts = ", ".join(f"{c['variant']} {c['verdict']}" for c in considered)
        return {
            "dataset": dataset,
            "recommended": None,
            "why": f"no variant is shown non-inferior to {baseline} after Holm ({verdicts})",
        }
    faithful = [c for c in accepted if c["variant"] not in diverged]
    if not faithful:
        names = ", ".join(c["variant"] for c in accepted)
        return {
            "dataset": dataset,
            "recommended": None,
            "why": f"{names} {'is' if len(accepted) == 1 else 'are'} non-inferior, but the outputs diverge "
            "from the dense parent (see the fidelity flag), so the verdict is not trusted",
        }
    stable = [c for c in faithful if c["variant"] not in unstable]
    if not stable:
        names = ", ".join(c["variant"] for c in accepted)
        return {
            "dataset": dataset,
            "recommended": None,
            "why": f"{names} {'is' if len(accepted) == 1 else 'are'} non-inferior, but the latency "
            "measurements are unstable (see the flags), so no speed claim is made",
        }
    benchmarked = base_row is not None and base_row.get("latency_p50_ms") is not None
    base_cost = _cost(base_row) if base_row else None
    cheaper = [
        c
        for c in stable
        if _cost(by_variant[c["variant"]]) is not None
        and (base_cost is None or _cost(by_variant[c["variant"]]) < base_cost)
        and (not benchmarked or c["variant"] in front)
    ]
    if not cheaper:
        names = ", ".join(c["variant"] for c in stable)
        what = "faster than" if benchmarked else "smaller than"
        return {
            "dataset": dataset,
            "recommended": None,
            "why": f"{names} {'is' if len(stable) == 1 else 'are'} non-inferior but not {what} {baseline}"
            + (" (not on the accuracy/latency Pareto front)" if benchmarked else ""),
        }
    best = min(cheaper, key=lambda c: _cost(by_variant[c["variant"]]))
    row = by_variant[best["variant"]]
    interval, no_interval = speedup_interval(best)
    gain = {
        "metric": best.get("metric") or "accuracy",
        "delta": best.get("delta"),
        "ci": best.get("ci"),
        "verdict": best["verdict"],
        "p_used": best.get("p_decision", best.get("p_adjusted")),
        "speedup": best.get("speedup") if benchmarked else None,
        "speedup_ci": interval,
        "speedup_note": no_interval,
        "size_ratio": (base_row["size_bytes"] / row["size_bytes"])
        if base_row and base_row.get("size_bytes") and row.get("size_bytes")
        else None,
    }
    return {"dataset": dataset, "recommended": best["variant"], "gain": gain, "why": None}


def alerts(results: dict) -> list[dict]:
    """Every failed check, failed trial and flagged measurement, most severe first. A variant whose outputs
    diverge from its dense parent (analysis/fidelity.py) comes first: it makes its verdict moot."""
    out: list[dict] = [
        {"severity": "fail", "text": f"fidelity ({f['dataset']}): {f['detail']}"}
        for f in (results.get("fidelity") or {}).get("flags", [])
    ]
    failed = [t for t in results.get("trials", []) if t.get("status") != "ok"]
    if failed:
        names = sorted({t["variant"] for t in failed})
        out.append(
            {
                "severity": "fail",
                "text": f"{len(failed)} trial(s) failed ({', '.join(names)}); their variants get no verdict",
            }
        )
    for c in results.get("pitfalls", []):
        if c.get("status") == "fail":
            where = f" ({c['dataset']})" if c.get("dataset") else ""
            out.append({"severity": "fail", "text": f"check failed{where}: {c['check']}: {c['detail']}"})
    for f in results.get("latency_flags", []):
        out.append(
            {
                "severity": "flag",
                "text": f"unstable latency ({f['dataset']}/{f['variant']}, {f['backend']} batch "
                f"{f['batch_size']}): {f['kind']}: {f['detail']}",
            }
        )
    for row in results.get("summary", []):
        for name, b in (row.get("backends") or {}).items():
            if b.get("accuracy_flagged"):
                out.append(
                    {
                        "severity": "flag",
                        "text": f"{row['dataset']}/{row['variant']} loses accuracy on {name} beyond "
                        "the margin",
                    }
                )
    warnings = sum(1 for c in results.get("pitfalls", []) if c.get("status") == "warn")
    if warnings:
        out.append({"severity": "warn", "text": f"{warnings} warning(s) in the pitfall checklist below"})
    return out


def headline(results: dict) -> dict:
    config = results["experiment"]["config"]
    baseline = config["evaluate"]["baseline"]
    flags = results.get("latency_flags", [])
    diverged = (results.get("fidelity") or {}).get("flags", [])
    datasets = list(dict.fromkeys(r["dataset"] for r in results.get("summary", [])))
    per_dataset = [
        dataset_headline(
            d,
            [r for r in results["summary"] if r["dataset"] == d],
            results.get("comparisons", []),
            results.get("pareto_by_dataset", {}).get(d, []),
            {f["variant"] for f in flags if f["dataset"] == d and f.get("blocks_ranking")},
            baseline,
            {f["variant"] for f in diverged if f["dataset"] == d},
        )
        for d in datasets
    ]
    for d in per_dataset:
        rec = recommendation(results, d["dataset"])
        if rec is None:
            continue
        # With a search, its accepted variant is the answer (ranked at its own batch size and deployment),
        # and the sentence says it; the generic pick above would rank on eager latency at batch 1.
        d.update(recommended=rec["recommended"], why=rec["why"], sentence=rec["sentence"], recommendation=rec)
        d.pop("gain", None)
    return {"baseline": baseline, "datasets": per_dataset, "alerts": alerts(results)}


def headline_lines(h: dict) -> list[str]:
    """The headline as plain text lines, for the terminal's closing note."""
    lines = []
    for d in h["datasets"]:
        if d.get("sentence"):
            lines.append(d["sentence"])
            continue
        if d["recommended"] is None:
            lines.append(f"{d['dataset']}: recommended: none ({d['why']})")
            continue
        g = d["gain"]
        parts = [f"{d['dataset']}: recommended: {d['recommended']} ({g['verdict']} to {h['baseline']}"]
        if g.get("delta") is not None and g.get("ci"):
            lo, hi = g["ci"]
            if g.get("metric", "accuracy") == "accuracy":
                parts.append(f", accuracy {100 * g['delta']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]")
            else:  # in the metric's own units, oriented so that + is better
                parts.append(f", {g['metric']} {g['delta']:+.4g} [{lo:+.4g}, {hi:+.4g}]")
        if g.get("speedup"):
            ci = g["speedup_ci"]
            parts.append(
                f", {g['speedup']:.2f}x faster"
                + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f" ({g['speedup_note']})")
            )
        if g.get("size_ratio") and g["size_ratio"] > 1.01:
            parts.append(f", {g['size_ratio']:.1f}x smaller")
        lines.append("".join(parts) + ")")
    lines += [f"{a['severity']}: {a['text']}" for a in h["alerts"]]
    return lines


def headline_section(view, results: dict) -> dict:
    """The analysis section: runs last, over what the other sections computed."""
    whole = {
        **results,
        "trials": view.trial_dicts,
        "experiment": {"name": view.config.name, "config": view.config.to_dict()},
    }
    return {"headline": headline(whole)}


# ----- the recommendation sentence (issue 17) ------------------------------------------------------------
#
# A run with a `[search]` ends with one sentence: the search's accepted variant, deployed as the search
# chose (its most frequent backend x threads cell, held fixed across seeds), its speedup over dense fp32
# eager and over the best one-step alternative, each a geometric mean of ratios paired by seed with a t
# interval on the logs (the unit is the seed: each seed is a separately trained, treated and benchmarked
# model), its accuracy change on the test split with the CI and the search's Holm-adjusted
# non-inferiority verdict, and the number of seeds, with how many the verdicts needed.


def _offline_p50(trial: dict, batch: int, backend: str, threads: int | None) -> float | None:
    record = _offline_record(trial, batch, backend, threads)
    return record["latency_ms"]["p50"] if record else None


def _eager_threads(trials: list[dict]) -> int | None:
    for t in trials:
        for r in t.get("bench") or []:
            if r.get("backend") == "eager" and r.get("status") == "ok" and r.get("threads"):
                return r["threads"]
    return None


def best_one_step(by_variant: dict[str, dict[int, dict]], baseline: str, batch: int) -> dict | None:
    """The best one-step alternative: among the one-step cells (`bench.deploy.ONE_STEP_CELLS`: torch fp32
    eager on the baseline, ORT fp32 and ORT dynamic int8 on the baseline, ORT static int8 QDQ with the
    default per-channel min-max calibration) at every thread count measured in this run, the one with the
    lowest mean offline p50 at `batch` over the seeds. Trying thread counts is part of that one step, so
    the alternative is the strongest one the run measured."""
    from slimlab.bench.deploy import ONE_STEP_CELLS

    best = None
    for label, variant, backend in ONE_STEP_CELLS:
        name = baseline if variant == "baseline" else variant
        trials = by_variant.get(name) or {}
        threads = sorted(
            {
                r.get("threads")
                for t in trials.values()
                for r in t.get("bench") or []
                if r.get("backend") == backend and r.get("status") == "ok" and r.get("threads")
            }
        )
        for n in threads:
            p50s = {s: _offline_p50(t, batch, backend, n) for s, t in trials.items()}
            p50s = {s: v for s, v in p50s.items() if v}
            if len(p50s) < len(trials) or not p50s:
                continue  # a cell not measured on every seed is not comparable
            mean = float(sum(p50s.values()) / len(p50s))
            if best is None or mean < best["latency_ms"]:
                best = {
                    "cell": label,
                    "variant": name,
                    "backend": backend,
                    "threads": n,
                    "latency_ms": mean,
                    "p50_by_seed": p50s,
                }
    return best


def _offline_record(trial: dict, batch: int, backend: str, threads: int | None) -> dict | None:
    for r in trial.get("bench") or []:
        if (
            r.get("status") == "ok"
            and r.get("scenario") == "offline"
            and r.get("batch_size") == batch
            and r.get("backend") == backend
            and (threads is None or r.get("threads") == threads)
            and (r.get("latency_ms") or {}).get("p50")
        ):
            return r
    return None


def cell_flags(
    name: str, trials: dict[int, dict], batch: int, backend: str, threads: int | None
) -> list[tuple[str, str]]:
    """Why the timings of one cell that the sentence uses may not be trusted, as (kind, text): the three
    signs of `bench.stability` (spread within a trial, disagreement between seeds, machine load), applied
    to this cell's own offline records rather than to eager at the latency batch size. Kind "load" means
    the timings were taken while other work ran (a bias the intervals cannot show); kind "noise" means
    timings that varied on their own, which the per-seed intervals of the speedups already carry."""
    from slimlab.bench.stability import BETWEEN_RATIO, MAX_LOAD_PER_CPU, SEVERE_RATIO, WITHIN_SPREAD

    records = {s: _offline_record(t, batch, backend, threads) for s, t in trials.items()}
    records = {s: r for s, r in records.items() if r}
    out = []
    spread = {s: r["latency_ms"].get("repeat_spread") for s, r in records.items()}
    noisy = sorted(s for s, v in spread.items() if v is not None and v > WITHIN_SPREAD)
    if noisy:
        out.append((
            "noise",
            f"{name}: repeated p50s within seed(s) {', '.join(map(str, noisy))} disagree by more than "
            f"{WITHIN_SPREAD:.0%}",
        ))  # fmt: skip
    p50s = [r["latency_ms"]["p50"] for r in records.values()]
    if len(p50s) > 1 and max(p50s) > BETWEEN_RATIO * min(p50s):
        kind = "load" if max(p50s) > SEVERE_RATIO * min(p50s) else "noise"  # 10x: a loaded machine's swing
        out.append((kind, f"{name}: per-seed p50s {max(p50s) / min(p50s):.1f}x apart"))
    loads = [(trials[s].get("machine_load") or {}).get("per_cpu") for s in records]
    loaded = [v for v in loads if v is not None and v > MAX_LOAD_PER_CPU]
    if loaded:
        out.append(("load", f"{name}: benchmarked under a load of {max(loaded):.2f} per CPU"))
    return out


def _ratio(pairs: list[tuple[float | None, float | None]], alpha: float) -> dict:
    """Paired speedup (reference / candidate per seed): geometric mean, t interval on the logs."""
    from slimlab.stats.intervals import geometric_mean_ci

    ratios = [ref / cand for ref, cand in pairs if ref and cand]
    if not ratios:
        return {"value": None, "ci": None, "n": 0, "note": "not measured"}
    value, ci = geometric_mean_ci(ratios, 1 - alpha)
    out = {"value": value, "n": len(ratios), "unit": "seed", "ratios": ratios}
    out["ci"], out["note"] = speedup_interval({"speedup_ci": ci, "seeds": ratios})
    return out


def describe_chain(treatments: list[dict]) -> str:
    """A chain of treatments in words, e.g. '50% structured pruning + per-tensor static int8, min-max
    calibration'."""
    words = []
    for t in treatments:
        kind = t.get("kind")
        if kind in ("static_int8", "mixed_int8"):
            method = t.get("calibration_method", "minmax")
            text = (
                f"{'per-channel' if t.get('per_channel', True) else 'per-tensor'} static int8, "
                f"{'min-max' if method == 'minmax' else method} calibration"
            )
            if kind == "mixed_int8":
                text += f", {t.get('keep_float')} most sensitive node(s) kept fp32"
            words.append(text)
        elif kind in ("structured_prune", "magnitude_prune"):
            what = "structured" if kind == "structured_prune" else "unstructured"
            words.append(f"{round(100 * t.get('sparsity', 0))}% {what} pruning")
        elif kind == "half_precision":
            words.append(str(t.get("dtype", "half")))
        else:
            words.append(str(kind).replace("_", " "))
    return " + ".join(words) or "no treatment"


def _ort_backed(treatments: list[dict]) -> bool:
    """Static int8 on ONNX Runtime (the default backend) leaves an ORT session inside a torch module."""
    return any(
        t.get("kind") in ("static_int8", "mixed_int8") and t.get("backend", "onnxruntime") == "onnxruntime"
        for t in treatments
    )


def _cell_words(backend: str, threads: int | None, ort_backed: bool = False) -> str:
    if backend == "eager" and ort_backed:  # "eager" calls the module, and the module runs ORT
        backend = "ONNX Runtime inside its torch module (the eager backend)"
    name = {
        "eager": "PyTorch eager",
        "onnxruntime-session": "ONNX Runtime session",
        "onnxruntime": "ONNX Runtime via torch wrapper",
        "onnxruntime-int8": "ONNX Runtime dynamic int8",
        "compile": "torch.compile",
    }.get(backend, backend)
    return name + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")


def _fmt_ratio(r: dict) -> str:
    if not r.get("value"):
        return "not measured"
    ci = r.get("ci")
    return f"{r['value']:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f" ({r['note']})")


def seeds_needed(
    trials: list[dict],
    *,
    dataset: str,
    baseline: str,
    metric: str,
    margin: float,
    alpha: float,
    family: list[str],
    accepted: str | None,
    verdicts: dict[str, str],
) -> int | None:
    """The fewest seeds (the first k, in seed order) from which every verdict of the run stays what it is
    with all seeds: each variant's table verdict (compare_scores, Holm across the table) and, for the
    accepted candidate, non-inferiority after Holm across the search's family. None when even all seeds
    do not reproduce them (cannot happen for the run itself, but keeps the function total)."""
    from slimlab.stats import compare_scores, holm, rows_from_trials

    ok = [t for t in trials if t.get("status") == "ok" and t["dataset"] == dataset]
    seeds = sorted({t["seed"] for t in ok if t["variant"] == baseline})
    holds = []
    for k in range(1, len(seeds) + 1):
        use = set(seeds[:k])
        rows = rows_from_trials([t for t in ok if t["seed"] in use], metric)
        try:
            out = compare_scores(rows, baseline, margin=margin, alpha=alpha, design="seeds")
        except Exception:  # too few seeds for any test: the verdicts do not hold yet
            holds.append(False)
            continue
        got = {c["variant"]: c for c in out["comparisons"] if c["dataset"] == dataset}
        same = all(got.get(v, {}).get("verdict") == verdict for v, verdict in verdicts.items())
        if same and accepted is not None:
            tried = [v for v in family if got.get(v, {}).get("p_noninferiority") is not None]
            if accepted not in tried:
                same = False
            else:
                adjusted = holm([got[v]["p_noninferiority"] for v in tried])
                same = adjusted[tried.index(accepted)] <= alpha / 2
        holds.append(same)
    for k in range(len(holds)):
        if all(holds[k:]):
            return k + 1
    return None


def recommendation(results: dict, dataset: str) -> dict | None:
    """The search's answer for `dataset` as numbers and one sentence (see above); None without a search."""
    search = (results.get("search") or {}).get(dataset)
    if not search:
        return None
    config = results["experiment"]["config"]
    ev = config["evaluate"]
    baseline, alpha, margin = ev["baseline"], ev.get("alpha", 0.05), ev.get("margin", 0.01)
    batch = search["batch_size"]
    by_variant: dict[str, dict[int, dict]] = {}
    for t in results.get("trials", []):
        if t.get("status") == "ok" and t["dataset"] == dataset:
            by_variant.setdefault(t["variant"], {})[t["seed"]] = t
    dense = by_variant.get(baseline, {})
    rows = {c["variant"]: c for c in search["candidates"]}
    comparisons = {c["variant"]: c for c in results.get("comparisons", []) if c["dataset"] == dataset}
    family = [
        r["variant"]
        for r in search["candidates"]
        if r.get("screened_in") and r.get("faster_than_baseline") and r.get("p_noninferiority") is not None
    ]
    # The decisive verdicts (an inconclusive one needs no seeds to stay inconclusive).
    verdicts = {v: c["verdict"] for v, c in comparisons.items() if c["verdict"] != "inconclusive"}
    n_seeds = len(dense)
    needed = seeds_needed(
        results.get("trials", []),
        dataset=dataset,
        baseline=baseline,
        metric=ev.get("metric", "accuracy"),
        margin=margin,
        alpha=alpha,
        family=family,
        accepted=search.get("accepted"),
        verdicts=verdicts,
    )
    seeds_words = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" + (
        f" (the verdicts needed {needed})" if needed and (verdicts or search.get("accepted")) else ""
    )
    out: dict = {
        "dataset": dataset,
        "batch_size": batch,
        "seeds": n_seeds,
        "seeds_needed": needed,
        "search_family": family,
        "interval_unit": "seed",
    }
    accepted = search.get("accepted")
    quality = search.get("metric", "accuracy")  # what the search compared: accuracy, or the run's metric
    if accepted is None:
        reasons: dict[str, list[str]] = {}  # reason -> candidates, so that shared reasons are said once
        for r in search["candidates"]:
            c = comparisons.get(r["variant"], {})
            if not r.get("screened_in"):
                what = "change" if quality == "accuracy" else f"{quality} change"
                reason = f"screened out on validation ({what} {100 * (r.get('val_delta') or 0):+.1f} pts)"
            elif not r.get("faster_than_baseline"):
                reason = f"not faster than {baseline}"
            elif c.get("inconclusive_reason"):
                reason = f"inconclusive: {c['inconclusive_reason']}"
            else:
                p = r.get("p_noninferiority_holm")
                reason = "not shown non-inferior after Holm" + (f" (p = {p:.2g})" if p is not None else "")
            reasons.setdefault(reason, []).append(r["variant"])
        said = []
        for reason, names in reasons.items():
            everyone = len(names) == len(search["candidates"]) > 1
            said.append(f"{f'all {len(names)} candidates' if everyone else ', '.join(names)} {reason}")
        why = "; ".join(said) or "the search produced no candidate"
        out.update(recommended=None, why=why)
        out["sentence"] = (
            f"Nothing qualifies on {dataset}: no candidate of the search is both faster than {baseline} "
            f"and non-inferior after Holm ({why}), so {baseline} stays; {seeds_words}."
        )
        return out
    row = rows[accepted]
    trials = by_variant.get(accepted, {})
    deployment = row.get("deployment") or {"backend": "eager", "threads": None}
    where = (deployment["backend"], deployment["threads"])
    cand = {s: _offline_p50(t, batch, *where) for s, t in trials.items()}
    eager_threads = _eager_threads(list(dense.values()))
    dense_eager = {s: _offline_p50(t, batch, "eager", eager_threads) for s, t in dense.items()}
    vs_dense = _ratio([(dense_eager.get(s), cand[s]) for s in cand], alpha)
    one_step = best_one_step(by_variant, baseline, batch)
    vs_one_step = (
        _ratio([(one_step["p50_by_seed"].get(s), cand[s]) for s in cand], alpha)
        if one_step
        else {"value": None, "ci": None, "n": 0, "note": "not measured"}
    )
    same_cell = bool(
        one_step
        and one_step["variant"] == accepted
        and one_step["backend"] == deployment["backend"]
        and one_step["threads"] == deployment["threads"]
    )
    # The issue-11 rule (no speed claim from unstable timings), applied to the cells the sentence uses.
    unstable = cell_flags(accepted, trials, batch, *where) + cell_flags(
        f"{baseline} eager", dense, batch, "eager", eager_threads
    )
    if one_step and not same_cell:
        unstable += cell_flags(
            f"{one_step['cell']}",
            by_variant.get(one_step["variant"], {}),
            batch,
            one_step["backend"],
            one_step["threads"],
        )
    # Timings taken under load give no speed claim (issue 11's rule). Timings that merely varied are named,
    # and the claim stands on the intervals over seeds, which carry that variation; the claim also needs
    # the speedup over dense fp32 eager to be shown (its interval above 1).
    flagged = [text for kind, text in unstable if kind == "load"]
    noise = [text for kind, text in unstable if kind == "noise"]
    not_faster = not (vs_dense.get("ci") and vs_dense["ci"][0] is not None and vs_dense["ci"][0] > 1)
    delta, ci = row.get("test_delta"), row.get("test_ci")
    p = row.get("p_noninferiority_holm")
    out.update(
        recommended=None if flagged or not_faster else accepted,
        candidate=accepted,
        treatments=describe_chain(row.get("treatments") or []),
        deployment={**deployment, "p50_ms_by_seed": cand},
        dense_eager={"threads": eager_threads, "p50_ms_by_seed": dense_eager},
        speedup_vs_dense_eager=vs_dense,
        best_one_step=one_step,
        speedup_vs_best_one_step=vs_one_step,
        one_step_is_the_candidate=same_cell,
        delta=delta,
        ci=ci,
        verdict="non-inferior",
        p_noninferiority_holm=p,
        margin=margin,
        flagged=flagged,
        timing_noise=noise,
        why=None,
    )
    alt = "the best one-step alternative (none measured)"
    if one_step:
        same = (
            ": the same model and deployment, so the search adds the verdict, not speed" if same_cell else ""
        )
        alt = (
            f"the best one-step alternative ({one_step['cell']}, "
            f"{_cell_words(one_step['backend'], one_step['threads'])}{same})"
        )
    deployed = _cell_words(*where, _ort_backed(row.get("treatments") or []))
    claim = (
        f"{accepted} ({out['treatments']}; {deployed}): speedup {_fmt_ratio(vs_dense)} over "
        f"dense fp32 eager ({eager_threads or 'default'} thread{'s' if eager_threads != 1 else ''}) and "
        f"{_fmt_ratio(vs_one_step)} over {alt} at batch {batch}; {quality} {100 * (delta or 0):+.1f} pts"
        + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
        + f", non-inferior after Holm (p = {p:.2g}, margin {100 * margin:g} pt"
        + ("" if margin == 0.01 else "s")
        + f"); 95% intervals over {seeds_words}"
        + (
            f" (the {quality} interval over test samples, paired per sample)"
            if row.get("test_interval_unit") == "test samples"
            else ""
        )
    )
    if flagged:
        out["why"] = (
            f"its timings were taken under load ({'; '.join(flagged)}), so no speed claim is made; "
            "re-measure on a quiet machine"
        )
        out["sentence"] = f"Nothing is recommended on {dataset} yet: {claim}, but {out['why']}."
    elif not_faster:
        out["why"] = "its speedup over dense fp32 eager is not shown (the interval does not stay above 1)"
        out["sentence"] = f"Nothing is recommended on {dataset}: {claim}, but {out['why']}."
    else:
        caveat = f" (timing noise, carried by those intervals: {'; '.join(noise)})" if noise else ""
        out["sentence"] = f"Recommended on {dataset}: {claim}{caveat}."
    return out
