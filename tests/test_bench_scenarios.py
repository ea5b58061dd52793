"""LoadGen's scenarios: early stopping against an independent computation, the server queue on fake service
times whose answers are known, and the engine end to end on a tiny model."""

import math

import numpy as np
import pytest
import torch
from scipy.special import betainc

from slimlab.bench import engine
from slimlab.bench.config import BenchConfig
from slimlab.bench.latency import measure
from slimlab.bench.loading import from_reference
from slimlab.bench.scenarios import (
    ScenarioSettings,
    ServiceModel,
    early_stopping_estimate,
    min_queries_to_pass,
    server_run,
    server_search,
    simulate_server,
    tolerable_overlatency,
)


def _brute_tolerable(n: int, p: float = 0.99, c: float = 0.99) -> int:
    """The definition, with exact integer binomials: the largest t with P(X <= t) <= 1 - c."""
    q, cdf, best = 1 - p, 0.0, -1
    for t in range(n + 1):
        cdf += math.comb(n, t) * q**t * (1 - q) ** (n - t)
        if cdf > 1 - c:
            break
        best = t
    return best


@pytest.mark.parametrize("n", [10, 458, 459, 500, 1000, 2000, 5000])
def test_tolerable_overlatency_matches_the_definition(n):
    assert tolerable_overlatency(n) == _brute_tolerable(n)


def test_early_stopping_agrees_with_loadgen():
    # LoadGen's own log for a p99 server run: "Processed 21 queries. Would need to run at least 438 more".
    assert min_queries_to_pass(0) == 21 + 438
    # LoadGen's form: odds(h, t) = BetaRegularized[p, h, 1 + t] <= 1 - c exactly when h + t queries pass.
    for t in (0, 1, 5, 20):
        n = min_queries_to_pass(t)
        assert betainc(n - t, 1 + t, 0.99) <= 0.01 < betainc(n - 1 - t, 1 + t, 0.99)
    assert tolerable_overlatency(0) == -1


def test_early_stopping_estimate_discards_only_what_the_bound_allows():
    samples = np.arange(1, 1001, dtype=float)  # 1..1000
    t = tolerable_overlatency(1000, 0.90)
    assert early_stopping_estimate(samples, 0.90) == samples[1000 - t]
    assert early_stopping_estimate(samples, 0.90) > np.percentile(samples, 90)  # a bound, so above p90
    assert early_stopping_estimate(samples[:100], 0.99) is None  # too few queries for p99


def test_simulated_queue_by_hand():
    service = ServiceModel({1: np.array([0.001]), 4: np.array([0.002])})
    rng = np.random.default_rng(0)
    # Far apart: each query is served alone, at once (no queue delay when alone and the batch limit is 1).
    lat, batches = simulate_server(np.array([0.0, 0.1, 0.2]), service, 1, 0.0, rng)
    np.testing.assert_allclose(lat, [0.001] * 3)
    assert batches == 3
    # Three close together: the batcher waits out the 1 ms delay, then serves all three padded to 4.
    lat, batches = simulate_server(np.array([0.0, 0.0001, 0.0002]), service, 4, 0.001, rng)
    np.testing.assert_allclose(lat, [0.003, 0.0029, 0.0028])
    assert batches == 1
    # A full batch does not wait for the delay.
    lat, _ = simulate_server(np.array([0.0, 0.0001, 0.0002, 0.0003]), service, 4, 0.01, rng)
    np.testing.assert_allclose(lat[0], 0.0023)


def test_server_search_on_a_fake_constant_model():
    settings = ScenarioSettings.loadgen().scaled(0.01)
    one_ms = ServiceModel({1: np.full(10, 0.001)})
    search = server_search(
        one_ms, latency_budget_s=0.010, max_batch=1, max_queue_delay_s=0.0, settings=settings
    )
    best = search.best
    # An M/D/1 queue with 1 ms service: capacity 1000/s; a 10 ms p99 bound holds to roughly 75-80% of it.
    assert 600 < best.rate_per_s < 950
    assert best.passed and best.p99_ms <= 10.0 and best.overlatency <= best.tolerable
    lo, hi = search.summary()["rate_bracket_per_s"]
    assert lo < hi <= 1000 and search.summary()["bracket_relative_width"] <= 0.011
    # Batching 8 queries in 2 ms serves more under the same bound, beyond batch-1 capacity.
    batched = ServiceModel({1: np.full(10, 0.001), 8: np.full(10, 0.002)})
    more = server_search(
        batched, latency_budget_s=0.010, max_batch=8, max_queue_delay_s=0.002, settings=settings
    )
    assert more.best.rate_per_s > 1000 and more.best.mean_batch > 2
    # A tighter budget can only lower the rate.
    tight = server_search(
        one_ms, latency_budget_s=0.003, max_batch=1, max_queue_delay_s=0.0, settings=settings
    )
    assert tight.best.rate_per_s < best.rate_per_s


