"""Progress display for a running experiment: a rich bar over trials and one over training epochs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """The runner's hooks. This base class shows nothing (library use, tests)."""

    def start(self, total_trials: int) -> None: ...
    def stage(self, text: str) -> None: ...
    def epoch(self, epoch: int, total: int) -> None: ...
    def trial_done(self, status: str) -> None: ...
    def close(self) -> None: ...


class RichProgress(RunProgress):
    def __init__(self, console: Console | None = None):
        self._progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
        )
        self._trials = self._epochs = None

    def start(self, total_trials: int) -> None:
        self._progress.start()
        self._trials = self._progress.add_task("trials", total=total_trials)
        self._epochs = self._progress.add_task("  training", total=1, visible=False)

    def stage(self, text: str) -> None:
        self._progress.update(self._trials, description=text)

    def epoch(self, epoch: int, total: int) -> None:
        self._progress.update(self._epochs, completed=epoch, total=total, visible=epoch < total)

    def trial_done(self, status: str) -> None:
        self._progress.advance(self._trials)
        self._progress.update(self._epochs, visible=False)

    def close(self) -> None:
        self._progress.stop()
