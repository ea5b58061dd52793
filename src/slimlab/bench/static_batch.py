"""Programs that run at one batch size only. `torch.export` specializes the batch axis unless it is told
that the axis is dynamic, so a `.pt2` saved with its defaults refuses every other batch size
(`Guard failed: x.size()[0] == 1`). The benchmark runs the size the program accepts, and every other
requested size or scenario becomes a skipped record that says why."""

from __future__ import annotations

from slimlab.bench.config import BenchConfig


def static_reason(batch: int) -> str:
    return (
        f"the program was exported with a static batch size of {batch} (torch.export's default); "
        "export it with dynamic_shapes={'x': {0: torch.export.Dim('batch')}} to run other batch sizes"
    )


def restrict_to_batch(config: BenchConfig, batch: int) -> tuple[BenchConfig, list[tuple[str, int]]]:
    """(a config that measures only `batch`, the (scenario, batch size) pairs that cannot run)."""
    dropped: list[tuple[str, int]] = []
    scenarios = list(config.scenarios)
    if "single-stream" in scenarios and config.latency_batch_size != batch:
        dropped.append(("single-stream", config.latency_batch_size))
        scenarios.remove("single-stream")
    server_max = config.server.max_batch
    wanted = set(config.sweep) | ({server_max} if server_max else set())
    dropped += [("offline", b) for b in sorted(wanted) if b != batch and "offline" in scenarios]
    if "server" in scenarios and batch != max(wanted):
        # The server batches requests dynamically up to its largest size; one size cannot simulate that.
        dropped.append(("server", max(wanted)))
        scenarios.remove("server")
    if not scenarios:
        scenarios = ["offline"]  # measure what the program can run, even when it was not asked for
    update = {
        "scenarios": scenarios,
        "batch_sizes": [batch],
        "latency_batch_size": batch,
        "throughput_batch_size": batch,
    }
    return config.model_copy(
        update={**update, "server": config.server.model_copy(update={"max_batch": None})}
    ), dropped
