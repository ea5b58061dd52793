"""The datasets slimlab knows by name, each a function (DataConfig-like options, seed) -> Dataset."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from slimlab.data.dataset import Dataset, Split
from slimlab.data.mnist1d import DEFAULT_NUM_SAMPLES, DEFAULT_TRAIN_SPLIT, load_mnist1d
from slimlab.data.splits import stratified_split
from slimlab.registry import Registry


class DataOptions(Protocol):
    name: str
    num_samples: int | None
    test_fraction: float | None
    val_fraction: float
    split_seed: int


DATASETS: Registry = Registry("dataset")


def load_dataset(options: DataOptions, seed: int) -> Dataset:
    """The dataset named by `options`. The test split depends only on `options.split_seed` (so every trial
    is scored on the same test samples, which makes per-sample paired tests possible); the validation split
    held out of train depends only on the trial's `seed`."""
    return DATASETS.get(options.name, where="data.name")(options, seed)


def with_validation(
    name: str, train: Split, test: Split, val_fraction: float, seed: int, num_classes: int, meta: dict
) -> Dataset:
    """Hold a stratified `val_fraction` of `train` out for validation, chosen by the trial's `seed`."""
    train_idx, val_idx = stratified_split(train.y, val_fraction, seed)
    return Dataset(name, train.subset(train_idx), train.subset(val_idx), test, num_classes, meta)


@DATASETS.register("mnist1d")
def _mnist1d(options: DataOptions, seed: int) -> Dataset:
    num_samples = options.num_samples or DEFAULT_NUM_SAMPLES
    train_split = 1.0 - options.test_fraction if options.test_fraction else DEFAULT_TRAIN_SPLIT
    # The generator's own seed fixes the samples and the paper's train/test split. Its global
    # standardisation (one scalar mean and std over all samples) is part of the published data.
    x, y, x_test, y_test = load_mnist1d(num_samples, train_split, seed=42 + options.split_seed)
    meta = {"source": "mnist1d.make_dataset", "num_samples": num_samples, "train_split": train_split}
    return with_validation(
        "mnist1d", Split(x, y), Split(x_test, y_test), options.val_fraction, seed, 10, meta
    )


@DATASETS.register("digits")
def _digits(options: DataOptions, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_all = bunch.data.astype(np.float32)
    y_all = bunch.target.astype(np.int64)
    if options.num_samples and options.num_samples < len(y_all):
        _, keep = stratified_split(y_all, options.num_samples / len(y_all), options.split_seed)
        x_all, y_all = x_all[keep], y_all[keep]
    rest, test = stratified_split(y_all, options.test_fraction or 0.2, options.split_seed)
    data = with_validation(
        "digits",
        Split(x_all[rest], y_all[rest]),
        Split(x_all[test], y_all[test]),
        options.val_fraction,
        seed,
        10,
        {"source": "sklearn.datasets.load_digits"},
    )
    # Standardise with statistics of the training split only (Lones 3.1: no test leakage).
    mean = data.train.x.mean(axis=0)
    std = data.train.x.std(axis=0) + 1e-6

    def scale(s: Split) -> Split:
        return dataclasses.replace(s, x=((s.x - mean) / std).astype(np.float32))

    return Dataset(
        data.name,
        scale(data.train),
        scale(data.val),
        scale(data.test),
        10,
        {**data.meta, "standardised_on": "train"},
    )
