"""The composer: backend × scenario × meter. Each backend prepares the model once; each scenario measures
the prepared model; the meters wrap each measurement. One record per (backend, scenario, batch size), shaped
like a trial's `bench` entries (DESIGN.md), with the engine's extra fields added."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch

from slimlab.bench.accuracy import flag_drops, prepared_accuracy
from slimlab.bench.backends import Backend, BackendSkipped, Prepared, check_outputs, get_backend
from slimlab.bench.calibration import roofline
from slimlab.bench.config import BenchConfig
from slimlab.bench.latency import Latency, harness_overhead
from slimlab.bench.loading import LoadedModel
from slimlab.bench.meters import EnergyMeter, PeakMemory, cost_per_million
from slimlab.bench.scenarios import (
    ScenarioSettings,
    ServiceModel,
    run_timed,
    server_search,
    single_stream_summary,
    spread,
)

Progress = Callable[[str], None]


@contextmanager
def pinned_threads(threads: int | None):
    """Run with `threads` torch threads (if given), and restore the previous count afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def settings_for(config: BenchConfig) -> ScenarioSettings:
    base = ScenarioSettings.loadgen().scaled(
        config.loadgen_scale, min_time_s=config.min_time_s, min_iters=config.min_iters
    )
    return ScenarioSettings(
        min_duration_s=base.min_duration_s,
        single_stream_queries=base.single_stream_queries,
        server_queries=base.server_queries,
        warmup_iters=config.warmup_iters,
        repeats=base.repeats,
    )


def _example(input_shape: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))


def _model_costs(model: LoadedModel) -> dict:
    """FLOPs per inference (one sample) and the bytes a batch must read at least (weights once, plus each
    sample's input and output): the roofline's inputs. None with a reason where they cannot be counted."""
    if model.module is None:
        return {"flops": None, "weight_bytes": None, "reason": "FLOPs are counted on PyTorch modules only"}
    from slimlab.evaluate.model_stats import count_flops, serialized_size

    example = _example(model.input_shape, 1)
    try:
        flops = count_flops(model.module, example)
    except Exception as e:  # a module flop_counter cannot trace; the benchmark itself still runs
        return {"flops": None, "weight_bytes": None, "reason": f"flop counting failed: {e}"}
    # The state_dict's serialized size stands for the weight bytes: it counts packed int8 weights too.
    weight_bytes = serialized_size(model.module)[0]
    with torch.inference_mode():
        out_numel = model.module(example).numel()
    return {
        "flops": flops,
        "weight_bytes": weight_bytes,
        "io_bytes_per_sample": 4 * (example.numel() + out_numel),
    }


def _measure(
    prepared: Prepared, x: torch.Tensor, settings: ScenarioSettings, min_calls: int
) -> tuple[Latency, dict]:
    """Time `prepared.run` on a fixed input, inside the memory and energy meters."""
    inp = prepared.to_input(x)
    prepared.run(inp)  # a first call on this shape, untimed: torch.compile recompiles, ORT allocates
    energy = EnergyMeter(prepared.device)
    with PeakMemory(prepared.device) as memory, energy:
        latency = run_timed(lambda: prepared.run(inp), settings, min_calls, prepared.synchronize)
    mem, joules = memory.reading(), energy.reading()
    calls_samples = len(latency.samples_s) + settings.warmup_iters
    meters = {
        "peak_memory_bytes": mem.peak_bytes,
        "memory_method": mem.method,
        # The meter spans warm-up and timed calls, so divide by all of them.
        "energy_j": joules.joules / (calls_samples * x.shape[0]) if joules.joules is not None else None,
        "energy_source": joules.source,
        "energy_reason": joules.reason,
    }
    if mem.reason:
        meters["memory_reason"] = mem.reason
    return latency, meters