def test_server_run_fails_when_latency_is_over_budget_and_search_is_time_boxed():
    slow = ServiceModel({1: np.full(5, 0.02)})
    settings = ScenarioSettings.loadgen().scaled(0.001)
    run = server_run(1.0, slow, latency_budget_s=0.01, max_batch=1, max_queue_delay_s=0.0, settings=settings)
    assert not run.passed and run.overlatency == run.queries
    search = server_search(slow, latency_budget_s=0.01, max_batch=1, max_queue_delay_s=0.0, settings=settings)
    assert search.best is None and search.summary()["best_rate_per_s"] is None
    boxed = server_search(
        ServiceModel({1: np.full(5, 0.001)}),
        latency_budget_s=0.01,
        max_batch=1,
        max_queue_delay_s=0.0,
        settings=settings,
        max_seconds=0.0,
    )
    assert boxed.budget_exhausted and len(boxed.runs) <= 1


def test_simulated_queries_are_capped_but_never_below_the_minimum(monkeypatch):
    from slimlab.bench import scenarios

    monkeypatch.setattr(scenarios, "MAX_SIMULATED_QUERIES", 5000)
    fast = ServiceModel({1: np.full(5, 1e-6)})
    long = ScenarioSettings(min_duration_s=600.0, server_queries=8000)  # 600 s at 100k/s: 60M queries
    run = server_run(1e5, fast, latency_budget_s=0.01, max_batch=1, max_queue_delay_s=0.0, settings=long)
    assert run.queries == 8000  # the cap gives way to the minimum query count
    short = ScenarioSettings(min_duration_s=600.0, server_queries=1000)
    run = server_run(1e5, fast, latency_budget_s=0.01, max_batch=1, max_queue_delay_s=0.0, settings=short)
    assert run.queries == 5000


def test_settings_scale_loadgen_minimums():
    full = ScenarioSettings.loadgen()
    assert (full.min_duration_s, full.single_stream_queries, full.server_queries) == (600.0, 1024, 270_336)
    small = full.scaled(0.01, min_time_s=0.5, min_iters=50)
    assert small.min_duration_s == 6.0 and small.single_stream_queries == 50 and small.server_queries == 2704
    tiny = full.scaled(0.0, min_time_s=0.01, min_iters=5)
    assert tiny.min_duration_s == 0.01 and tiny.server_queries == 2 * 459  # early stopping's own floor


def test_engine_runs_every_scenario(tmp_path):
    model = from_reference("mlp", (40,), 10, {"hidden": [32]})
    config = BenchConfig(
        backends=["eager", "onnxruntime"],
        scenarios=["single-stream", "offline", "server"],
        batch_sizes=[1, 4, 16],
        min_time_s=0.01,
        min_iters=10,
        warmup_iters=2,
        latency_budget_ms=50.0,
        dollars_per_hour=1.0,
    )
    peak = {"fp32_gflops": 100.0, "int8_gops": None, "memory_gbps": 10.0}
    records = engine.run_benchmark(model, config, peak=peak)
    assert all(r["status"] == "ok" for r in records), records
    by = {(r["backend"], r["scenario"], r["batch_size"]) for r in records}
    for backend in ("eager", "onnxruntime"):
        assert {(backend, "single-stream", 1), (backend, "offline", 16), (backend, "server", 16)} <= by
    ss = next(r for r in records if r["scenario"] == "single-stream")
    assert ss["latency_ms"]["n"] >= 10 and len(ss["latency_ms"]["repeat_p50_ms"]) == 3
    assert ss["latency_ms"]["early_stopping_p90"] is not None  # enough queries for the p90 bound
    assert ss["energy_j"] is None and ss["energy_reason"]  # no RAPL here: said, not invented
    assert ss["flops"] == 2 * (40 * 32 + 32 * 10) and ss["roofline"]["peak_share"] > 0
    assert ss["cost_per_million"] == pytest.approx(1e6 / 3600 / ss["throughput_per_s"])
    assert ss["harness_share"] < 0.05  # the harness costs a small fraction of what it measures
    offline = [r for r in records if r["backend"] == "eager" and r["scenario"] == "offline"]
    assert sum(r["best"] for r in offline) == 1
    server = next(r for r in records if r["scenario"] == "server")
    assert server["server"]["best_rate_per_s"] > 0 and server["latency_ms"]["p99"] <= 50.0
    assert server["server"]["simulated_seconds_at_best"] >= config.min_time_s * 0.9
    speed = engine.speedups(records)
    assert speed["eager"]["offline"] == 1.0 and speed["onnxruntime"]["single_stream"] > 0


