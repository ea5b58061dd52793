"""Executors run the groups of an experiment's trials: in this process, in local worker processes, or as
Ray tasks. A group is the trials of one (dataset, seed), which share one trained dense parent.

Workers never touch the store. They send each finished trial's record back, and the driver commits it;
so the store has one writer whatever the executor, and its guarantees (whole trials only, resume) hold.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from slimlab.errors import SlimlabError
from slimlab.experiment.progress import RunProgress
from slimlab.experiment.record import TrialRecord
from slimlab.experiment.trial import failed_record, run_group

if TYPE_CHECKING:
    from slimlab.config import ExperimentConfig
    from slimlab.experiment.grid import TrialSpec

Keep = Callable[[TrialRecord], None]


class Executor(Protocol):
    name: str
    workers: int

    def run(
        self,
        config: ExperimentConfig,
        groups: list[list[TrialSpec]],
        progress: RunProgress,
        keep: Keep,
        run_dir: Path | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class GroupTask:
    """A group in a form that pickles cheaply and means the same on any machine: the resolved config
    and the trial ids to run. The worker re-expands the grid and picks those ids."""

    config: dict
    trial_ids: tuple[str, ...]
    workers: int
    run_dir: str | None = None  # where saved models go; a path every worker can write to


def _task(config: ExperimentConfig, group: list[TrialSpec], workers: int, run_dir=None) -> GroupTask:
    return GroupTask(config.to_dict(), tuple(s.id for s in group), workers, str(run_dir) if run_dir else None)


def execute_task(task: GroupTask, emit: Keep, progress: RunProgress | None = None) -> None:
    """Run one group (in whatever process this is) and emit each trial's record as it finishes."""
    from slimlab.config import parse_experiment
    from slimlab.experiment.grid import expand
    from slimlab.train import Trainer

    progress = progress or RunProgress()
    config = parse_experiment(task.config)
    wanted = set(task.trial_ids)
    group = [s for s in expand(config) if s.id in wanted]
    if len(group) != len(wanted):
        raise SlimlabError(
            "a worker expanded a different grid; are driver and workers on one slimlab version?"
        )
    trainer = Trainer(config.train, on_epoch=lambda e, n, _: progress.epoch(e, n))

    def tagged(record: TrialRecord) -> None:
        # Speed measured while other workers share the machine is marked as such.
        for bench in record.bench:
            bench["concurrent_workers"] = task.workers
        emit(record)

    run_group(group, config, trainer, progress, tagged, Path(task.run_dir) if task.run_dir else None)


def _fail_missing(group: list[TrialSpec], seen: set[str], error: BaseException, keep: Keep) -> None:
    for spec in group:
        if spec.id not in seen:
            keep(failed_record(spec, error))


class InProcessExecutor:
    """Runs the groups one after another in this process, with the per-epoch progress bar."""

    name = "local"
    workers = 1

    def run(self, config, groups, progress, keep, run_dir=None) -> None:
        for group in groups:
            execute_task(_task(config, group, 1, run_dir), keep, progress)


READY = "worker-ready"  # what a worker puts on the records queue once it has started


def _init_worker(threads: int, records=None) -> None:
    torch.set_num_threads(threads)
    if records is None:
        return
    # The one-off costs of a first trial, paid before the worker says it is ready, so that the driver
    # keeps the groups meanwhile: torch's optimizers import torch._dynamo on first use (1.5 s here).
    import importlib

    importlib.import_module("torch._dynamo")
    records.put(READY)


def _worker_task(task: GroupTask, records) -> int:
    execute_task(task, records.put)
    return len(task.trial_ids)


