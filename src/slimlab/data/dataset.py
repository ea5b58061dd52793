"""The in-memory dataset that every layer below `experiment` works with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, (n, features) or (n, channels, length)
    y: np.ndarray  # int64 class labels, (n,)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits. Validation data is for early stopping and selection; the test
    split is for the final evaluation only."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])
