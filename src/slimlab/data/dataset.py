"""The in-memory dataset that every layer below `experiment` works with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from slimlab.data.batches import Inputs, leaves, n_rows, take


@dataclass(frozen=True)
class Split:
    # The model's inputs: float32 (n, features) or (n, channels, length) for the reference models; for a
    # user's model any `Inputs` (an array of any dtype, a tuple or a dict of arrays; see data/batches.py).
    x: Inputs
    y: np.ndarray  # int64 class labels (n,), or float targets (n, ...) for a regression/fidelity metric
    # Group labels per sample (e.g. {"region": array of str}), kept apart from the features, so that a
    # group is never an input of the model unless the user makes it one.
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if n_rows(self.x) != len(self.y):
            raise ValueError(f"split has {n_rows(self.x)} inputs but {len(self.y)} labels")
        for name, values in self.groups.items():
            if len(values) != len(self.y):
                raise ValueError(f"group {name!r} has {len(values)} labels for {len(self.y)} samples")

    def subset(self, index: np.ndarray) -> Split:
        return Split(take(self.x, index), self.y[index], {k: v[index] for k, v in self.groups.items()})

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
        """One sample's shape (of the first input, for a model with several)."""
        return tuple(leaves(self.train.x)[0].shape[1:])

    def example(self, n: int = 2) -> Inputs:
        """The first `n` validation (else training) rows: real example inputs, never the test split."""
        source = self.val if len(self.val) else self.train
        return take(source.x, slice(0, n))
