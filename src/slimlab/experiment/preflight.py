"""Checks that run before the first trial, so that a user error (a missing, empty or undecodable data file,
a missing target column, a single class) is one line and exit 2 up front, instead of every trial being
stored as failed with the same traceback."""

from __future__ import annotations

from slimlab.config import ExperimentConfig
from slimlab.data import load_dataset
from slimlab.errors import DataFileError, SlimlabError

CLASS_METRICS = ("accuracy", "f1_macro", "auroc", "log_loss", "normalized_entropy")


def check_datasets(config: ExperimentConfig) -> None:
    """Load every dataset of the grid once, with the first seed. A SlimlabError (bad input) propagates;
    any other failure is left to the trials, which record it with its traceback."""
    seed = config.evaluate.seed_list[0]
    for options in config.data:
        where = options.path or options.name
        try:
            data = load_dataset(options, seed)
        except SlimlabError:
            raise
        except Exception:  # not a user error: the trials record it, and the other datasets still run
            continue
        if data.num_classes == 1:
            raise DataFileError(f"{where}: the labels have 1 class; expected at least two")
        # num_classes 0: no class labels (a regressor, an encoder scored by fidelity to its dense parent).
        if data.num_classes == 0 and config.evaluate.metric in CLASS_METRICS:
            raise DataFileError(
                f"{where}: the data has no class labels, which `evaluate.metric = "
                f"{config.evaluate.metric!r}` needs; use a metric without them (mse, mae, cosine, agreement)"
            )
        for split in ("train", "val", "test"):
            if len(getattr(data, split)) == 0:
                raise DataFileError(f"{where}: the {split} split is empty; expected more rows")
