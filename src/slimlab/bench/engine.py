"""The composer: backend × scenario × meter. Each backend prepares the model once; each scenario object
(scenario_runs.py, from the SCENARIOS registry) measures the prepared model; the meters wrap each
measurement. One record per (backend, scenario, batch size), shaped like a trial's `bench` entries
(DESIGN.md), with the engine's extra fields added."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch

from slimlab.bench.accuracy import flag_drops, prepared_accuracy
from slimlab.bench.backends import Backend, BackendSkipped, backends_for, check_outputs
from slimlab.bench.config import BenchConfig
from slimlab.bench.latency import harness_overhead
from slimlab.bench.loading import LoadedModel
from slimlab.bench.scenario_runs import Target, model_input, scenarios_for, skipped_record, sweep_sizes
from slimlab.bench.scenarios import ScenarioSettings
from slimlab.bench.static_batch import restrict_to_batch, static_reason
from slimlab.data.batches import call, first_tensor

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


def _example(model: LoadedModel, batch: int, seed: int = 0):
    """`batch` rows of the model's inputs (scenario_runs.model_input)."""
    return model_input(model, batch, seed)


def _model_costs(model: LoadedModel) -> dict:
    """FLOPs per inference (one sample) and the bytes a batch must read at least (weights once, plus each
    sample's input and output): the roofline's inputs. None with a reason where they cannot be counted."""
    if model.module is None:
        return {"flops": None, "weight_bytes": None, "reason": "FLOPs are counted on PyTorch modules only"}
    from slimlab.evaluate.model_stats import count_flops, serialized_size

    example = _example(model, 1)
    if not isinstance(example, torch.Tensor) or not example.is_floating_point():
        return {"flops": None, "weight_bytes": None, "reason": "FLOPs are counted for one float input only"}
    try:
        flops = count_flops(model.module, example)
    except Exception as e:  # a module flop_counter cannot trace; the benchmark itself still runs
        return {"flops": None, "weight_bytes": None, "reason": f"flop counting failed: {e}"}
    # The state_dict's serialized size stands for the weight bytes: it counts packed int8 weights too.
    weight_bytes = serialized_size(model.module, compressed=False)[0]
    with torch.inference_mode():
        out_numel = first_tensor(model.module(example)).numel()
    return {
        "flops": flops,
        "weight_bytes": weight_bytes,
        "io_bytes_per_sample": 4 * (example.numel() + out_numel),
    }


_skipped = skipped_record


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
    backends = backends if backends is not None else backends_for(config.backends, config.session_threads)
    records: list[dict] = []
    static = model.meta.get("static_batch_size")
    if static:  # a program that accepts one batch size: the others are skipped, with the reason
        config, dropped = restrict_to_batch(config, static)
        records += [
            {**_skipped(b.name, static_reason(static)), "scenario": sc, "batch_size": n}
            for b in backends
            for sc, n in dropped
        ]
    settings = settings_for(config)
    scenarios = scenarios_for(config)
    sizes = sweep_sizes(config, scenarios)
    with pinned_threads(config.threads):
        costs = _model_costs(model)
        example = _example(model, static or model.fixed_batch or 4, seed=1)
        reference = None
        if model.module is not None and config.check_outputs:
            with torch.inference_mode():
                reference = first_tensor(call(model.module.eval(), example)).float().cpu().numpy()
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
                    common["accuracy"] = prepared_accuracy(
                        prepared, *validation, fixed_batch=model.fixed_batch
                    )
                target = Target(
                    prepared,
                    model.input_shape,
                    config,
                    settings,
                    common,
                    costs,
                    peak,
                    say,
                    sizes,
                    make_input=lambda batch: _example(model, batch),
                    fixed_batch=model.fixed_batch,
                )
                # All of a backend's scenarios (a batch size that cannot run is its own `skipped` record),
                # or (if the backend fails) its one `skipped` record, as before.
                records += [r for scenario in scenarios for r in scenario.run(target)]
            except BackendSkipped as e:
                records.append(_skipped(backend.name, str(e)))
            except Exception as e:  # one backend's surprise must not lose the others' results
                records.append(_skipped(backend.name, f"failed: {type(e).__name__}: {e}", failed=True))
    if validation is not None:
        flag_drops(records, "eager", config.accuracy_margin)
    return records


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
