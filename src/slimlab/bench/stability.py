"""Is a latency stable enough to rank on? On a shared or loaded machine the eager p50 of one tiny model at
batch 1 was seen anywhere between 0.1 ms and 80 ms from one trial to the next; a speedup column or a Pareto
front built on that is noise. Three signs are checked, per (dataset, variant), from the trial records:

- spread within a trial: the p50s of the repeated measurement blocks of one trial disagree by more than
  WITHIN_SPREAD of their middle (the engine's `repeat_spread`);
- disagreement between trials: the per-seed p50s differ by more than BETWEEN_RATIO times, so the seeds
  measured different machines' worth of speed;
- machine load: the 1-minute load average per CPU, read when the trial was benchmarked, was above
  MAX_LOAD_PER_CPU: other work competed for the cores.

Every flag is listed with its reason above the report's tables. A flag that `blocks_ranking` keeps its
variant off the Pareto front and out of any recommendation: machine load (the timings measured other work
too, a bias that no interval over seeds can show) and a disagreement between trials beyond SEVERE_RATIO
(the 100x swings of a loaded machine). Milder spread and disagreement are noise that even an idle 2-vCPU
VM shows (its eager p50 at batch 1 drifted between 66 and 142 us in one tight loop); those variants are
still ranked, on their median over seeds and with speedup intervals over seeds that carry the noise, and
the flag says so. The remedy is to re-measure on a quiet machine (`slimlab bench RUN --trial`).
"""

from __future__ import annotations

import os
from collections import defaultdict

WITHIN_SPREAD = 0.5  # (max - min) / middle of the repeat p50s within one trial
BETWEEN_RATIO = 2.0  # max / min of the per-seed p50s
MAX_LOAD_PER_CPU = 1.0  # 1-minute load average per CPU
SEVERE_RATIO = 10.0  # per-seed p50s this far apart are not ranked on at all


def machine_load() -> dict | None:
    """The 1-minute load average and the CPU count now, or None where the OS does not report it."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cpus = os.cpu_count() or 1
    return {"load_1min": round(load, 2), "cpus": cpus, "per_cpu": round(load / cpus, 3)}


def _single_stream(trial: dict, batch_size: int, backend: str = "eager") -> dict | None:
    for r in trial.get("bench", []):
        if (
            r.get("status", "ok") == "ok"
            and r.get("backend") == backend
            and r.get("scenario", "single-stream") == "single-stream"
            and r.get("batch_size") == batch_size
        ):
            return r
    return None


def latency_flags(trials: list[dict], batch_size: int, backend: str = "eager") -> list[dict]:
    """[{dataset, variant, kind, detail}] for every unstable latency among the ok trials."""
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in trials:
        if t.get("status") == "ok":
            by_key[(t["dataset"], t["variant"])].append(t)
    flags = []
    for (dataset, variant), group in by_key.items():
        where = {"dataset": dataset, "variant": variant, "backend": backend, "batch_size": batch_size}
        measured = [(t, _single_stream(t, batch_size, backend)) for t in group]
        measured = [(t, r) for t, r in measured if r and (r.get("latency_ms") or {}).get("p50")]
        if not measured:
            continue
        spreads = [
            (t["seed"], r["latency_ms"]["repeat_spread"])
            for t, r in measured
            if r["latency_ms"].get("repeat_spread") is not None
        ]
        noisy = [(s, v) for s, v in spreads if v > WITHIN_SPREAD]
        if noisy:
            worst = max(noisy, key=lambda sv: sv[1])
            flags.append(
                {
                    **where,
                    "kind": "spread within a trial",
                    "blocks_ranking": False,
                    "detail": f"{len(noisy)} of {len(spreads)} trials' repeated p50s disagree by more than "
                    f"{WITHIN_SPREAD:.0%} (worst: seed {worst[0]}, {worst[1]:.0%})",
                }
            )
        p50s = [(t["seed"], r["latency_ms"]["p50"]) for t, r in measured]
        lo, hi = min(p50s, key=lambda sv: sv[1]), max(p50s, key=lambda sv: sv[1])
        if len(p50s) > 1 and hi[1] > BETWEEN_RATIO * lo[1]:
            flags.append(
                {
                    **where,
                    "kind": "disagreement between trials",
                    "detail": f"p50 from {lo[1]:.4g} ms (seed {lo[0]}) to {hi[1]:.4g} ms (seed {hi[0]}), "
                    f"{hi[1] / lo[1]:.1f}x apart (more than {BETWEEN_RATIO:g}x)",
                    "blocks_ranking": hi[1] > SEVERE_RATIO * lo[1],
                }
            )
        loaded = [
            (t["seed"], t["machine_load"]["per_cpu"])
            for t, _ in measured
            if (t.get("machine_load") or {}).get("per_cpu") is not None
            and t["machine_load"]["per_cpu"] > MAX_LOAD_PER_CPU
        ]
        if loaded:
            worst = max(loaded, key=lambda sv: sv[1])
            flags.append(
                {
                    **where,
                    "kind": "machine load",
                    "blocks_ranking": True,
                    "detail": f"{len(loaded)} of {len(measured)} trials were benchmarked with a load above "
                    f"{MAX_LOAD_PER_CPU:g} per CPU (worst: seed {worst[0]}, {worst[1]:.2f})",
                }
            )
    return flags


def unstable_variants(flags: list[dict], dataset: str) -> set[str]:
    """The variants of `dataset` not to rank on (a flag that blocks ranking; see the module's text)."""
    return {f["variant"] for f in flags if f["dataset"] == dataset and f.get("blocks_ranking")}
