"""The bench's scenarios as objects, as optimum-benchmark has them: each owns its settings and measures one
prepared model, `scenario.run(target) -> records`.

`scenarios.py` holds LoadGen's rules (early stopping, the scaled minimums, the server simulation); this module
applies them. A `Target` is a backend's prepared model together with what every measurement of it shares (the
input shape, LoadGen's scaled minimums, the meters, the record's common fields). The offline sweep is measured
once per target and shared: it is the offline scenario's result and the server simulation's service times.

A new scenario is a class with `name`, `sweep_sizes()` and `run(target)`, plus a factory from the
`BenchConfig`, registered in `SCENARIOS`; `BenchConfig.scenarios` then accepts its name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from pydantic import Field

from slimlab.bench.backends import Prepared
from slimlab.bench.calibration import roofline
from slimlab.bench.inputs import example_inputs
from slimlab.bench.latency import Latency
from slimlab.bench.meters import EnergyMeter, PeakMemory, cost_per_million
from slimlab.bench.scenarios import (
    ScenarioSettings,
    ServiceModel,
    run_timed,
    server_search,
    single_stream_summary,
    spread,
)
from slimlab.data.batches import Inputs, n_rows
from slimlab.identity import Hparams
from slimlab.registry import Registry

if TYPE_CHECKING:
    from slimlab.bench.config import BenchConfig

Progress = Callable[[str], None]


def example_input(input_shape: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))


def model_input(model: Any, batch: int, seed: int = 0) -> Inputs:
    """`batch` rows of a LoadedModel's inputs: its real examples cycled, else random ones of each input's
    declared shape and dtype (bench/inputs.py)."""
    return example_inputs(model.examples, model.inputs, batch, seed)


class BatchSkipped(Exception):
    """This batch size cannot run on this model (e.g. a graph with a constant batch axis)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def skipped_record(
    name: str, reason: str, scenario: str | None = None, batch: int | None = None, failed: bool = False
) -> dict:
    """A backend, or one of its batch sizes, that was not measured. The measured fields are present and
    None, so code that reads records by key need not special-case. `failed` marks an unexpected error (the
    CLI exits 1), as against a model that cannot run here."""
    return {
        "backend": name,
        "status": "skipped",
        "reason": _ANSI.sub("", reason),  # exporters colour their messages for terminals
        "failed": failed,
        "scenario": scenario,
        "batch_size": batch,
        "latency_ms": None,
        "throughput_per_s": None,
        "peak_memory_bytes": None,
        "energy_j": None,
    }