def test_eager_timing_agrees_with_torch_utils_benchmark():
    """Our harness and torch.utils.benchmark time the same call. The means are compared: Timer's median is
    over blocks of calls, ours over single calls, and under a noisy neighbour those medians differ while the
    means (total time / calls) agree. CI noise needs a wide band; the exact figure is in BENCHMARKS.md."""
    from torch.utils import benchmark

    model = from_reference("mlp", (40,), 10, {"hidden": [512, 512]}).module
    x = torch.randn(64, 40)

    def call():
        with torch.inference_mode():
            model(x)

    timer = benchmark.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
    ratios = []
    for _ in range(3):  # interleaved (A B A B A B), so that a change in the machine's load hits both alike
        ours = measure(call, warmup_iters=5, min_time_s=0.2, min_iters=20).mean_ms
        theirs = timer.blocked_autorange(min_run_time=0.2).mean * 1e3
        ratios.append(ours / theirs)
    assert 0.67 < float(np.median(ratios)) < 1.5, ratios


def _loadgen_config(**overrides) -> BenchConfig:
    options = dict(
        backends=["eager", "onnxruntime"], scenarios=["single-stream", "offline"], batch_sizes=[1, 8],
        min_time_s=0.2, min_iters=10, warmup_iters=2, driver="loadgen",
    )  # fmt: skip
    return BenchConfig(**(options | overrides))


def test_loadgen_times_single_stream_and_offline_when_asked():
    """`[bench] driver = "loadgen"`: MLPerf LoadGen's own SingleStream and Offline time each backend, and
    its p50 agrees with slimlab's own loop on the same model (same machine, same run)."""
    pytest.importorskip("mlperf_loadgen")
    model = from_reference("mlp", (40,), 10, {"hidden": [256, 256]})
    records = engine.run_benchmark(model, _loadgen_config())
    assert all(r["status"] == "ok" for r in records), records
    ss = [r for r in records if r["scenario"] == "single-stream"]
    assert {r["backend"] for r in ss} == {"eager", "onnxruntime"}
    for r in records:
        assert r["driver"] == "mlperf_loadgen" and r["loadgen"]["source"] == "mlperf_loadgen"
        assert r["latency_ms"]["p50"] > 0 and r["throughput_per_s"] > 0
        assert "Min duration satisfied" in r["loadgen"]["constraints"]
    eager = next(r for r in ss if r["backend"] == "eager")
    assert eager["loadgen"]["scenario"] == "single-stream" and eager["latency_ms"]["n"] >= 10
    assert eager["loadgen"]["queries"] == eager["latency_ms"]["n"]
    offline = [r for r in records if r["backend"] == "eager" and r["scenario"] == "offline"]
    assert sorted(r["batch_size"] for r in offline) == [1, 8] and sum(r["best"] for r in offline) == 1
    own = engine.run_benchmark(model, _loadgen_config(driver="slimlab", backends=["eager"]))
    own_p50 = next(r for r in own if r["scenario"] == "single-stream")["latency_ms"]["p50"]
    # LoadGen adds its own per-query cost (a Python callback and its completion) to each query.
    assert 0.3 * own_p50 < eager["latency_ms"]["p50"] < 5 * own_p50 + 0.5


def test_without_loadgen_the_own_loop_times_and_the_record_says_so(monkeypatch):
    from slimlab.bench import loadgen

    monkeypatch.setattr(loadgen, "loadgen_available", lambda: "no wheel for this platform (test)")
    model = from_reference("mlp", (40,), 10, {"hidden": [16]})
    records = engine.run_benchmark(model, _loadgen_config(backends=["eager"]))
    assert records and all(r["status"] == "ok" for r in records)
    for r in records:
        assert r["driver"] == "slimlab" and "no wheel for this platform" in r["driver_reason"]
        assert "loadgen" not in r and r["latency_ms"]["p50"] > 0


def test_engine_fields_at_their_defaults_leave_the_serialized_config_unchanged():
    legacy = {"enabled", "backends", "latency_batch_size", "throughput_batch_size", "warmup_iters"}
    legacy |= {"min_time_s", "min_iters", "threads"}
    assert set(BenchConfig().model_dump(mode="json")) == legacy  # so pinned trial ids stay the same
    tuned = BenchConfig(scenarios=["server"], latency_budget_ms=5.0)
    dumped = tuned.model_dump(mode="json")
    assert dumped["scenarios"] == ["server"] and dumped["latency_budget_ms"] == 5.0
    assert BenchConfig.model_validate(dumped) == tuned
    with pytest.raises(ValueError, match="batch_sizes"):
        BenchConfig(batch_sizes=[0, 4])
