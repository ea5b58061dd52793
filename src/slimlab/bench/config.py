"""The [bench] section of an experiment, and the settings of `slimlab bench`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, model_serializer, model_validator

BackendName = Literal["eager", "compile", "onnxruntime", "onnxruntime-int8"]
ScenarioName = Literal["single-stream", "offline", "server"]

# Fields added with the benchmark engine. They are left out of the serialized config while at their defaults,
# so that trial ids (a hash of the resolved config, pinned in tests) of existing experiments do not change;
# setting one changes what a trial measures, and so its id (open_lth's rule: hash what is not default).
ENGINE_FIELDS = (
    "scenarios",
    "batch_sizes",
    "loadgen_scale",
    "latency_budget_ms",
    "max_queue_delay_ms",
    "server_max_batch",
    "max_seconds",
    "dollars_per_hour",
    "accuracy_margin",
    "check_outputs",
    "save_models",
)


class BenchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

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
    latency_budget_ms: float = Field(default=10.0, gt=0, description="server scenario: the p99 bound")
    max_queue_delay_ms: float = Field(default=1.0, ge=0, description="server: how long a batch may wait")
    server_max_batch: int | None = Field(
        default=None, gt=0, description="server: largest dynamic batch; default: the largest swept size"
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

    @model_validator(mode="after")
    def _positive_batches(self) -> BenchConfig:
        if self.batch_sizes is not None and any(b <= 0 for b in self.batch_sizes):
            raise ValueError(f"`bench.batch_sizes` must be positive integers; got {self.batch_sizes}")
        return self

    @model_serializer(mode="wrap")
    def _drop_engine_defaults(self, handler, info: SerializationInfo) -> dict:
        data = handler(self)
        for name in ENGINE_FIELDS:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data

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
