"""A run's saved trial model (`[bench] save_models = true`), found by `--trial` as `slimlab bench RUN
--trial` and `slimlab serve RUN --trial` take it: a trial id, or VARIANT/SEED (VARIANT/SEED/DATASET when
the run has several datasets)."""

from __future__ import annotations

from pathlib import Path

from slimlab.errors import DataFileError, SlimlabError
from slimlab.experiment.store import Store


def find_saved_trial(run_dir: Path, trial: str) -> dict:
    """The trial's record; its `model_file` (relative to `run_dir`) is the saved ONNX model."""
    if not (run_dir / "slimlab.db").is_file():
        raise DataFileError(f"{run_dir}: not a run directory (no slimlab.db)")
    with Store.open_existing(run_dir, read_only=True) as store:
        trials = store.trials(predictions=False)
    parts = trial.split("/")
    matches = [
        t
        for t in trials
        if t["id"] == trial
        or (len(parts) >= 2 and t["variant"] == parts[0] and str(t["seed"]) == parts[1]
            and (len(parts) < 3 or t["dataset"] == parts[2]))
    ]  # fmt: skip
    if len(matches) != 1:
        known = ", ".join(sorted({f"{t['variant']}/{t['seed']}" for t in trials})[:12])
        raise SlimlabError(f"--trial {trial!r} matches {len(matches)} trials in {run_dir}; known: {known}")
    found = matches[0]
    if not found.get("model_file"):
        why = found.get("model_file_reason") or "the run did not set `[bench] save_models = true`"
        raise SlimlabError(f"trial {trial!r} has no saved model: {why}")
    return found
