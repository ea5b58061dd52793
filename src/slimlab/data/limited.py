"""Limited data: train on only n labelled examples, to draw learning curves."""

from __future__ import annotations

import numpy as np

from slimlab.data.dataset import Dataset, Split
from slimlab.data.splits import stratified_split


def limited_label(name: str, train_size: int | None) -> str:
    """The dataset's name in records and reports: `mnist1d[n=50]` for 50 labelled examples."""
    return name if train_size is None else f"{name}[n={train_size}]"


def _concat(a: Split, b: Split) -> Split:
    groups = {k: np.concatenate([a.groups[k], b.groups[k]]) for k in a.groups}
    return Split(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), groups)


def limit_training_examples(data: Dataset, train_size: int, val_fraction: float, seed: int) -> Dataset:
    """Keep `train_size` labelled examples of the training pool (train and validation together), a
    stratified sample chosen by the trial's `seed`, and hold `val_fraction` of them out for validation.

    The n of a learning curve counts every label the recipe may use: validation examples come out of the
    same n, since a user with n labels would have no others to early-stop on. The test split is untouched.
    Preprocessing that the dataset fitted before (digits' standardisation, on its whole training pool)
    used inputs but no labels of the rest of the pool."""
    pool = _concat(data.train, data.val)
    classes = len(np.unique(pool.y))
    if train_size > len(pool):
        raise ValueError(
            f"`data.train_size` is {train_size}, but {data.name} has {len(pool)} training examples"
        )
    if train_size < 2 * classes:
        raise ValueError(
            f"`data.train_size` is {train_size}; a stratified split of {classes} classes needs at least "
            f"{2 * classes} examples"
        )
    if train_size < len(pool):
        _, keep = stratified_split(pool.y, train_size / len(pool), seed)
        pool = pool.subset(keep)
    held = max(classes, round(val_fraction * train_size))
    train_idx, val_idx = stratified_split(pool.y, held / train_size, seed)
    meta = {**data.meta, "train_size": train_size, "n_train": len(train_idx), "n_val": len(val_idx)}
    return Dataset(
        limited_label(data.name, train_size),
        pool.subset(train_idx),
        pool.subset(val_idx),
        data.test,
        data.num_classes,
        meta,
    )
