"""Executors: worker processes and Ray give the same trials as the in-process run."""

import json
import os

import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.config import load_experiment
from slimlab.errors import SlimlabError
from slimlab.experiment import Store, run_experiment
from slimlab.experiment.executors import WorkerPoolExecutor, make_executor
from tests.conftest import TINY_TOML
from tests.test_store import _stable


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    (root / "tiny.toml").write_text(TINY_TOML)
    config = load_experiment(root / "tiny.toml")
    return config, run_experiment(config, root / "out")


def test_worker_processes_match_in_process(reference, tmp_path):
    _, expected = reference
    (tmp_path / "t.toml").write_text(TINY_TOML)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "t.toml"), "--out", str(tmp_path / "o"), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    with Store.open_existing(tmp_path / "o") as store:
        trials = store.trials()
    assert sorted(_stable(trials)) == sorted(_stable(expected))
    assert all(b["concurrent_workers"] == 2 for t in trials for b in t["bench"])
    assert len(json.loads((tmp_path / "o" / "results.json").read_text())["trials"]) == 6


def test_the_driver_runs_groups_beside_its_workers(reference, tmp_path, monkeypatch):
    """`--workers 2` is the driver and one spawned worker. The old pool left the driver idle while two
    spawned workers paid their start-up, and was slower than one process on a grid of small trials."""
    import slimlab.experiment.executors as executors

    config, expected = reference
    in_driver: list[int] = []
    run_here = executors.execute_task

    def counted(task, emit, progress=None):
        in_driver.append(len(task.trial_ids))
        run_here(task, emit, progress)

    monkeypatch.setattr(executors, "execute_task", counted)  # spawned workers import the unpatched one
    trials = run_experiment(config, tmp_path, executor=WorkerPoolExecutor(2, threads=1))
    assert sorted(_stable(trials)) == sorted(_stable(expected))
    # The driver ran groups (the old pool ran none in the driver); on a grid this small it may run them
    # all before the worker has started, which is the point.
    assert in_driver and sum(in_driver) <= len(expected)
    assert all(b["concurrent_workers"] == 2 for t in trials for b in t["bench"])


def _die_on_seed_1(config, group, workers, run_dir=None):
    """A task whose worker process dies mid-group, as with the OOM killer."""
    from slimlab.experiment.executors import GroupTask

    task = GroupTask(config.to_dict(), tuple(s.id for s in group), workers)
    if group[0].seed == 1 and not os.environ.get("SLIMLAB_TEST_SURVIVE"):
        return GroupTask({"__die__": True}, task.trial_ids, workers)
    return task


@pytest.mark.slow  # three process pools: about a minute on 2 idle cores
def test_a_dead_worker_is_retried_then_recorded_as_failed(reference, tmp_path, monkeypatch):
    import slimlab.experiment.executors as executors

    config, expected = reference
    # Spawned workers import the worker function by reference, so the dying one lives in this module.
    monkeypatch.setattr(executors, "_task", _die_on_seed_1)
    monkeypatch.setattr(executors, "_worker_task", _die_worker_task)
    trials = run_experiment(config, tmp_path, executor=_PoolOnly(2, threads=1, retries=1))
    by_seed = {}
    for t in trials:
        by_seed.setdefault(t["seed"], set()).add(t["status"])
    assert by_seed == {0: {"ok"}, 1: {"failed"}}
    failed = [t for t in trials if t["status"] == "failed"]
    assert all("worker process died" in t["error"] for t in failed)
    ok = [t for t in trials if t["status"] == "ok"]
    assert _stable(ok) == [x for x in _stable(expected) if x[0] in {t["id"] for t in ok}]


class _PoolOnly(WorkerPoolExecutor):
    """Every group in spawned workers (the driver runs none), so that the group meant to die does."""

    def _run_shared(self, context, config, groups, progress, keep, seen):
        return self._run_pool(context, config, groups, progress, keep, seen, self.workers)


def _die_worker_task(task, records):
    import os as _os
    import signal as _signal

    from slimlab.experiment.executors import execute_task

    if task.config.get("__die__"):
        _os.kill(_os.getpid(), _signal.SIGKILL)
    execute_task(task, records.put)
    return len(task.trial_ids)


def test_ray_matches_local(reference, tmp_path):
    pytest.importorskip("ray")
    config, expected = reference
    trials = run_experiment(config, tmp_path, executor=make_executor("ray", workers=2))
    assert _stable(trials) == _stable(expected)
    with Store.open_existing(tmp_path) as store:
        assert len(store.statuses()) == len(expected)


def test_executor_options_are_checked():
    with pytest.raises(SlimlabError, match="--workers must be at least 1"):
        make_executor("local", 0)
    with pytest.raises(SlimlabError, match="unknown executor 'slurm'"):
        make_executor("slurm")
    with pytest.raises(SlimlabError, match="--address is for --executor ray"):
        make_executor("local", 1, "auto")
