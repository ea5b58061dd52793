"""The per-node quantization sensitivity of a run, across seeds.

Each `mixed_int8` trial stores the sensitivity it measured on its seed's validation split
(`artifacts["mixed_int8"]["sensitivity"]`, see `treatments.sensitivity`). Candidates of one seed share one
analysis, so each (dataset, seed) is counted once. Per node: the mean rank, the mean SQNR of the node
quantized alone, and the mean change of the metric the nodes were scored on (accuracy, or for a pretrained
encoder without labels its cosine fidelity to fp32) with a t interval over seeds (the per-seed intervals
over validation samples stay in the trials)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from slimlab.analysis.view import RunView
from slimlab.stats import mean_ci


def sensitivity_summary(trials: list[dict], alpha: float = 0.05) -> dict[str, dict]:
    per_seed: dict[str, dict[int, dict]] = defaultdict(dict)
    kept: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for t in trials:
        record = (t.get("artifacts") or {}).get("mixed_int8")
        if t.get("status") != "ok" or not record:
            continue
        per_seed[t["dataset"]].setdefault(t["seed"], record["sensitivity"])
        kept[t["dataset"]].setdefault(t["variant"], record["kept_float"])
    out: dict[str, dict] = {}
    for dataset, seeds in per_seed.items():
        rows: dict[str, dict] = {}
        for sens in seeds.values():
            for layer in sens["layers"]:
                row = rows.setdefault(
                    layer["node"],
                    {"node": layer["node"], "op_type": layer["op_type"], "r": [], "s": [], "d": []},
                )
                row["r"].append(layer["rank"])
                row["s"].append(layer["alone"]["sqnr_db"])
                row["d"].append(layer["alone"]["delta"])
        layers = []
        for row in rows.values():
            sqnr = [s for s in row["s"] if s is not None]
            delta, ci = mean_ci(row["d"], 1 - alpha)
            layers.append(
                {
                    "node": row["node"],
                    "op_type": row["op_type"],
                    "seeds": len(row["r"]),
                    "mean_rank": float(np.mean(row["r"])),
                    "sqnr_db": float(np.mean(sqnr)) if sqnr else None,
                    "delta": delta,
                    "ci": [ci[0], ci[1]],
                }
            )
        layers.sort(key=lambda r: r["mean_rank"])
        first = next(iter(seeds.values()))
        out[dataset] = {
            "method": first["method"],
            "metric": first.get("metric", "accuracy"),  # records from before it was named: accuracy
            "op_types": first.get("op_types"),
            "split": first["split"],
            "seeds": sorted(seeds),
            "ci_over": "seeds (t interval); per-seed BCa intervals over validation samples are in the trials",
            "layers": layers,
            "ranking": [r["node"] for r in layers],
            "all_int8_delta": float(np.mean([s["all_int8"]["delta"] for s in seeds.values()])),
            "candidates": [{"variant": v, "kept_float": k} for v, k in kept[dataset].items()],
        }
    return out


def sensitivity_section(view: RunView, results: dict) -> dict:
    trials = view.trial_dicts
    if not any((t.get("artifacts") or {}).get("mixed_int8") for t in trials):
        return {}
    return {"sensitivity": sensitivity_summary(trials, alpha=view.config.evaluate.alpha)}
