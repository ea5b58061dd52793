"""MLPerf Inference LoadGen (`mlcommons-loadgen`, `import mlperf_loadgen`) in process: its SingleStream and
Offline scenarios on a callable, and the reading of its summary. The bench's `loadgen-single-stream` and
`loadgen-offline` scenarios (bench/scenario_runs.py) and the HTTP load of `slimlab.serve.loadgen` use it.

If `mlperf_loadgen` cannot be imported (a platform without a wheel), `loadgen_available()` says why, and
callers fall back to slimlab's own scenarios and record that.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


def loadgen_available() -> str | None:
    """None if LoadGen imports here, else the reason."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError as e:
        return f"mlcommons-loadgen is not installed or has no wheel for this platform ({e})"
    return None


@dataclass
class LoadGenResult:
    scenario: str
    valid: bool
    target_qps: float | None
    completed_qps: float | None
    latency_ms: dict[str, float]
    early_stopping: str | None  # LoadGen's own early-stopping verdict line
    constraints: dict[str, bool] = field(default_factory=dict)
    queries: int | None = None
    errors: int = 0  # HTTP answers other than 200 (a valid run needs none)
    source: str = "mlperf_loadgen"

    def to_dict(self) -> dict:
        return asdict(self)


def _number(text: str, label: str) -> float | None:
    match = re.search(rf"^{re.escape(label)}\s*:\s*([0-9.eE+-]+)", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def parse_summary(text: str, scenario: str, target_qps: float | None) -> LoadGenResult:
    """The numbers of LoadGen's `mlperf_log_summary.txt`."""
    latency = {}
    for q in ("50.00", "90.00", "95.00", "99.00", "99.90"):
        value = _number(text, f"{q} percentile latency (ns)")
        if value is not None:
            latency[f"p{q.rstrip('0').rstrip('.')}"] = value / 1e6
    mean = _number(text, "Mean latency (ns)")
    if mean is not None:
        latency["mean"] = mean / 1e6
    constraints = {
        m.group(1).strip(): m.group(2).lower() == "yes"
        for m in re.finditer(r"^\s+(.+?satisfied)\s*:\s*(Yes|NO)\s*$", text, re.MULTILINE | re.IGNORECASE)
    }
    stop = re.search(r"Early Stopping Result:\s*\n\s*\*\s*(.+)", text)
    qps = (
        _number(text, "Completed samples per second")
        or _number(text, "Samples per second")
        or _number(text, "QPS w/o loadgen overhead")
    )
    # "Processed 392 queries." (a run that stopped early) or "Processed at least 64 queries (400)."
    queries = re.search(r"Processed (?:at least \d+ queries \()?(\d+)", text)
    return LoadGenResult(
        scenario=scenario,
        valid="Result is : VALID" in text,
        target_qps=target_qps,
        completed_qps=qps,
        latency_ms=latency,
        early_stopping=stop.group(1).strip() if stop else None,
        constraints=constraints,
        queries=int(queries.group(1)) if queries else None,
    )


def loadgen_settings(
    lg, scenario, *, min_duration_s: float, max_duration_s: float, min_queries: int, seed: int
):
    settings = lg.TestSettings()
    settings.scenario = scenario
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(min_duration_s * 1e3)
    settings.max_duration_ms = int(max_duration_s * 1e3)
    settings.min_query_count = min_queries
    settings.qsl_rng_seed = settings.sample_index_rng_seed = settings.schedule_rng_seed = seed
    return settings


def run_loadgen(lg, sut, count: int, settings, scenario: str, target_qps: float | None) -> LoadGenResult:
    qsl = lg.ConstructQSL(count, count, lambda _s: None, lambda _s: None)
    with tempfile.TemporaryDirectory(prefix="slimlab-loadgen-") as out:
        log = lg.LogSettings()
        log.log_output.outdir = out
        log.log_output.copy_summary_to_stdout = False
        log.enable_trace = False
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            lg.DestroyQSL(qsl)
        text = (Path(out) / "mlperf_log_summary.txt").read_text()
    return parse_summary(text, scenario, target_qps)


def in_process(
    scenario_name: str,
    run_batch: Callable[[list[int]], object],
    count: int,
    configure: Callable,
    **options,
) -> LoadGenResult:
    import mlperf_loadgen as lg

    def issue(queries) -> None:
        run_batch([q.index for q in queries])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in queries])

    sut = lg.ConstructSUT(issue, lambda: None)
    scenario = {"single-stream": lg.TestScenario.SingleStream, "offline": lg.TestScenario.Offline}[
        scenario_name
    ]
    settings = loadgen_settings(lg, scenario, **options)
    configure(settings)
    try:
        return run_loadgen(lg, sut, count, settings, scenario_name, None)
    finally:
        lg.DestroySUT(sut)


def single_stream(
    run_batch: Callable[[list[int]], object],
    count: int,
    *,
    expected_latency_ms: float = 1.0,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
    min_queries: int = 100,
    seed: int = 0,
) -> LoadGenResult:
    """LoadGen SingleStream: one query of one sample at a time; its p90 is the scenario's metric."""

    def configure(settings) -> None:
        settings.single_stream_expected_latency_ns = int(expected_latency_ms * 1e6)

    return in_process(
        "single-stream", run_batch, count, configure,
        min_duration_s=min_duration_s, max_duration_s=max_duration_s, min_queries=min_queries, seed=seed,
    )  # fmt: skip


def offline(
    run_batch: Callable[[list[int]], object],
    count: int,
    *,
    expected_qps: float = 1000.0,
    min_duration_s: float = 1.0,
    max_duration_s: float = 10.0,
    min_queries: int = 1,
    seed: int = 0,
) -> LoadGenResult:
    """LoadGen Offline: every sample in one query; `run_batch` receives them all (it batches them)."""

    def configure(settings) -> None:
        settings.offline_expected_qps = float(expected_qps)

    return in_process(
        "offline", run_batch, count, configure,
        min_duration_s=min_duration_s, max_duration_s=max_duration_s, min_queries=min_queries, seed=seed,
    )  # fmt: skip