def _record(
    prepared: Prepared,
    scenario: str,
    batch: int,
    latency_ms: dict,
    throughput: float,
    meters: dict,
    common: dict,
    costs: dict,
    peak: dict | None,
    config: BenchConfig,
) -> dict:
    flops = costs.get("flops")
    moved = None
    if costs.get("weight_bytes") is not None:
        moved = (costs["weight_bytes"] + batch * costs["io_bytes_per_sample"]) / batch
    int8 = prepared.info.get("precision") == "int8"  # compared with the int8 GEMM peak, not fp32's
    return {
        "backend": prepared.backend,
        "status": "ok",
        "scenario": scenario,
        "device": prepared.device,
        "batch_size": batch,
        "latency_ms": latency_ms,
        "throughput_per_s": throughput,
        "threads": torch.get_num_threads(),
        **meters,
        "size_bytes": prepared.size_bytes,
        "flops": flops,
        "roofline": roofline(flops, moved, throughput, peak, int8=int8),
        "cost_per_million": cost_per_million(throughput, config.dollars_per_hour),
        # The harness's own cost per call against this result's median: it should stay far below 1%.
        "harness_share": (
            common["harness_overhead_ms"] / latency_ms["p50"] if latency_ms.get("p50") else None
        ),
        **common,
        "info": prepared.info,
    }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _skipped(name: str, reason: str) -> dict:
    # The measured fields are present and None, so code that reads records by key need not special-case.
    return {
        "backend": name,
        "status": "skipped",
        "reason": _ANSI.sub("", reason),  # exporters colour their messages for terminals
        "scenario": None,
        "batch_size": None,
        "latency_ms": None,
        "throughput_per_s": None,
        "peak_memory_bytes": None,
        "energy_j": None,
    }


