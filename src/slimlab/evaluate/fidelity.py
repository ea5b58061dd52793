"""Fidelity to the dense parent, across trials: for each (dataset, variant) the cosine similarity, top-1
agreement and largest absolute difference of its outputs from its dense parent's on the validation
inputs, over the seeds, and whether any seed diverged (below its thresholds). A diverged variant is a
headline flag: it comes before any verdict, since a treatment that corrupts the outputs makes every
other number about it meaningless. Takes plain trial mappings (results.json's `trials`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fidelity_summary(trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"variants": [per (dataset, variant) row], "flags": [one per diverged variant, with reasons]}."""
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for t in trials:
        if t.get("status") == "ok" and t.get("fidelity"):
            by_key[(t["dataset"], t["variant"])].append(t)
    rows, flags = [], []
    for (dataset, variant), group in by_key.items():
        checks = [t["fidelity"] for t in group]
        cos = [c["cosine"] for c in checks if c.get("cosine") is not None]
        worst = [c["cosine_min"] for c in checks if c.get("cosine_min") is not None]
        agree = [c["agreement"] for c in checks if c.get("agreement") is not None]
        diffs = [c["max_abs_diff"] for c in checks if c.get("max_abs_diff") is not None]
        diverged = [t["seed"] for t in group if t["fidelity"].get("diverged")]
        reasons = sorted({r for t in group for r in t["fidelity"].get("reasons", [])})
        row = {
            "dataset": dataset,
            "variant": variant,
            "seeds": len(group),
            "cosine": _mean(cos),
            "cosine_lowest": min(cos) if cos else None,
            "cosine_worst_sample": min(worst) if worst else None,
            "agreement": _mean(agree),
            "max_abs_diff": max(diffs) if diffs else None,
            "min_cosine": checks[0].get("min_cosine"),
            "split": checks[0].get("split", "val"),
            "diverged_seeds": diverged,
            "diverged": bool(diverged),
            "reasons": reasons,
        }
        rows.append(row)
        if diverged:
            flags.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "seeds": diverged,
                    "detail": f"{variant}: outputs diverge from the dense parent on {len(diverged)} of "
                    f"{len(group)} seeds ({'; '.join(reasons)})",
                }
            )
    return {"variants": rows, "flags": flags}
