"""The [bench] section of an experiment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BenchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    backends: list[Literal["eager"]] = Field(default=["eager"], min_length=1)
    latency_batch_size: int = Field(default=1, gt=0, description="batch size of the latency percentiles")
    throughput_batch_size: int = Field(default=256, gt=0, description="batch size of the throughput run")
    warmup_iters: int = Field(default=10, ge=0)
    min_time_s: float = Field(default=0.5, gt=0, description="each measurement runs at least this long")
    min_iters: int = Field(default=50, gt=0, description="... and at least this many calls")
    threads: int | None = Field(default=None, gt=0, description="torch threads; default: torch's own")

    def quick(self) -> BenchConfig:
        return self.model_copy(
            update={
                "min_time_s": min(self.min_time_s, 0.05),
                "min_iters": min(self.min_iters, 10),
                "warmup_iters": min(self.warmup_iters, 3),
                "throughput_batch_size": min(self.throughput_batch_size, 64),
            }
        )
