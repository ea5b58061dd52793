"""Executors run the groups of an experiment's trials: in this process, in local worker processes, or as
Ray tasks. A group is the trials of one (dataset, seed), which share one trained dense parent.

Workers never touch the store. They send each finished trial's record back, and the driver commits it;
so the store has one writer whatever the executor, and its guarantees (whole trials only, resume) hold.

This module imports neither torch nor the trial code at import time, so that the command can start its
workers (`start`) before its own imports: a spawned worker imports them in parallel with the driver.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from slimlab.errors import SlimlabError
from slimlab.experiment.progress import RunProgress

if TYPE_CHECKING:
    from slimlab.config import ExperimentConfig
    from slimlab.experiment.grid import TrialSpec
    from slimlab.experiment.record import TrialRecord

Keep = Callable[["TrialRecord"], None]


class Executor(Protocol):
    name: str
    workers: int
    # Called at most once, when this process has no group left to run and waits for others' (the CLI
    # imports the report's modules then, 0.9 s here, which it would otherwise pay after the last trial).
    while_waiting: Callable[[], None] | None

    def start(self) -> None:
        """Begin starting any worker processes (idempotent); `run` calls it if the caller did not."""
        ...

    def close(self) -> None:
        """Let go of any worker processes (idempotent), whether `run` ran or not."""
        ...

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
    threads: int | None = None  # torch threads for the group; None leaves this process's setting


def _task(
    config: ExperimentConfig, group: list[TrialSpec], workers: int, run_dir=None, threads: int | None = None
) -> GroupTask:
    run_dir = str(run_dir) if run_dir else None
    return GroupTask(config.to_dict(), tuple(s.id for s in group), workers, run_dir, threads)


def execute_task(task: GroupTask, emit: Keep, progress: RunProgress | None = None) -> None:
    """Run one group (in whatever process this is) and emit each trial's record as it finishes."""
    import torch

    from slimlab.config import parse_experiment
    from slimlab.experiment.grid import expand
    from slimlab.experiment.trial import run_group
    from slimlab.train import Trainer

    if task.threads:
        torch.set_num_threads(task.threads)
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
    from slimlab.experiment.trial import failed_record

    for spec in group:
        if spec.id not in seen:
            keep(failed_record(spec, error))


class InProcessExecutor:
    """Runs the groups one after another in this process, with the per-epoch progress bar."""

    name = "local"
    workers = 1
    while_waiting = None  # never waits

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, config, groups, progress, keep, run_dir=None) -> None:
        for group in groups:
            execute_task(_task(config, group, 1, run_dir), keep, progress)


READY = "worker-ready"  # what a worker puts on the ready queue once it has started


