"""Datasets, splits and caching."""

from slimlab.data import transfer_tasks  # noqa: F401  (register the transfer source/target tasks)
from slimlab.data.dataset import Dataset, Split
from slimlab.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset"]
