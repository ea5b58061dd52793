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
            {f["variant"] for f in flags if f["dataset"] == d},
            baseline,
            {f["variant"] for f in diverged if f["dataset"] == d},
        )
        for d in datasets
    ]
    return {"baseline": baseline, "datasets": per_dataset, "alerts": alerts(results)}


def headline_lines(h: dict) -> list[str]:
    """The headline as plain text lines, for the terminal's closing note."""
    lines = []
    for d in h["datasets"]:
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
