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


def _die_on_seed_1(config, group, workers, run_dir=None, threads=None):
    """A task whose worker process dies mid-group, as with the OOM killer."""
    from slimlab.experiment.executors import GroupTask

    task = GroupTask(config.to_dict(), tuple(s.id for s in group), workers, threads=threads)
    if group[0].seed == 1 and not os.environ.get("SLIMLAB_TEST_SURVIVE"):
        return GroupTask({"__die__": True}, task.trial_ids, workers, threads=threads)
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

    def _run_shared(self, config, groups, progress, keep, seen):
        return self._run_pool(config, groups, progress, keep, seen, self.workers)


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


def _in_fresh_python(code: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_workers_start_before_the_driver_imports_torch():
    """`slimlab run --workers 2` starts its worker first, so that the worker's imports (1.8 s here) run
    beside the driver's own instead of after them; so the executor module must not import torch."""
    code = (
        "import sys\n"
        "from slimlab.experiment.executors import make_executor\n"
        "runner = make_executor('local', 2)\n"
        "runner.start()\n"
        "runner._started()\n"
        "print('torch' in sys.modules, len(runner._starting))\n"
        "runner.close()\n"
    )
    assert _in_fresh_python(code) == "False 1"


def test_a_worker_pays_a_first_trial_s_imports_before_it_says_it_is_ready():
    """A spawned worker's first group paid torch._dynamo (1.5 s) and scikit-learn (0.5 s) while the driver
    waited on it; the worker now imports them before it is given a group."""
    code = (
        "import queue, sys\n"
        "from slimlab.experiment.executors import READY, _init_worker\n"
        "from slimlab.experiment.trial import FIRST_USE_IMPORTS\n"
        "ready = queue.Queue()\n"
        "_init_worker(2, ready)\n"
        "print(ready.get_nowait() == READY, all(m in sys.modules for m in FIRST_USE_IMPORTS))\n"
    )
    assert _in_fresh_python(code) == "True True"


def test_worker_threads_divide_this_process_s_threads():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert WorkerPoolExecutor(2).threads == 2
        assert WorkerPoolExecutor(8).threads == 1
        assert WorkerPoolExecutor(2, threads=3).threads == 3
    finally:
        torch.set_num_threads(before)


def test_a_bad_config_lets_the_started_workers_go(tmp_path):
    """The workers start before the config is read; a bad config is still one line and exit 2, and the
    command does not hang on its workers."""
    (tmp_path / "bad.toml").write_text('name = "x"\n[model]\nname = "no-such-model"\n')
    result = CliRunner().invoke(app, ["run", str(tmp_path / "bad.toml"), "--workers", "2"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output + result.stderr
