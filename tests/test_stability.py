"""Which unstable latencies keep a variant from being ranked (bench.stability): machine load and a loaded
machine's 10x swing do; the milder noise that an idle 2-vCPU VM shows is flagged but still ranked."""

from slimlab.bench.stability import latency_flags, unstable_variants


def _trial(variant: str, seed: int, p50: float, spread: float = 0.05, load: float = 0.3) -> dict:
    return {
        "dataset": "d",
        "variant": variant,
        "seed": seed,
        "status": "ok",
        "machine_load": {"per_cpu": load},
        "bench": [{"backend": "eager", "scenario": "single-stream", "batch_size": 1, "status": "ok",
                   "latency_ms": {"p50": p50, "repeat_spread": spread}}],
    }  # fmt: skip


def test_load_and_severe_swings_block_ranking_and_mild_noise_is_only_flagged():
    trials = [
        *(_trial("steady", s, 0.10) for s in range(3)),
        *(_trial("drifting", s, p) for s, p in enumerate((0.064, 0.10, 0.145))),  # 2.3x: an idle VM's drift
        *(_trial("noisy", s, 0.10, spread=0.7 if s == 1 else 0.05) for s in range(3)),
        *(_trial("swinging", s, p) for s, p in enumerate((0.1, 2.0, 8.0))),  # 80x: a loaded machine
        *(_trial("loaded", s, 0.10, load=1.6) for s in range(3)),
    ]
    flags = latency_flags(trials, 1)
    kinds = {(f["variant"], f["kind"]): f["blocks_ranking"] for f in flags}
    assert kinds == {
        ("drifting", "disagreement between trials"): False,
        ("noisy", "spread within a trial"): False,
        ("swinging", "disagreement between trials"): True,
        ("loaded", "machine load"): True,
    }
    assert unstable_variants(flags, "d") == {"swinging", "loaded"}