@dataclass
class Target:
    """One prepared model and what its measurements share. `common` is merged into every record."""

    prepared: Prepared
    input_shape: tuple[int, ...]
    config: BenchConfig
    settings: ScenarioSettings
    common: dict
    costs: dict
    peak: dict | None = None
    say: Progress = field(default=lambda _msg: None)
    sweep_sizes: list[int] = field(default_factory=list)  # what the offline sweep measures
    # `batch` rows of the model's own inputs (real examples, any dtypes); random floats of `input_shape`
    # when not given. `fixed_batch`: the only batch size a graph with a constant batch axis runs.
    make_input: Callable[[int], Inputs] | None = None
    fixed_batch: int | None = None
    _sweep: tuple[list[dict], dict[int, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return self.prepared.backend

    def check_batch(self, batch: int) -> None:
        if self.fixed_batch is not None and batch != self.fixed_batch:
            raise BatchSkipped(f"the model's inputs have a fixed batch size of {self.fixed_batch}")

    def measure_or_skip(self, scenario: str, batch: int, min_calls: int) -> tuple[Latency, dict] | dict:
        """`measure`, or the `skipped` record of this batch size: one the model cannot run, or an
        unexpected error (`failed`); the backend's other batch sizes are still measured."""
        try:
            self.check_batch(batch)
            return self.measure(batch, min_calls)
        except BatchSkipped as e:
            return skipped_record(self.backend, str(e), scenario, batch)
        except Exception as e:
            return skipped_record(self.backend, f"failed: {type(e).__name__}: {e}", scenario, batch, True)

    def measure(self, batch: int, min_calls: int) -> tuple[Latency, dict]:
        """Time `prepared.run` on a fixed input of `batch` samples, inside the memory and energy meters."""
        prepared, settings = self.prepared, self.settings
        x = self.make_input(batch) if self.make_input else example_input(self.input_shape, batch)
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
            "energy_j": joules.joules / (calls_samples * n_rows(x)) if joules.joules is not None else None,
            "energy_source": joules.source,
            "energy_reason": joules.reason,
        }
        if mem.reason:
            meters["memory_reason"] = mem.reason
        return latency, meters

    def record(self, scenario: str, batch: int, latency_ms: dict, throughput: float, meters: dict) -> dict:
        """One record, shaped like a trial's `bench` entries, with the engine's extra fields."""
        prepared, costs = self.prepared, self.costs
        flops = costs.get("flops")
        moved = None
        if costs.get("weight_bytes") is not None:
            moved = (costs["weight_bytes"] + batch * costs["io_bytes_per_sample"]) / batch
        precision = prepared.info.get("precision")  # compared with its own precision's GEMM peak, not fp32's
        return {
            "backend": prepared.backend,
            "status": "ok",
            "scenario": scenario,
            "device": prepared.device,
            "batch_size": batch,
            "latency_ms": latency_ms,
            "throughput_per_s": throughput,
            # A session backend runs with its own thread count, not torch's.
            "threads": prepared.info.get("threads") or torch.get_num_threads(),
            **meters,
            "size_bytes": prepared.size_bytes,
            "flops": flops,
            "roofline": roofline(flops, moved, throughput, self.peak, precision=precision),
            "cost_per_million": cost_per_million(throughput, self.config.dollars_per_hour),
            # The harness's own cost per call against this result's median: it should stay far below 1%.
            "harness_share": (
                self.common["harness_overhead_ms"] / latency_ms["p50"] if latency_ms.get("p50") else None
            ),
            **self.common,
            "info": prepared.info,
        }

    def sweep(self) -> tuple[list[dict], dict[int, np.ndarray]]:
        """The offline sweep, measured on first use: throughput at each of `sweep_sizes` in increasing order
        until `max_seconds` runs out, and every size's latency samples (the server's service times)."""
        if self._sweep is None:
            self._sweep = self._measure_sweep()
        return self._sweep

    def _measure_sweep(self) -> tuple[list[dict], dict[int, np.ndarray]]:
        config, settings = self.config, self.settings
        start = time.perf_counter()
        out: list[dict] = []
        service: dict[int, np.ndarray] = {}
        skipped: list[int] = []
        unmeasured: list[dict] = []
        for batch in self.sweep_sizes:
            out_of_time = config.max_seconds is not None and time.perf_counter() - start > config.max_seconds
            if out_of_time and service:
                skipped.append(batch)
                continue
            self.say(f"{self.backend}: offline, batch {batch}")
            measured = self.measure_or_skip("offline", batch, config.min_iters)
            if isinstance(measured, dict):
                unmeasured.append(measured)
                continue
            latency, meters = measured
            service[batch] = np.asarray(latency.samples_s)
            summary = {**latency.summary_ms(), **spread(latency, settings.repeats)}
            throughput = batch * len(latency.samples_s) / sum(latency.samples_s)
            out.append(self.record("offline", batch, summary, throughput, meters))
        if out:
            best = max(out, key=lambda r: r["throughput_per_s"])
            for r in out:
                r["best"] = r is best
                r["sweep"] = {"measured": [x["batch_size"] for x in out], "not_measured_time_budget": skipped}
        return out + unmeasured, service


class Scenario(Protocol):
    name: str

    def sweep_sizes(self) -> set[int]:
        """Batch sizes this scenario needs the shared offline sweep to measure (empty: none)."""
        ...

    def run(self, target: Target) -> list[dict]: ...


# name -> a factory that builds the scenario, with its settings, from the [bench] section. Registration order
# is the order in which scenarios run and their records appear.
SCENARIOS: Registry[Callable[[BenchConfig], Scenario]] = Registry("scenario")


@dataclass(frozen=True)
class SingleStream:
    """One query of `batch_size` samples at a time, the next when the last completes (LoadGen's
    single-stream); reports the latency percentiles and LoadGen's early-stopping estimates."""

    batch_size: int = 1
    name: str = "single-stream"

    @classmethod
    def from_config(cls, config: BenchConfig) -> SingleStream:
        return cls(batch_size=config.latency_batch_size)

    def sweep_sizes(self) -> set[int]:
        return set()

    def run(self, target: Target) -> list[dict]:
        target.say(f"{target.backend}: single-stream, batch {self.batch_size}")
        if target.config.driver == "loadgen":
            return [loadgen_single_stream(target, self.name, self.batch_size)]
        return self.run_own(target)

    def run_own(self, target: Target) -> list[dict]:
        """Timed by slimlab's own loop: per-call samples, the spread across repeats."""
        batch, settings = self.batch_size, target.settings
        measured = target.measure_or_skip(self.name, batch, settings.single_stream_queries)
        if isinstance(measured, dict):
            return [measured]
        latency, meters = measured
        summary = single_stream_summary(latency, settings.repeats)
        return [target.record(self.name, batch, summary, batch / latency.mean_ms * 1e3, meters)]


@dataclass(frozen=True)
class Offline:
    """All samples available at once (LoadGen's offline): throughput at each batch size of the sweep,
    the best one marked."""

    batch_sizes: tuple[int, ...] = ()
    name: str = "offline"

    @classmethod
    def from_config(cls, config: BenchConfig) -> Offline:
        return cls(batch_sizes=tuple(config.sweep))

    def sweep_sizes(self) -> set[int]:
        return set(self.batch_sizes)

    def run(self, target: Target) -> list[dict]:
        if target.config.driver == "loadgen":
            return loadgen_offline(target, self.name, self.batch_sizes)
        return target.sweep()[0]


# ----- MLPerf LoadGen as the timer (`[bench] driver = "loadgen"`) ------------------------------------------


def _loadgen_call(target: Target, batch: int) -> tuple[Callable[[], None], float]:
    """A call of the prepared model on `batch` rows of its inputs, warmed up, and its median time (ms)."""
    prepared = target.prepared
    target.check_batch(batch)
    x = target.make_input(batch) if target.make_input else example_input(target.input_shape, batch)
    inp = prepared.to_input(x)
    sync = prepared.synchronize or (lambda: None)

    def call() -> None:
        prepared.run(inp)
        sync()

    warm = []
    for _ in range(max(3, target.settings.warmup_iters)):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    return call, float(np.median(warm) * 1e3)


def _loadgen_bounds(target: Target) -> dict:
    """LoadGen's minimum duration (the scaled one, at least `min_time_s`) and a cap on each run."""
    min_s = max(target.settings.min_duration_s, target.config.min_time_s)
    cap = target.config.max_seconds or max(10.0, 4 * min_s)
    return {"min_duration_s": min_s, "max_duration_s": max(cap, min_s)}


def _loadgen_record(target: Target, scenario: str, batch: int, result, throughput, meters: dict) -> dict:
    lat = result.latency_ms
    summary = {k: lat.get(k) for k in ("p50", "p90", "p99", "mean")} | {"n": result.queries}
    record = target.record(scenario, batch, summary, throughput, meters)
    record["driver"] = "mlperf_loadgen"
    record["loadgen"] = result.to_dict()
    return record


def _fallback(records: list[dict], reason: str) -> list[dict]:
    for r in records:
        r["driver"] = "slimlab"
        r["driver_reason"] = f"LoadGen could not run, so slimlab's own loop timed this: {reason}"
    return records


def loadgen_single_stream(target: Target, scenario: str, batch: int) -> dict:
    """LoadGen's SingleStream on the prepared model: one query (of `batch` rows) at a time; LoadGen's own
    percentiles, early-stopping verdict and validity. Without LoadGen, slimlab's loop, and the record
    says so."""
    from slimlab.bench.loadgen import loadgen_available, single_stream

    reason = loadgen_available()
    if reason:
        return _fallback(SingleStream(batch).run_own(target), reason)[0]
    try:
        call, expected_ms = _loadgen_call(target, batch)
        memory = PeakMemory(target.prepared.device)
        with memory:
            result = single_stream(
                lambda _indices: call(),
                1024,
                expected_latency_ms=expected_ms,
                min_queries=target.settings.single_stream_queries,
                **_loadgen_bounds(target),
            )
    except BatchSkipped as e:
        return skipped_record(target.backend, str(e), scenario, batch)
    except Exception as e:
        return skipped_record(target.backend, f"failed: {type(e).__name__}: {e}", scenario, batch, True)
    mem = memory.reading()
    meters = {
        "peak_memory_bytes": mem.peak_bytes,
        "memory_method": mem.method,
        "energy_j": None,
        "energy_reason": "not measured under LoadGen",
    }
    mean = result.latency_ms.get("mean")
    return _loadgen_record(target, scenario, batch, result, batch / mean * 1e3 if mean else None, meters)


def loadgen_offline(target: Target, scenario: str, batch_sizes: tuple[int, ...]) -> list[dict]:
    """LoadGen's Offline at each batch size of the sweep: every sample in one query, which the model runs in
    calls of that batch size; LoadGen's samples per second. The best one is marked."""
    from slimlab.bench.loadgen import loadgen_available, offline

    reason = loadgen_available()
    if reason:
        return _fallback(target.sweep()[0], reason)
    out: list[dict] = []
    unmeasured: list[dict] = []
    for batch in sorted(batch_sizes):
        target.say(f"{target.backend}: offline (LoadGen), batch {batch}")
        try:
            call, expected_ms = _loadgen_call(target, batch)

            def run_batch(indices: list[int], call=call, batch=batch) -> None:
                for _ in range(-(-len(indices) // batch)):  # ceil: the last call is a full batch too
                    call()

            result = offline(
                run_batch,
                64 * batch,
                expected_qps=batch / max(expected_ms, 1e-3) * 1e3,
                **_loadgen_bounds(target),
            )
        except BatchSkipped as e:
            unmeasured.append(skipped_record(target.backend, str(e), scenario, batch))
            continue
        except Exception as e:
            error = f"failed: {type(e).__name__}: {e}"
            unmeasured.append(skipped_record(target.backend, error, scenario, batch, True))
            continue
        meters = {"peak_memory_bytes": None, "energy_j": None, "energy_reason": "not measured under LoadGen"}
        out.append(_loadgen_record(target, scenario, batch, result, result.completed_qps, meters))
    if out:
        best = max(out, key=lambda r: r["throughput_per_s"] or 0.0)
        for r in out:
            r["best"] = r is best
    return out + unmeasured


class ServerSettings(Hparams):
    """The server scenario's own settings: `[bench.server]`. The flat keys written before it existed
    (`bench.latency_budget_ms`, `bench.max_queue_delay_ms`, `bench.server_max_batch`) are still accepted
    and still what the serialized config (and so the trial id) holds."""

    latency_budget_ms: float = Field(default=10.0, gt=0, description="the p99 latency bound")
    max_queue_delay_ms: float = Field(default=1.0, ge=0, description="how long a batch may wait to fill")
    max_batch: int | None = Field(
        default=None, gt=0, description="largest dynamic batch; default: the largest swept size"
    )


@dataclass(frozen=True)
class Server:
    """Poisson arrivals and a dynamic batcher, simulated on the sweep's measured service times (see
    scenarios.py); reports the highest rate whose p99 passes LoadGen's early-stopping test."""

    settings: ServerSettings = field(default_factory=ServerSettings)
    max_seconds: float | None = None
    name: str = "server"

    @classmethod
    def from_config(cls, config: BenchConfig) -> Server:
        return cls(settings=config.server, max_seconds=config.max_seconds)

    def sweep_sizes(self) -> set[int]:
        return {self.settings.max_batch} if self.settings.max_batch else set()

    def run(self, target: Target) -> list[dict]:
        service = target.sweep()[1]
        if not service:
            return [skipped_record(target.backend, "no batch size could be measured", self.name)]
        settings, budget = target.settings, self.settings.latency_budget_ms
        max_batch = self.settings.max_batch or max(service)
        usable = {b: s for b, s in service.items() if b <= max_batch}
        if max_batch not in usable:  # the time budget cut the sweep short: batch only up to what was measured
            max_batch = max(usable)
        target.say(f"{target.backend}: server search, budget {budget} ms")
        search = server_search(
            ServiceModel(usable),
            latency_budget_s=budget / 1e3,
            max_batch=max_batch,
            max_queue_delay_s=self.settings.max_queue_delay_ms / 1e3,
            settings=settings,
            max_seconds=self.max_seconds,
        )
        best = search.best
        latency_ms = (
            {"p50": best.p50_ms, "p90": best.p90_ms, "p99": best.p99_ms, "n": best.queries}
            if best
            else {"p50": None, "p90": None, "p99": None, "n": 0}
        )
        rate = best.rate_per_s if best else 0.0
        meters = {"peak_memory_bytes": None, "energy_j": None, "energy_reason": "simulated scenario"}
        r = target.record(self.name, max_batch, latency_ms, rate, meters)
        r["server"] = {
            **search.summary(),
            "latency_budget_ms": budget,
            "max_queue_delay_ms": self.settings.max_queue_delay_ms,
            "max_batch": max_batch,
            "method": "discrete-event simulation on measured service times",
            "service_batch_sizes": sorted(usable),
            "early_stopping_min_queries": settings.server_queries,
        }
        if not best:
            r["server"]["note"] = "no rate met the budget: even the lightest load's p99 is over it"
        return [r]


SCENARIOS.register("single-stream", SingleStream.from_config, description=SingleStream.__doc__ or "")
SCENARIOS.register("offline", Offline.from_config, description=Offline.__doc__ or "")
SCENARIOS.register("server", Server.from_config, description=Server.__doc__ or "")


def scenarios_for(config: BenchConfig) -> list[Scenario]:
    """The scenarios `config` asks for, built with their settings, in registration order."""
    return [factory(config) for name, factory in SCENARIOS.items() if name in config.scenarios]


def sweep_sizes(config: BenchConfig, scenarios: list[Scenario]) -> list[int]:
    """The offline sweep's batch sizes: the config's, plus any a scenario needs (the server's max batch)."""
    sizes = set(config.sweep)
    for scenario in scenarios:
        sizes |= scenario.sweep_sizes()
    return sorted(sizes)


__all__ = [
    "SCENARIOS",
    "BatchSkipped",
    "Offline",
    "Scenario",
    "Server",
    "ServerSettings",
    "SingleStream",
    "Target",
    "example_input",
    "model_input",
    "scenarios_for",
    "skipped_record",
    "sweep_sizes",
]