def run_benchmark(
    model: LoadedModel,
    config: BenchConfig,
    *,
    backends: list[Backend] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    peak: dict | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Benchmark `model` on each backend and scenario of `config`. `validation` (x, y) adds each backend's
    accuracy and flags drops beyond `config.accuracy_margin`; `peak` (from calibration.gemm_peak) adds the
    roofline position. A backend that cannot run is one `skipped` record with its reason."""
    say = progress or (lambda _msg: None)
    backends = backends if backends is not None else [get_backend(name) for name in config.backends]
    settings = settings_for(config)
    records: list[dict] = []
    with pinned_threads(config.threads):
        costs = _model_costs(model)
        example = _example(model.input_shape, 4, seed=1)
        reference = None
        if model.module is not None and config.check_outputs:
            with torch.inference_mode():
                reference = model.module.eval()(example).float().cpu().numpy()
        overhead = harness_overhead(warmup_iters=3, min_time_s=0.01, min_iters=100).percentile_ms(50)
        for backend in backends:
            say(f"{backend.name}: preparing")
            try:
                prepared = backend.prepare(model, example)
                common: dict = {"harness_overhead_ms": overhead}
                if reference is not None:
                    common["outputs_max_abs_diff"] = check_outputs(
                        prepared, reference, example, backend.tolerance
                    )
                if validation is not None:
                    common["accuracy"] = prepared_accuracy(prepared, *validation)
                records += _run_scenarios(prepared, model, config, settings, common, costs, peak, say)
            except BackendSkipped as e:
                records.append(_skipped(backend.name, str(e)))
            except Exception as e:  # one backend's surprise must not lose the others' results
                records.append(_skipped(backend.name, f"failed: {type(e).__name__}: {e}"))
    if validation is not None:
        flag_drops(records, "eager", config.accuracy_margin)
    return records


def _run_scenarios(
    prepared: Prepared,
    model: LoadedModel,
    config: BenchConfig,
    settings: ScenarioSettings,
    common: dict,
    costs: dict,
    peak: dict | None,
    say: Progress,
) -> list[dict]:
    out: list[dict] = []

    def record(scenario: str, batch: int, latency_ms: dict, throughput: float, meters: dict) -> dict:
        return _record(prepared, scenario, batch, latency_ms, throughput, meters, common, costs, peak, config)

    if "single-stream" in config.scenarios:
        batch = config.latency_batch_size
        say(f"{prepared.backend}: single-stream, batch {batch}")
        latency, meters = _measure(
            prepared, _example(model.input_shape, batch), settings, settings.single_stream_queries
        )
        summary = single_stream_summary(latency, settings.repeats)
        out.append(record("single-stream", batch, summary, batch / latency.mean_ms * 1e3, meters))

    service: dict[int, np.ndarray] = {}
    if "offline" in config.scenarios or "server" in config.scenarios:
        sweep = config.sweep
        if "server" in config.scenarios and config.server_max_batch:
            sweep = sorted(set(sweep) | {config.server_max_batch})
        offline, service = _offline_sweep(prepared, model, config, settings, sweep, say, record)
        if "offline" in config.scenarios:
            out += offline

    if "server" in config.scenarios:
        out.append(_server(prepared, config, settings, service, record, say))
    return out


def _offline_sweep(prepared, model, config, settings, sweep, say, record):
    """Throughput at each batch size, in increasing order, until `max_seconds` runs out. Every size's
    latency samples are kept: they are the server simulation's service times."""
    start = time.perf_counter()
    out, service, skipped = [], {}, []
    for batch in sweep:
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds and service:
            skipped.append(batch)
            continue
        say(f"{prepared.backend}: offline, batch {batch}")
        latency, meters = _measure(prepared, _example(model.input_shape, batch), settings, config.min_iters)
        service[batch] = np.asarray(latency.samples_s)
        summary = {**latency.summary_ms(), **spread(latency, settings.repeats)}
        throughput = batch * len(latency.samples_s) / sum(latency.samples_s)
        out.append(record("offline", batch, summary, throughput, meters))
    if out:
        best = max(out, key=lambda r: r["throughput_per_s"])
        for r in out:
            r["best"] = r is best
            r["sweep"] = {"measured": [x["batch_size"] for x in out], "not_measured_time_budget": skipped}
    return out, service


def _server(prepared, config, settings, service, record, say) -> dict:
    max_batch = config.server_max_batch or max(service)
    usable = {b: s for b, s in service.items() if b <= max_batch}
    if max_batch not in usable:  # the time budget cut the sweep short: batch only up to what was measured
        max_batch = max(usable)
    say(f"{prepared.backend}: server search, budget {config.latency_budget_ms} ms")
    search = server_search(
        ServiceModel(usable),
        latency_budget_s=config.latency_budget_ms / 1e3,
        max_batch=max_batch,
        max_queue_delay_s=config.max_queue_delay_ms / 1e3,
        settings=settings,
        max_seconds=config.max_seconds,
    )
    best = search.best
    latency_ms = (
        {"p50": best.p50_ms, "p90": best.p90_ms, "p99": best.p99_ms, "n": best.queries}
        if best
        else {"p50": None, "p90": None, "p99": None, "n": 0}
    )
    rate = best.rate_per_s if best else 0.0
    meters = {"peak_memory_bytes": None, "energy_j": None, "energy_reason": "simulated scenario"}
    r = record("server", max_batch, latency_ms, rate, meters)
    r["server"] = {
        **search.summary(),
        "latency_budget_ms": config.latency_budget_ms,
        "max_queue_delay_ms": config.max_queue_delay_ms,
        "max_batch": max_batch,
        "method": "discrete-event simulation on measured service times",
        "service_batch_sizes": sorted(usable),
        "early_stopping_min_queries": settings.server_queries,
    }
    if not best:
        r["server"]["note"] = "no rate met the budget: even the lightest load's p99 is over it"
    return r


def speedups(records: list[dict], baseline: str = "eager") -> dict[str, dict[str, float | None]]:
    """Per backend, how many times faster than `baseline`: single-stream p50 ratio, offline best
    throughput ratio, and server rate ratio."""

    def pick(backend: str) -> dict[str, float | None]:
        ok = [r for r in records if r["backend"] == backend and r["status"] == "ok"]
        ss = next((r["latency_ms"]["p50"] for r in ok if r["scenario"] == "single-stream"), None)
        off = max((r["throughput_per_s"] for r in ok if r["scenario"] == "offline"), default=None)
        srv = next((r["throughput_per_s"] for r in ok if r["scenario"] == "server"), None)
        return {"p50": ss, "offline": off, "server": srv}

    base = pick(baseline)
    out = {}
    for name in dict.fromkeys(r["backend"] for r in records):
        mine = pick(name)
        out[name] = {
            "single_stream": _ratio(base["p50"], mine["p50"]),
            "offline": _ratio(mine["offline"], base["offline"]),
            "server": _ratio(mine["server"], base["server"]),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b and math.isfinite(a / b) else None
