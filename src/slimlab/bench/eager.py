"""PyTorch eager benchmarks: latency percentiles at a small batch, throughput at a large one."""

from __future__ import annotations

import torch
from torch import nn

from slimlab.bench.config import BenchConfig
from slimlab.bench.latency import measure
from slimlab.models.inference import model_device


def bench_eager(model: nn.Module, input_shape: tuple[int, ...], config: BenchConfig) -> list[dict]:
    """One record per batch size, shaped like a trial's `bench` entries (see DESIGN.md)."""
    model.eval()
    device = model_device(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    generator = torch.Generator().manual_seed(0)
    records = []
    for batch in dict.fromkeys([config.latency_batch_size, config.throughput_batch_size]):
        x = torch.randn(batch, *input_shape, generator=generator).to(device)

        def call(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        latency = measure(
            call,
            warmup_iters=config.warmup_iters,
            min_time_s=config.min_time_s,
            min_iters=config.min_iters,
            synchronize=sync,
        )
        records.append(
            {
                "backend": "eager",
                "device": str(device),
                "batch_size": batch,
                "latency_ms": latency.summary_ms(),
                "throughput_per_s": batch * len(latency.samples_s) / sum(latency.samples_s),
                "threads": torch.get_num_threads(),
                # Memory and energy meters come with the benchmark engine; None means "not measured".
                "peak_memory_bytes": None,
                "energy_j": None,
            }
        )
    return records
