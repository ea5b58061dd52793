"""The store: atomic trials, resume after SIGKILL, retry of failed trials, a torn write."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.errors import DataFileError
from slimlab.experiment import Store
from slimlab.experiment.store import STORE_FILE
from tests.conftest import TINY_TOML

# Everything in a trial that does not depend on timing.
TIMING_FREE = ("accuracy", "val_accuracy", "params", "nonzero_params", "size_bytes", "flops")


def _stable(trials):
    return [
        (t["id"], t["status"], {k: t["metrics"][k] for k in TIMING_FREE}, t["predictions"]) for t in trials
    ]


def _record(i: int, status: str = "ok") -> dict:
    return {
        "id": f"t{i}",
        "dataset": "d",
        "seed": i,
        "variant": "v",
        "status": status,
        "error": None,
        "metrics": {"accuracy": 0.5},
        "bench": [],
        "predictions": [1, 2, 3],
        "traceback": None,
    }


def test_put_and_read_back(tmp_path):
    with Store.in_dir(tmp_path) as store:
        store.put_trial(_record(0))
        store.put_trial(_record(1, "failed"))
        store.put_trial(_record(1))  # a retry replaces the failure
        assert store.statuses() == {"t0": "ok", "t1": "ok"}
        trials = store.trials(["t1", "missing", "t0"])
    assert [t["id"] for t in trials] == ["t1", "t0"]
    assert trials[0]["attempts"] == 2 and trials[0]["predictions"] == [1, 2, 3]


def test_corrupt_store_is_a_clear_error(tmp_path):
    (tmp_path / STORE_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataFileError, match="not a readable slimlab store"):
        Store.in_dir(tmp_path)
    result = CliRunner().invoke(app, ["ls", str(tmp_path)])
    assert result.exit_code == 2 and "not a readable slimlab store" in result.stderr.replace("\n", "")


def test_a_torn_write_keeps_only_whole_trials(tmp_path):
    # Simulate a power cut in the middle of writing a trial: the write-ahead log loses its tail.
    with Store.in_dir(tmp_path) as store:
        store.put_trial(_record(0))
        store._db.execute("PRAGMA wal_autocheckpoint=0")
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.put_trial(_record(1))
        crash = tmp_path / "crash"
        crash.mkdir()
        shutil.copy(tmp_path / STORE_FILE, crash / STORE_FILE)
        wal = (tmp_path / f"{STORE_FILE}-wal").read_bytes()
        assert len(wal) > 100
        (crash / f"{STORE_FILE}-wal").write_bytes(wal[: len(wal) - 100])  # the last frame is torn
    with Store.in_dir(crash) as store:
        assert store.statuses() == {"t0": "ok"}  # t1 is absent, not half-stored
        store.put_trial(_record(1))
        assert store.statuses() == {"t0": "ok", "t1": "ok"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    (root / "tiny.toml").write_text(TINY_TOML)
    result = CliRunner().invoke(app, ["run", str(root / "tiny.toml"), "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    with Store.open_existing(root / "out") as store:
        return store.trials()


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "slimlab", "run", str(tmp_path / "tiny.toml"), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (out / STORE_FILE).exists():
            try:
                with sqlite3.connect(out / STORE_FILE, timeout=1) as db:
                    count = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= 1:
                break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    with Store.open_existing(out) as store:
        stored_before = len(store.statuses())
    assert 1 <= stored_before < len(uninterrupted)

    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with Store.open_existing(out) as store:
        trials = store.trials()
    assert all(t["attempts"] == 1 for t in trials)  # nothing was run twice
    assert sorted(_stable(trials)) == sorted(_stable(uninterrupted))
    results = json.loads((out / "results.json").read_text())
    assert len(results["trials"]) == len(uninterrupted)


def test_rerun_reuses_finished_trials_and_retries_only_failures(tmp_path, monkeypatch):
    from slimlab.treatments import base
    from tests.test_run import Explode, _explode

    monkeypatch.setitem(base.TREATMENTS._items, Explode.kind, base.TreatmentSpec(Explode, _explode))
    path = tmp_path / "f.toml"
    path.write_text(TINY_TOML + '[[variants]]\nname = "explode"\ntreatments = [{kind = "test_explode"}]\n')
    out = tmp_path / "o"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 1
    again = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert again.exit_code == 1  # nothing rerun: the failure is still on record
    retry = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--retry-failed"])
    assert retry.exit_code == 1
    with Store.open_existing(out) as store:
        attempts = {(t["variant"], t["seed"]): t["attempts"] for t in store.trials()}
    assert attempts.pop(("explode", 1)) == 2
    assert set(attempts.values()) == {1}
    listing = CliRunner().invoke(app, ["ls", str(out)])
    assert listing.exit_code == 0 and "boom on seed 1" in listing.output


def test_a_changed_experiment_reuses_unchanged_trials(tmp_path, monkeypatch):
    path = tmp_path / "e.toml"
    path.write_text(TINY_TOML)
    out = tmp_path / "o"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    path.write_text(TINY_TOML.replace("seeds = 2", "seeds = 3"))
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    with Store.open_existing(out) as store:
        trials = store.trials()
    assert len(trials) == 9 and all(t["attempts"] == 1 for t in trials)
    results = json.loads((out / "results.json").read_text())
    assert len(results["trials"]) == 9