def _init_worker(workers: int, ready=None) -> None:
    """A worker's start: its share of the threads (each task then sets the driver's figure), and the
    one-off costs of a first trial, paid before the worker says it is ready, so that the driver keeps the
    groups meanwhile: the trial code's imports, and the modules a first trial imports on first use
    (torch._dynamo, 1.5 s here; scikit-learn)."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads() // workers))
    if ready is None:
        return
    from slimlab.experiment.trial import preload

    preload()
    ready.put(READY)


def _worker_task(task: GroupTask, records) -> int:
    execute_task(task, records.put)
    return len(task.trial_ids)


class WorkerPoolExecutor:
    """`workers` processes in all: this one (the driver) and `workers - 1` local worker processes (spawned,
    so no torch state is forked), the torch threads divided between them so that the machine is not
    oversubscribed. A group whose worker dies (killed, out of memory) is retried once in a fresh pool; then
    its unfinished trials are recorded as failed.

    The command calls `start` first, before it imports torch and loads the config, so that a worker's
    start (1.8 s to spawn and import here, then its first trial's one-off imports) overlaps the driver's
    own imports and preflight rather than following them. The driver runs groups too, from the front of
    the queue, while the workers take theirs from the back. A worker gets groups only once it has said it
    is ready (after those imports), and one at a time, handed over by a feeder thread as soon as its last
    one is done. With an idle driver and workers started only when the trials began, `--workers 2` was
    slower than 1 on a grid of small trials."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None, retries: int = 1):
        self.workers = workers
        self._threads = threads
        self.retries = retries
        self._run_dir: Path | None = None
        self.while_waiting: Callable[[], None] | None = None
        self._context = multiprocessing.get_context("spawn")
        self._manager = self._records = self._ready = self._pool = None
        self._starting: list = []
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None

    @property
    def threads(self) -> int:
        """Each process's torch threads: this process's count (the machine's, or `bench.threads`) divided
        between the processes."""
        import torch

        return self._threads or max(1, torch.get_num_threads() // self.workers)

    def start(self) -> None:
        """Start the workers in a thread: the manager process that carries the queues makes its caller
        wait until it is up (0.3 s here), which the command spends on its imports instead."""
        if self._starter is None:
            self._starter = threading.Thread(target=self._start_pool, name="slimlab-start", daemon=True)
            self._starter.start()

    def _started(self) -> None:
        if self._starter is not None:
            self._starter.join()
        if self._start_error is not None:
            raise self._start_error

    def _start_pool(self) -> None:
        helpers = self.workers - 1
        try:
            self._manager = self._context.Manager()  # started: it carries the two queues
            self._records, self._ready = self._manager.Queue(), self._manager.Queue()
            self._pool = ProcessPoolExecutor(
                helpers,
                mp_context=self._context,
                initializer=_init_worker,
                initargs=(self.workers, self._ready),
            )
            # Spawned only on a submit: one placeholder task per worker starts them now.
            self._starting = [self._pool.submit(int) for _ in range(helpers)]
        except BaseException as error:  # re-raised in the caller's thread, by `run`
            self._start_error = error

    def close(self) -> None:
        # Nothing is left to wait for: the workers exit on their own, while the driver writes the report
        # (waiting for them cost 1.6 s here).
        if self._starter is not None:
            self._starter.join()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._manager is not None:
            self._manager.shutdown()
        self._manager = self._records = self._ready = self._pool = None
        self._starter = self._start_error = None

    def run(self, config, groups, progress, keep, run_dir=None) -> None:
        self._run_dir = run_dir
        seen: set[str] = set()

        def keep_seen(record: TrialRecord) -> None:
            seen.add(record.id)
            keep(record)

        self.start()
        try:
            self._started()
            lost = self._run_shared(config, groups, progress, keep_seen, seen)
        finally:
            self.close()
        # A dead worker breaks the whole pool, so the groups lost with it include innocent ones. Retry each
        # lost group alone, in a pool of its own, so that a group that kills its worker again only fails
        # itself.
        for group in lost:
            for attempt in range(self.retries + 1):
                if attempt == self.retries:
                    error = RuntimeError("worker process died (killed or out of memory)")
                    _fail_missing(group, seen, error, keep)
                elif not self._run_pool(config, [group], progress, keep_seen, seen, 1):
                    break

    def _run_shared(self, config, groups, progress, keep, seen) -> list[list[TrialSpec]]:
        """Run `groups` in this process and in the started pool of `workers - 1`; return the groups lost
        with a dead worker.

        A feeder thread hands the workers their groups, so that a worker that is ready, or has finished
        one, gets the next at once rather than when the driver has finished its own current group (half
        a second of idle worker per group here). The calling thread alone commits records (the store is
        not shared between threads) and settles finished futures."""
        pending = deque(groups)
        lost: list[list[TrialSpec]] = []
        futures: dict = {}
        lock = threading.Lock()
        done_feeding = threading.Event()
        broken = threading.Event()
        wake = threading.Event()  # set when a worker's group is done: the feeder hands it the next
        threads = self.threads

        def feed() -> None:
            ready = 0
            while not done_feeding.is_set():
                ready += _drain(self._ready, lambda _: None)  # each item is one worker's READY
                if any(f.done() and f.exception() is not None for f in self._starting):
                    broken.set()  # a worker died while starting
                with lock:
                    in_flight = sum(not f.done() for f in futures)
                    # A worker still starting gets no group, and a started one one at a time: a second
                    # queued behind it is a group the driver could have run while the worker was busy
                    # (at the end, the driver idled while the worker ran its last two).
                    while not broken.is_set() and pending and in_flight < ready:
                        group = pending.pop()
                        task = _task(config, group, self.workers, self._run_dir, threads)
                        try:
                            future = self._pool.submit(_worker_task, task, self._records)
                        except BrokenProcessPool:  # a worker died meanwhile: the driver runs the rest
                            pending.append(group)
                            broken.set()
                            break
                        future.add_done_callback(lambda _: wake.set())
                        futures[future] = group
                        in_flight += 1
                wake.wait(0.05)  # a finished group wakes it at once; a worker's READY within 50 ms
                wake.clear()

        def settle() -> None:
            _drain(self._records, keep)
            with lock:
                groups_of = {f: futures.pop(f) for f in [f for f in futures if f.done()]}
            for future, group in groups_of.items():
                _drain(self._records, keep)
                if _settle(future, group, lost, seen, keep) == "lost":
                    broken.set()

        feeder = threading.Thread(target=feed, name="slimlab-feeder", daemon=True)
        feeder.start()
        try:
            while True:
                settle()
                with lock:
                    mine = pending.popleft() if pending else None
                    in_flight = bool(futures)
                if mine is not None:
                    self._run_here(config, mine, progress, keep, seen, threads)
                elif in_flight:
                    _use_idle_time(self)
                    with lock:
                        waiting = set(futures)
                    wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                else:
                    break
        finally:
            done_feeding.set()
            feeder.join()
        settle()
        return [g for g in lost if any(s.id not in seen for s in g)]

    def _run_here(self, config, group, progress, keep, seen, threads: int) -> None:
        """One group in the driver, with a worker's share of the threads."""
        import torch

        before = torch.get_num_threads()
        try:
            execute_task(_task(config, group, self.workers, self._run_dir, threads), keep, progress)
        except Exception as error:  # the group itself failed outside any trial
            _fail_missing(group, seen, error, keep)
        finally:
            torch.set_num_threads(before)

    def _run_pool(self, config, groups, progress, keep, seen, workers) -> list[list[TrialSpec]]:
        """Run `groups` in one pool of `workers` processes; return the groups lost with a dead worker."""
        lost: list[list[TrialSpec]] = []
        threads = self.threads
        with self._context.Manager() as manager:
            records = manager.Queue()
            with ProcessPoolExecutor(
                workers, mp_context=self._context, initializer=_init_worker, initargs=(self.workers,)
            ) as pool:
                futures = {
                    pool.submit(
                        _worker_task, _task(config, g, self.workers, self._run_dir, threads), records
                    ): g
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


def _drain(items, take: Callable) -> int:
    """Hand every item waiting on the queue to `take` (commit a record); return how many there were."""
    count = 0
    while True:
        try:
            item = items.get_nowait()
        except queue_module.Empty:
            return count
        take(item)
        count += 1


def _use_idle_time(executor: Executor) -> None:
    """Call the executor's `while_waiting` once, the first time its driver has nothing to run. It is only
    a head start (the report's imports): whatever fails there fails again later, where it is reported."""
    idle, executor.while_waiting = executor.while_waiting, None
    if idle is not None:
        with contextlib.suppress(Exception):
            idle()


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
        self.while_waiting: Callable[[], None] | None = None

    def start(self) -> None:
        pass  # Ray starts (or joins) its cluster in `run`

    def close(self) -> None:
        pass

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
            refs = {remote.remote(_task(config, g, workers, run_dir, threads)): g for g in groups}
            pending = list(refs)
            _use_idle_time(self)
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
