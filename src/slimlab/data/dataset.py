"""The in-memory dataset that every layer below `experiment` works with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, (n, features) or (n, channels, length)
    y: np.ndarray  # int64 class labels, (n,)
    # Group labels per sample (e.g. {"region": array of str}), kept apart from the features, so that a
    # group is never an input of the model unless the user makes it one.
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} labels")
        for name, values in self.groups.items():
            if len(values) != len(self.y):
                raise ValueError(f"group {name!r} has {len(values)} labels for {len(self.y)} samples")

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.x[index], self.y[index], {k: v[index] for k, v in self.groups.items()})

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
