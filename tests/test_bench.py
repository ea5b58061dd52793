import time

import numpy as np
import torch

from slimlab.bench import (
    BenchConfig,
    Latency,
    environment,
    from_module,
    harness_overhead,
    measure,
    run_benchmark,
)
from slimlab.models import build_model


def test_measure_respects_minimum_time_and_count():
    calls = []
    latency = measure(lambda: calls.append(time.sleep(0.001)), warmup_iters=3, min_time_s=0.03, min_iters=5)
    assert len(latency.samples_s) >= 5
    assert sum(latency.samples_s) >= 0.03
    assert len(calls) == len(latency.samples_s) + 3  # warm-up calls are not timed
    assert min(latency.samples_s) >= 0.001


def test_percentiles_come_from_the_raw_samples():
    samples = tuple(np.linspace(0.001, 0.1, 100))
    summary = Latency(samples).summary_ms()
    assert summary["p50"] == np.percentile(samples, 50) * 1e3
    assert summary["p99"] == np.percentile(samples, 99) * 1e3
    assert summary["n"] == 100


def test_harness_overhead_is_small():
    assert harness_overhead(min_time_s=0.01, min_iters=100).percentile_ms(50) < 0.1


def test_eager_records_of_a_module():
    model = build_model("mlp", {"hidden": [16]}, (40,), 10)
    config = BenchConfig(
        latency_batch_size=1, throughput_batch_size=32, min_time_s=0.01, min_iters=5, warmup_iters=1
    )
    records = run_benchmark(from_module(model, (40,)), config)
    assert [(r["scenario"], r["batch_size"]) for r in records] == [
        ("single-stream", 1),
        ("offline", 1),
        ("offline", 32),
    ]
    for r in records:
        assert r["backend"] == "eager" and r["threads"] == torch.get_num_threads()
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["throughput_per_s"] > 0
        assert r["energy_j"] is not None or r["energy_reason"]  # measured, or null with the reason


def test_environment_is_looked_up():
    env = environment()
    assert env["torch"] == torch.__version__
    assert env["threads"] == torch.get_num_threads()
    assert env["device"] == "cpu"
    assert env["gemm_peak_gflops"] is None
