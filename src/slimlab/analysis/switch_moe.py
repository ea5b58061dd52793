"""The Switch study's analysis: quality against steps and wall-clock with CIs over seeds, the speedup to
the dense model's final quality, expert load and dropped tokens, parameters and FLOPs per token, and the
paper's claims checked. Input: the study's config and its cell records (`slimlab.studies.switch_moe.run`)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from slimlab.analysis.curves import POSITIVE, curve_summary, geometric_summary, summarize

if TYPE_CHECKING:
    from slimlab.studies.switch_moe import SwitchMoEConfig


def _first_reach(xs: list[float], losses: list[float], target: float) -> float | None:
    """The x (step or seconds) at which the loss curve first reaches `target`, linearly interpolated."""
    prev_x, prev_loss = 0.0, math.inf
    for x, loss in zip(xs, losses, strict=True):
        if loss <= target:
            if not math.isfinite(prev_loss):
                return float(x)
            frac = (prev_loss - target) / (prev_loss - loss) if prev_loss != loss else 1.0
            return float(prev_x + frac * (x - prev_x))
        prev_x, prev_loss = x, loss
    return None


def analyze(config: SwitchMoEConfig, records: list[dict]) -> dict:
    by = {(r["variant"], r["seed"]): r for r in records}
    seeds = list(range(config.seeds))
    names = [v["name"] for v in config.variants()]
    dense = {s: by[("dense", s)] for s in seeds}
    targets = {s: dense[s]["test_loss"][-1] for s in seeds}
    dense_step = {s: _first_reach(dense[s]["step"], dense[s]["test_loss"], targets[s]) for s in seeds}
    dense_time = {s: _first_reach(dense[s]["seconds"], dense[s]["test_loss"], targets[s]) for s in seeds}
    rows = []
    for name in names:
        runs = [by[(name, s)] for s in seeds]
        step_ratio, time_ratio, reached = [], [], 0
        for s, r in zip(seeds, runs, strict=True):
            at_step = _first_reach(r["step"], r["test_loss"], targets[s])
            at_time = _first_reach(r["seconds"], r["test_loss"], targets[s])
            if at_step is not None and at_time is not None:
                reached += 1
                step_ratio.append(dense_step[s] / at_step)
                time_ratio.append(dense_time[s] / at_time)
        load = np.mean([r["load_final"] for r in runs], axis=0).tolist() if runs[0]["load_final"] else []
        rows.append(
            {
                "variant": name,
                "params": runs[0]["params"],
                "flops_per_token": runs[0]["flops_per_token"],
                "final_test_loss": summarize([r["test_loss"][-1] for r in runs], POSITIVE),
                "final_test_accuracy": summarize([r["test_accuracy"][-1] for r in runs]),
                "train_seconds": summarize([r["seconds"][-1] for r in runs], POSITIVE),
                "seconds_per_step": summarize([r["seconds"][-1] / r["step"][-1] for r in runs], POSITIVE),
                "reached_dense_final": f"{reached}/{len(seeds)}",
                "speedup_steps": geometric_summary(step_ratio),
                "speedup_time": geometric_summary(time_ratio),
                "dropped_fraction": summarize([float(np.mean(r["dropped_fraction"])) for r in runs]),
                "dropped_fraction_final": summarize([r["dropped_fraction"][-1] for r in runs]),
                "load_per_expert": load,
                "curves": {
                    "step": runs[0]["step"],
                    "test_loss": curve_summary([r["test_loss"] for r in runs], POSITIVE),
                    "test_accuracy": curve_summary([r["test_accuracy"] for r in runs]),
                    "seconds": curve_summary([r["seconds"] for r in runs], POSITIVE),
                },
            }
        )
    return {"type": "switch_moe", "variants": rows, "claims": _claims(config, rows)}


def _claims(config: SwitchMoEConfig, rows: list[dict]) -> list[dict]:
    by = {r["variant"]: r for r in rows}
    main = [by[f"switch-{e}"] for e in config.experts if f"switch-{e}" in by]
    claims = []

    def fmt(s: dict) -> str:
        if s["mean"] is None:
            return "not reached"
        lo, hi = s["ci"]
        return f"{s['mean']:.2f}x" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")

    claims.append(
        {
            "claim": "at equal FLOPs per token, Switch models reach the dense model's final quality in fewer "
            "steps (the paper: 7.5x with 64 experts; gains already with 2-8 experts)",
            "held": all((r["speedup_steps"]["ci"][0] or 0) > 1 for r in main),
            "detail": "; ".join(f"{r['variant']}: {fmt(r['speedup_steps'])} in steps" for r in main),
        }
    )
    claims.append(
        {
            "claim": "the speedup holds in wall-clock time (the paper: 7x)",
            "held": all((r["speedup_time"]["ci"][0] or 0) > 1 for r in main),
            "detail": f"dense {1e3 * by['dense']['seconds_per_step']['mean']:.1f} ms/step; "
            + "; ".join(
                f"{r['variant']}: {fmt(r['speedup_time'])} in time, "
                f"{1e3 * r['seconds_per_step']['mean']:.1f} ms/step"
                for r in main
            ),
        }
    )
    losses = [r["final_test_loss"]["mean"] for r in main]
    claims.append(
        {
            "claim": "quality improves with the number of experts at fixed FLOPs (diminishing returns)",
            "held": all(b <= a for a, b in itertools.pairwise(losses))
            and losses[0] <= by["dense"]["final_test_loss"]["mean"],
            "detail": "final test loss: "
            + ", ".join(f"{r['variant']} {r['final_test_loss']['mean']:.3f}" for r in [by["dense"], *main]),
        }
    )
    dropped = [r for r in rows if r["variant"].startswith("switch")]
    claims.append(
        {
            "claim": "with the load-balancing loss (alpha = 0.01), under 1% of tokens are dropped",
            "held": all(r["dropped_fraction_final"]["mean"] < 0.01 for r in dropped),
            "detail": "dropped tokens over the last evaluation window: "
            + ", ".join(f"{r['variant']} {100 * r['dropped_fraction_final']['mean']:.2f}%" for r in dropped),
        }
    )
    return claims