class WorkerPoolExecutor:
    """`workers` processes in all: this one (the driver) and `workers - 1` local worker processes (spawned,
    so no torch state is forked), the torch threads divided between them so that the machine is not
    oversubscribed. A group whose worker dies (killed, out of memory) is retried once in a fresh pool; then
    its unfinished trials are recorded as failed.

    The driver runs groups too, from the front of the queue, while the workers take theirs from the back.
    It is warm (its imports are done and the preflight has loaded the data), while a spawned worker spends
    its first seconds starting: on 2 cores, 1.8 s to spawn and import slimlab, then 3.8 s of one-off costs
    in its first group (torch's optimizer imports torch._dynamo, the data is generated). With a pool of
    `workers` processes and an idle driver, that start-up was paid before any trial ran and `--workers 2`
    was slower than 1 on a grid of small trials. A worker gets groups only once it has said it is ready
    (after those imports), then at most two at a time, so that it never waits for the driver to hand it
    the next one and never holds groups the driver could have run while it started."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None, retries: int = 1):
        self.workers = workers
        self.threads = threads or max(1, torch.get_num_threads() // workers)
        self.retries = retries
        self._run_dir: Path | None = None

    def run(self, config, groups, progress, keep, run_dir=None) -> None:
        self._run_dir = run_dir
        context = multiprocessing.get_context("spawn")
        seen: set[str] = set()

        def keep_seen(record: TrialRecord) -> None:
            seen.add(record.id)
            keep(record)

        lost = self._run_shared(context, config, groups, progress, keep_seen, seen)
        # A dead worker breaks the whole pool, so the groups lost with it include innocent ones. Retry each
        # lost group alone, in a pool of its own, so that a group that kills its worker again only fails
        # itself.
        for group in lost:
            for attempt in range(self.retries + 1):
                if attempt == self.retries:
                    error = RuntimeError("worker process died (killed or out of memory)")
                    _fail_missing(group, seen, error, keep)
                elif not self._run_pool(context, config, [group], progress, keep_seen, seen, 1):
                    break

    def _run_shared(self, context, config, groups, progress, keep, seen) -> list[list[TrialSpec]]:
        """Run `groups` in this process and in a pool of `workers - 1`; return the groups lost with a dead
        worker."""
        pending = deque(groups)
        lost: list[list[TrialSpec]] = []
        futures: dict = {}
        broken = False
        helpers = self.workers - 1
        with context.Manager() as manager:
            records = manager.Queue()
            pool = ProcessPoolExecutor(
                helpers, mp_context=context, initializer=_init_worker, initargs=(self.threads, records)
            )
            try:
                # Spawned only on the first submit: one placeholder task per worker starts them now.
                starting = [pool.submit(int) for _ in range(helpers)]
                ready = finished = 0

                def drain() -> None:
                    nonlocal ready
                    ready += _drain(records, keep)

                def collect(done) -> None:
                    nonlocal broken, finished
                    for future in done:
                        drain()
                        outcome = _settle(future, futures.pop(future), lost, seen, keep)
                        finished += outcome == "ok"
                        broken = broken or outcome == "lost"

                while pending or futures:
                    drain()
                    if any(f.done() and f.exception() is not None for f in starting):
                        broken = True  # a worker died while starting
                    mine = pending.popleft() if pending else None
                    # A worker still starting gets no group; a started one gets one (its first group
                    # still pays one-off costs, 3 s here, so it should not hold two the driver could
                    # run meanwhile), then two, so that it never waits for the driver to hand it the next.
                    while not broken and pending and len(futures) < (2 if finished else 1) * ready:
                        group = pending.pop()
                        task = _task(config, group, self.workers, self._run_dir)
                        futures[pool.submit(_worker_task, task, records)] = group
                    collect([f for f in futures if f.done()])
                    if mine is not None:
                        self._run_here(config, mine, progress, keep, seen)
                    elif futures:
                        done, _ = wait(set(futures), timeout=0.2, return_when=FIRST_COMPLETED)
                        collect(done)
                drain()
            finally:
                # Nothing is left to wait for: the workers exit on their own, while the driver writes
                # the report (waiting for them cost 1.6 s here).
                pool.shutdown(wait=False, cancel_futures=True)
        return [g for g in lost if any(s.id not in seen for s in g)]

    def _run_here(self, config, group, progress, keep, seen) -> None:
        """One group in the driver, with a worker's share of the threads."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            execute_task(_task(config, group, self.workers, self._run_dir), keep, progress)
        except Exception as error:  # the group itself failed outside any trial
            _fail_missing(group, seen, error, keep)
        finally:
            torch.set_num_threads(threads)

    def _run_pool(self, context, config, groups, progress, keep, seen, workers) -> list[list[TrialSpec]]:
        """Run `groups` in one pool of `workers` processes; return the groups lost with a dead worker."""
        lost: list[list[TrialSpec]] = []
        with context.Manager() as manager:
            records = manager.Queue()
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(self.threads,)
            ) as pool:
                futures = {
                    pool.submit(_worker_task, _task(config, g, self.workers, self._run_dir), records): g
                    for g in groups
                }
                remaining = set(futures)
                while remaining:
                    done, remaining = wait(remaining, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(records, keep)
                    for future in done:
                        _drain(records, keep)
                        _settle(future, futures[future], lost, seen, keep)
                _drain(records, keep)
        return [g for g in lost if any(s.id not in seen for s in g)]


def _settle(future, group: list[TrialSpec], lost: list, seen: set[str], keep: Keep) -> str:
    """A finished group's future: "ok"; "lost" with its worker (appended to `lost`, to be retried); or
    "failed" outside any trial (its unfinished trials recorded as failed)."""
    try:
        future.result()
    except BrokenProcessPool:
        lost.append(group)
        return "lost"
    except Exception as error:  # the group itself failed outside any trial
        _fail_missing(group, seen, error, keep)
        return "failed"
    return "ok"


def _drain(records, keep: Keep) -> int:
    """Commit every record waiting on the queue; return how many workers said they were ready."""
    ready = 0
    while True:
        try:
            item = records.get_nowait()
        except queue_module.Empty:
            return ready
        if item == READY:
            ready += 1
        else:
            keep(item)


def _ray_task(task: GroupTask) -> list[TrialRecord]:
    out: list[TrialRecord] = []
    execute_task(task, out.append)
    return out


class RayExecutor:
    """Each group is a Ray task; its records come back to the driver, which writes the store. Ray
    retries a task whose worker is lost (`max_retries`). `address=None` starts a local Ray instance;
    "auto" or "ray://host:10001" joins a cluster on which slimlab is installed."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 2):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SlimlabError("--executor ray needs Ray: pip install 'slimlab[ray]'") from None
        self.address = address
        self.workers = workers or 0
        self.retries = retries

    def run(self, config, groups, progress, keep, run_dir=None) -> None:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            options = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.workers or None, **options)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = self.workers or cpus
            threads = max(1, cpus // workers)
            remote = ray.remote(num_cpus=threads, max_retries=self.retries)(_ray_task)
            refs = {remote.remote(_task(config, g, workers, run_dir)): g for g in groups}
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                group = refs[ready[0]]
                try:
                    records = ray.get(ready[0])
                except Exception as error:  # retries exhausted, or the task raised
                    _fail_missing(group, set(), error, keep)
                    continue
                for record in records:
                    keep(record)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str, workers: int = 1, address: str | None = None) -> Executor:
    if workers < 1:
        raise SlimlabError(f"--workers must be at least 1; got {workers}")
    if name == "ray":
        return RayExecutor(address, workers if workers > 1 else None)
    if name != "local":
        raise SlimlabError(f"unknown executor {name!r}; known: local, ray")
    if address:
        raise SlimlabError("--address is for --executor ray")
    return InProcessExecutor() if workers == 1 else WorkerPoolExecutor(workers)
