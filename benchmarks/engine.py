"""Experiment-engine benchmark: the speedup of 2 local workers over 1, and the engine's per-trial overhead.

    python benchmarks/engine.py            # prints a markdown section for BENCHMARKS.md

Both figures come from one run on one machine. Benchmarks inside the trials are switched off, so the
workers compete only for training compute.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from slimlab.bench import environment
from slimlab.config import parse_experiment
from slimlab.experiment import Store, run_experiment
from slimlab.experiment.executors import make_executor

GRID = {
    "name": "engine-bench",
    "data": {"name": "mnist1d", "num_samples": 5000},
    "model": {"name": "cnn1d"},
    "train": {"epochs": 120, "patience": None},
    "variants": [{"name": "dense"}, {"name": "int8", "treatments": [{"kind": "dynamic_int8"}]}],
    "evaluate": {"seeds": 8},
    "bench": {"enabled": False},
}

TRIVIAL = {
    "name": "engine-overhead",
    "data": {"name": "digits", "num_samples": 200},
    "model": {"name": "mlp", "hidden": [4]},
    "train": {"epochs": 1},
    "variants": [{"name": f"v{i}"} for i in range(10)],
    "evaluate": {"seeds": 3, "baseline": "v0"},
    "bench": {"enabled": False},
}


def timed_run(raw: dict, workers: int) -> tuple[float, int]:
    config = parse_experiment(raw)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trials = run_experiment(config, out, executor=make_executor("local", workers))
        return time.perf_counter() - start, len(trials)


def store_commit_ms(n: int = 200) -> float:
    record = {
        "id": "",
        "dataset": "d",
        "seed": 0,
        "variant": "v",
        "status": "ok",
        "metrics": {"accuracy": 0.9},
        "bench": [],
        "predictions": list(range(1000)),
    }
    with tempfile.TemporaryDirectory() as out, Store.in_dir(Path(out)) as store:
        start = time.perf_counter()
        for i in range(n):
            store.put_trial({**record, "id": f"t{i}"})
        return (time.perf_counter() - start) / n * 1e3


SMALL = {**GRID, "train": {"epochs": 15, "patience": None}, "evaluate": {"seeds": 4}}


def main() -> None:
    env = environment()
    one, n = timed_run(GRID, 1)
    two, _ = timed_run(GRID, 2)
    small_one, n_small = timed_run(SMALL, 1)
    small_two, _ = timed_run(SMALL, 2)
    trivial, n_trivial = timed_run(TRIVIAL, 1)
    commit = store_commit_ms()
    print("## Experiment engine (issue 5)\n")
    print(
        "Command: `python benchmarks/engine.py`. Machine: "
        f"{env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, {torch.get_num_threads()} threads.\n"
    )
    print("| measurement | value |\n|---|---|")
    print(f"| grid: {n} trials (CNN on MNIST-1D, 8 seeds × 2 variants, 120 epochs), 1 worker | {one:.1f} s |")
    print(f"| same grid, 2 worker processes (1 torch thread each) | {two:.1f} s |")
    print(f"| speedup of 2 workers over 1 | {one / two:.2f}x |")
    print(
        f"| small grid: {n_small} trials (4 seeds × 2 variants, 15 epochs), 1 worker / 2 workers "
        f"| {small_one:.1f} s / {small_two:.1f} s ({small_one / small_two:.2f}x) |"
    )
    print(
        f"| per-trial wall time of trivial trials ({n_trivial} trials, 1-epoch 4-unit MLP on 200 samples) "
        f"| {trivial / n_trivial * 1e3:.0f} ms |"
    )
    print(
        f"| one trial committed to the store (WAL, synchronous=FULL, 1,000 predictions) | {commit:.2f} ms |"
    )


if __name__ == "__main__":
    main()
