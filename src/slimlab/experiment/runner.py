"""Runs an experiment: for each (dataset, seed) the dense parent is trained once, then every variant is
treated from it, evaluated and benchmarked. A trial that fails is recorded with its error, and the others
go on. Each finished trial is committed to the run's store at once, so a crash loses nothing already
computed, and running the same command again continues where it stopped: finished trials are not rerun.
"""

from __future__ import annotations

from pathlib import Path

import torch

from slimlab.bench import environment, gemm_peak
from slimlab.config import ExperimentConfig
from slimlab.experiment.executors import Executor, InProcessExecutor
from slimlab.experiment.grid import TrialSpec, expand
from slimlab.experiment.preflight import check_datasets
from slimlab.experiment.progress import RunProgress
from slimlab.experiment.record import TrialRecord
from slimlab.experiment.store import Store
from slimlab.experiment.trial import check_recipes, evaluate_trial, failed_record, run_group, save_model
from slimlab.train.trainer import resolve_device

__all__ = ["evaluate_trial", "failed_record", "load_run", "run_experiment", "run_group", "save_model"]


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    progress: RunProgress | None = None,
    retry_failed: bool = False,
    executor: Executor | None = None,
) -> list[TrialRecord]:
    """Run every trial of the grid that the store in `out_dir` does not hold yet (and, with
    `retry_failed`, those that failed), and return the records of the whole grid, in grid order.

    The `executor` (default: in this process) runs the work; whatever runs it, this process alone writes
    the store, one transaction per trial, as each trial's record arrives."""
    progress = progress or RunProgress()
    executor = executor or InProcessExecutor()
    resolve_device(config.train.device)  # a device this machine lacks is a user error, before any work
    check_datasets(config)  # so is a data file that cannot be read, before any trial is stored as failed
    check_recipes(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.bench.threads:
        torch.set_num_threads(config.bench.threads)
    specs = expand(config)
    env = environment()
    if config.bench.enabled:
        peak = gemm_peak()  # measured once per machine and cached; the trials read the cache
        env["gemm_peak_gflops"] = peak.get("fp32_gflops")
        env["gemm_peak"] = peak
        worker_threads = getattr(executor, "threads", None)
        if executor.workers > 1 and worker_threads and worker_threads != torch.get_num_threads():
            # Workers run with fewer threads, which is another cache key: measure it here, once, rather
            # than in every worker at the same time (each would measure a machine the others keep busy).
            from slimlab.bench.engine import pinned_threads

            with pinned_threads(worker_threads):
                gemm_peak()
    with Store.in_dir(out) as store:
        store.set_meta("config", config.to_dict())
        store.set_meta("environment", env)
        done = store.statuses()
        todo = [s for s in specs if s.id not in done or (retry_failed and done[s.id] == "failed")]

        def keep(record: TrialRecord) -> None:
            record.environment = env
            store.put_trial(record)
            progress.trial_done(record.status)

        groups: dict[tuple[str, int], list[TrialSpec]] = {}
        for spec in todo:
            groups.setdefault((spec.dataset.model_dump_json(), spec.seed), []).append(spec)
        progress.start(len(todo))
        try:
            executor.run(config, list(groups.values()), progress, keep, out)
        finally:
            progress.close()
        return store.trials([s.id for s in specs])


def load_run(out_dir: str | Path) -> tuple[ExperimentConfig | None, dict, list[TrialRecord]]:
    """(the run's config, parsed once here, environment, trial records of that config's grid) from a
    run directory's store; (None, {}, []) for a store without a config."""
    from slimlab.config import parse_experiment

    with Store.open_existing(out_dir, read_only=True) as store:
        stored = store.get_meta("config")
        env = store.get_meta("environment")
        if stored is None:
            return None, env or {}, []
        config = parse_experiment(stored, source=str(store.path))
        return config, env or {}, store.trials([s.id for s in expand(config)])
