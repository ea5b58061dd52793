"""The [bench] section of an experiment, and the settings of `slimlab bench`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from slimlab.bench.backends import BACKENDS
from slimlab.bench.scenario_runs import SCENARIOS, ServerSettings
from slimlab.identity import Hparams

# A backend or scenario name is any name registered in BACKENDS or SCENARIOS, checked when a config is
# validated (so a backend registered at run time is accepted too); the JSON schema lists the names.
BackendName = BACKENDS.name_type("a registered bench backend")
ScenarioName = SCENARIOS.name_type("a registered bench scenario")

# The server scenario's settings sat flat in [bench] before they had their own table. Both spellings are
# accepted: `[bench] latency_budget_ms = 5` and `[bench.server] latency_budget_ms = 5` mean the same. The
# serialized config writes the flat names, so that trial ids do not change. flat key -> [bench.server] key:
SERVER_FLAT_KEYS = {
    "latency_budget_ms": "latency_budget_ms",
    "max_queue_delay_ms": "max_queue_delay_ms",
    "server_max_batch": "max_batch",
}


class BenchConfig(Hparams):
    """[bench]. Fields at their defaults stay out of the serialized config and of trial ids
    (slimlab.identity); setting one changes what a trial measures, and so its id."""

    flat_keys: ClassVar[tuple[str, ...]] = tuple(SERVER_FLAT_KEYS)  # accepted besides the fields

    enabled: bool = True
    backends: list[BackendName] = Field(default=["eager"], min_length=1)
    latency_batch_size: int = Field(default=1, gt=0, description="batch size of the latency percentiles")
    throughput_batch_size: int = Field(default=256, gt=0, description="batch size of the throughput run")
    warmup_iters: int = Field(default=10, ge=0)
    min_time_s: float = Field(default=0.5, gt=0, description="each measurement runs at least this long")
    min_iters: int = Field(default=50, gt=0, description="... and at least this many calls")
    threads: int | None = Field(default=None, gt=0, description="torch threads; default: torch's own")

    # The benchmark engine (slimlab.bench.engine). The fields above keep their meaning there.
    scenarios: list[ScenarioName] = Field(
        default=["single-stream", "offline"], min_length=1, description="MLPerf LoadGen scenarios to run"
    )
    batch_sizes: list[int] | None = Field(
        default=None,
        min_length=1,
        description="the offline sweep's batch sizes; default: latency_batch_size and throughput_batch_size",
    )
    loadgen_scale: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="fraction of LoadGen's minimums (600 s, 1,024 single-stream and 270,336 server queries); "
        "1 follows LoadGen, 0 uses only min_time_s and min_iters",
    )
    driver: Literal["slimlab", "loadgen"] = Field(
        default="slimlab",
        description="who times single-stream and offline: slimlab's own loop (per-call samples, the spread "
        "across repeats) or MLPerf LoadGen itself (mlcommons-loadgen: its percentiles and validity; the "
        "server scenario is still simulated on slimlab's service times)",
    )
    max_seconds: float | None = Field(
        default=None, gt=0, description="time budget of the offline sweep and of the server search, each"
    )
    dollars_per_hour: float | None = Field(
        default=None, ge=0, description="the machine's price, for cost per million inferences"
    )
    accuracy_margin: float = Field(
        default=0.01, ge=0, description="a backend whose accuracy drops more than this is flagged"
    )
    check_outputs: bool = Field(default=True, description="compare every backend's outputs with eager")
    save_models: bool = Field(
        default=False,
        description="save each trial's treated model as ONNX in RUN/models, for `slimlab bench RUN --trial`",
    )
    server: ServerSettings = Field(
        default_factory=ServerSettings,
        description="the server scenario's settings, [bench.server]; the flat keys latency_budget_ms, "
        "max_queue_delay_ms and server_max_batch in [bench] are accepted too",
    )

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_server_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in SERVER_FLAT_KEYS):
            return data
        data = dict(data)
        server = data.get("server", {})
        server = dict(server) if isinstance(server, dict) else server.model_dump()
        for flat, key in SERVER_FLAT_KEYS.items():
            if flat not in data:
                continue
            if key in server:
                raise PydanticCustomError(
                    "slimlab",
                    f"`bench.{flat}` and `bench.server.{key}` are the same setting; give only one",
                )
            server[key] = data.pop(flat)
        data["server"] = server
        return data

    def _serialized(self, data: dict[str, Any]) -> dict[str, Any]:
        server = data.pop("server", {})  # already without its defaults
        for flat, key in SERVER_FLAT_KEYS.items():
            if key in server:
                data[flat] = server[key]
        return data

    # The flat names, read-only, for callers written before [bench.server].
    @property
    def latency_budget_ms(self) -> float:
        return self.server.latency_budget_ms

    @property
    def max_queue_delay_ms(self) -> float:
        return self.server.max_queue_delay_ms

    @property
    def server_max_batch(self) -> int | None:
        return self.server.max_batch

    session_threads: list[int] | None = Field(
        default=None,
        min_length=1,
        description="thread counts tried by the onnxruntime-session backend (one record set each); "
        "default: torch's",
    )

    @model_validator(mode="after")
    def _positive_batches(self) -> BenchConfig:
        if self.batch_sizes is not None and any(b <= 0 for b in self.batch_sizes):
            raise ValueError(f"`bench.batch_sizes` must be positive integers; got {self.batch_sizes}")
        if self.session_threads is not None and any(t <= 0 for t in self.session_threads):
            raise ValueError(f"`bench.session_threads` must be positive integers; got {self.session_threads}")
        return self

    @property
    def sweep(self) -> list[int]:
        sizes = self.batch_sizes or [self.latency_batch_size, self.throughput_batch_size]
        return sorted(set(sizes))

    def quick(self) -> BenchConfig:
        return self.model_copy(
            update={
                "min_time_s": min(self.min_time_s, 0.05),
                "min_iters": min(self.min_iters, 10),
                "warmup_iters": min(self.warmup_iters, 3),
                "throughput_batch_size": min(self.throughput_batch_size, 64),
                "batch_sizes": sorted({min(b, 64) for b in self.batch_sizes}) if self.batch_sizes else None,
                "loadgen_scale": 0.0,
            }
        )
