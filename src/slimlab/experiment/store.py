"""The run's store: SQLite in WAL mode, one row per trial, each trial committed in one transaction.

A trial's row is written whole or not at all, so a run killed at any moment (SIGKILL, power cut) leaves
only whole trials behind, and the next run of the same command continues from there. Per-sample test
predictions are kept compressed, for paired per-sample tests later.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from pathlib import Path

from slimlab.errors import DataFileError
from slimlab.experiment.record import TrialRecord

STORE_FILE = "slimlab.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    variant TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    record TEXT NOT NULL,
    predictions BLOB,
    traceback TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    finished_at REAL NOT NULL
);
"""


def _read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that never writes: the report, `ls` and `bench --trial` only read, so a run folder on
    a read-only file system (an archive, a shared mount) still opens. SQLite's `mode=ro` needs the WAL's
    shared-memory file to be creatable; where it is not, `immutable=1` reads the file as it is."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, timeout=30)


def _is_read_only_error(e: sqlite3.DatabaseError) -> bool:
    text = str(e).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


class Store:
    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        try:
            if read_only:
                self._db = _read_only_connection(self.path)
            else:
                # isolation_level=None: we open transactions ourselves, one per trial.
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")  # a committed trial survives a power cut
                self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as e:
            if not read_only and _is_read_only_error(e):
                raise DataFileError(
                    f"{self.path.parent}: the run folder is read-only or not writable ({e}); "
                    "`slimlab run` needs to write its store there"
                ) from None
            raise DataFileError(f"{self.path}: not a readable slimlab store ({e})") from None
        if read_only:
            if version is not None and version != SCHEMA_VERSION:
                raise DataFileError(
                    f"{self.path}: store schema {version}, this slimlab reads {SCHEMA_VERSION}"
                )
            return
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise DataFileError(f"{self.path}: store schema {version}, this slimlab reads {SCHEMA_VERSION}")

    @classmethod
    def in_dir(cls, run_dir: str | Path) -> Store:
        return cls(Path(run_dir) / STORE_FILE)

    @classmethod
    def open_existing(cls, run_dir: str | Path, read_only: bool = False) -> Store:
        path = Path(run_dir) / STORE_FILE
        if not path.is_file():
            raise DataFileError(f"{path}: not found; is {run_dir} a run directory?")
        return cls(path, read_only=read_only)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_meta(self, key: str, value) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str):
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def statuses(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, status FROM trials"))

    def put_trial(self, trial: TrialRecord | dict) -> None:
        """Store one finished trial atomically; a retried trial replaces its earlier failure."""
        record = TrialRecord.from_dict(trial).to_dict()
        record.pop("attempts", None)  # the store counts attempts itself
        predictions = record.pop("predictions", None)
        traceback = record.pop("traceback", None)
        blob = zlib.compress(json.dumps(predictions).encode()) if predictions is not None else None
        with self._db:  # BEGIN ... COMMIT, or ROLLBACK on error
            self._db.execute("BEGIN IMMEDIATE")
            previous = self._db.execute(
                "SELECT attempts FROM trials WHERE id = ?", (record["id"],)
            ).fetchone()
            self._db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record["id"],
                    record["dataset"],
                    record["seed"],
                    record["variant"],
                    record["status"],
                    json.dumps(record),
                    blob,
                    traceback,
                    (previous[0] + 1) if previous else 1,
                    time.time(),
                ),
            )

    def trials(self, ids: list[str] | None = None, predictions: bool = True) -> list[TrialRecord]:
        """Trial records, in the order of `ids` when given (ids not in the store are skipped)."""
        rows = self._db.execute(
            "SELECT id, record, predictions, traceback, attempts FROM trials ORDER BY finished_at"
        ).fetchall()
        by_id = {}
        for trial_id, record, blob, traceback, attempts in rows:
            trial = json.loads(record)
            trial["attempts"] = attempts
            if traceback:
                trial["traceback"] = traceback
            if predictions and blob is not None:
                trial["predictions"] = json.loads(zlib.decompress(blob))
            by_id[trial_id] = TrialRecord.from_dict(trial)
        order = ids if ids is not None else list(by_id)
        return [by_id[i] for i in order if i in by_id]
