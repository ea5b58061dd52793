"""Click models: AUC, log loss and normalized entropy per variant with t intervals over seeds, and where a
DLRM's time goes (embedding lookups, bottom MLP, interaction + top MLP), from the `stage_*` metrics that
`evaluate_trial` records. Empty for runs without binary-task metrics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from slimlab.analysis.view import RunView
from slimlab.stats import mean_ci

CLICK_METRICS = ("auroc", "log_loss", "normalized_entropy")
STAGES = ("stage_embedding_ms", "stage_bottom_mlp_ms", "stage_interaction_top_mlp_ms", "stage_forward_ms")


def clicks_analysis(view: RunView, computed: dict[str, Any]) -> dict[str, Any]:
    confidence = 1 - view.config.evaluate.alpha
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for t in view.trials:
        if t.status == "ok" and "auroc" in t.metrics:
            groups[(t.dataset, t.variant)].append(t)
    rows = []
    for (dataset, variant), trials in groups.items():
        row: dict[str, Any] = {"dataset": dataset, "variant": variant, "n": len(trials)}
        for name in (*CLICK_METRICS, *STAGES):
            values = [float(t.metrics[name]) for t in trials if t.metrics.get(name) is not None]
            if values:
                mean, ci = mean_ci(values, confidence)
                row[name] = {"mean": mean, "ci": list(ci)}
        stages = [row.get(s, {}).get("mean") for s in STAGES[:3]]
        if all(v is not None for v in stages) and sum(stages) > 0:
            row["embedding_share"] = stages[0] / sum(stages)
        rows.append(row)
    return {"clicks": rows} if rows else {}
