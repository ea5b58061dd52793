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
    held out of train depends only on the trial's `seed`. With `options.train_size` (a learning curve),
    only that many labelled examples are kept, chosen by the trial's `seed`."""
    source = getattr(options, "source", None) or {}
    if source.get("live"):
        from slimlab.data.factory import build_dataset
        from slimlab.live import live_data

        data = build_dataset(
            options.name, live_data(source["live"]), options, seed, "data", {"source": "python"}
        )
    elif getattr(options, "factory", None):
        from slimlab.data.factory import load_factory

        data = load_factory(options, seed)
    else:
        data = DATASETS.get(options.name, where="data.name")(options, seed)
    train_size = getattr(options, "train_size", None)
    if train_size is not None:
        from slimlab.data.limited import limit_training_examples

        data = limit_training_examples(data, train_size, options.val_fraction, seed)
    return data


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
    return digits_dataset(options, seed)


def digits_dataset(
    options: DataOptions, seed: int, classes: tuple[int, ...] | None = None, name: str = "digits"
) -> Dataset:
    """scikit-learn's digits; with `classes`, only those digits, relabelled 0..len(classes)-1."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_all = bunch.data.astype(np.float32)
    y_all = bunch.target.astype(np.int64)
    if classes is not None:
        keep = np.isin(y_all, classes)
        x_all, y_all = x_all[keep], np.searchsorted(np.array(classes), y_all[keep]).astype(np.int64)
    num_classes = len(classes) if classes is not None else 10
    if options.num_samples and options.num_samples < len(y_all):
        _, keep = stratified_split(y_all, options.num_samples / len(y_all), options.split_seed)
        x_all, y_all = x_all[keep], y_all[keep]
    rest, test = stratified_split(y_all, options.test_fraction or 0.2, options.split_seed)
    source = "sklearn.datasets.load_digits" + (f", classes {list(classes)}" if classes is not None else "")
    data = with_validation(
        name,
        Split(x_all[rest], y_all[rest]),
        Split(x_all[test], y_all[test]),
        options.val_fraction,
        seed,
        num_classes,
        {"source": source},
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
        num_classes,
        {**data.meta, "standardised_on": "train"},
    )


@DATASETS.register("clicks")
def _clicks(options: DataOptions, seed: int) -> Dataset:
    from slimlab.data.clicks import synthetic_clicks

    return synthetic_clicks(options, seed)


@DATASETS.register("click_log")
def _click_log(options: DataOptions, seed: int) -> Dataset:
    from slimlab.data.clicks import click_log_file

    return click_log_file(options, seed)


# --- data with groups -------------------------------------------------------------------------------------


def _option(options: DataOptions, name: str, default=None):
    """A tabular option of DataConfig; absent on option objects that predate the tabular fields."""
    value = getattr(options, name, None)
    return default if value is None else value


def _group_map(options: DataOptions, default: dict | None = None) -> dict:
    from slimlab.data.groups import load_group_map

    source = _option(options, "group_map")
    return load_group_map(source) if source is not None else (default or {})


@DATASETS.register("adult")
def _adult(options: DataOptions, seed: int) -> Dataset:
    from slimlab.data import adult
    from slimlab.data.tabular import subsample, tabular_dataset

    train, test = adult.read_adult()
    # num_samples caps the training pool (a stratified subset chosen by split_seed); the official test
    # split is always used whole, so every group keeps as many test rows as the data has.
    train = subsample(train, train["income"], options.num_samples, options.split_seed)
    groups = _option(options, "group_columns", adult.DEFAULT_GROUPS)
    feature_groups = _option(options, "feature_groups", False)
    drop = ["fnlwgt", *_option(options, "drop", [])]
    if "age_band" in groups and not feature_groups:
        drop.append("age")  # the group age_band is derived from age, so age would reveal it exactly
    if "age_band" not in groups:
        drop.append("age_band")
    return tabular_dataset(
        "adult",
        train,
        test,
        target="income",
        group_columns=groups,
        categorical=_option(options, "categorical", [*adult.CATEGORICAL, "age_band"]),
        val_fraction=options.val_fraction,
        seed=seed,
        group_map=_group_map(options, adult.default_group_map() if "native-country" in groups else None),
        intersections=_option(options, "intersections", adult.default_intersections(groups)),
        feature_groups=feature_groups,
        drop=drop,
        rename_groups=adult.RENAME,
        source="adult",
        meta={"source": "UCI Adult (Becker & Kohavi 1996, CC BY 4.0), shipped as package data"},
    )


@DATASETS.register("csv")
def _user_file(options: DataOptions, seed: int) -> Dataset:
    """A user's table: data.path (+ data.test_path, else a stratified test_fraction chosen by split_seed)."""
    from slimlab.data.tabular import subsample, tabular_dataset
    from slimlab.data.user_file import read_table
    from slimlab.errors import DataFileError

    path, target = _option(options, "path"), _option(options, "target")
    frame = read_table(path)
    if target not in frame.columns:
        raise DataFileError(
            f"{path}: target column {target!r} not found; columns: {', '.join(frame.columns)}"
        )
    if frame[target].isna().any():
        raise DataFileError(f"{path}: target column {target!r} has missing values")
    test_path = _option(options, "test_path")
    if test_path:
        train, test = frame, read_table(test_path)
    else:
        rest, held = stratified_split(
            frame[target].astype(str).to_numpy(), options.test_fraction or 0.2, options.split_seed
        )
        train, test = frame.iloc[rest].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)
    train = subsample(train, train[target], options.num_samples, options.split_seed)
    return tabular_dataset(
        "csv",
        train,
        test,
        target=target,
        group_columns=_option(options, "group_columns", []),
        # Text columns are one-hot encoded only when listed: a free-text column (a name, an address) encoded
        # silently would be a proxy the user never chose.
        categorical=_option(options, "categorical", []),
        val_fraction=options.val_fraction,
        seed=seed,
        group_map=_group_map(options),
        intersections=_option(options, "intersections", []),
        feature_groups=_option(options, "feature_groups", False),
        drop=_option(options, "drop", []),
        source=str(path),
        meta={"source": str(path)},
    )


# MNIST-1D with groups: the class itself, and a synthetic "region" with one small region whose *training*
# labels are noisier (a stand-in for a population that is both underrepresented and badly labelled).
REGIONS = ("north", "south", "east", "west")
REGION_SHARES = (0.45, 0.30, 0.20, 0.05)
SMALL_REGION_LABEL_NOISE = 0.2  # share of the small region's training labels replaced by a random class


def synthetic_regions(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(REGIONS), size=n, p=REGION_SHARES)


@DATASETS.register("mnist1d_groups")
def _mnist1d_groups(options: DataOptions, seed: int) -> Dataset:
    num_samples = options.num_samples or DEFAULT_NUM_SAMPLES
    train_split = 1.0 - options.test_fraction if options.test_fraction else DEFAULT_TRAIN_SPLIT
    x, y, x_test, y_test = load_mnist1d(num_samples, train_split, seed=42 + options.split_seed)
    # Regions and noise depend only on split_seed, so every trial sees the same groups and the same labels.
    rng_seed = 10_000 + options.split_seed
    region, region_test = synthetic_regions(len(y), rng_seed), synthetic_regions(len(y_test), rng_seed + 1)
    rng = np.random.default_rng(rng_seed + 2)
    noisy = (region == REGIONS[-1]) & (rng.random(len(y)) < SMALL_REGION_LABEL_NOISE)
    y = y.copy()
    y[noisy] = rng.integers(0, 10, size=int(noisy.sum()))
    groups = {"class": y.astype(str), "region": region}
    groups_test = {"class": y_test.astype(str), "region": region_test}
    meta = {
        "source": "mnist1d.make_dataset + synthetic regions",
        "num_samples": num_samples,
        "regions": dict(zip(REGIONS, REGION_SHARES, strict=True)),
        "label_noise": {REGIONS[-1]: SMALL_REGION_LABEL_NOISE, "applied_to": "train and validation labels"},
        "groups": ["class", "region"],
    }
    return with_validation(
        "mnist1d_groups",
        Split(x, y, groups),
        Split(x_test, y_test, groups_test),
        options.val_fraction,
        seed,
        10,
        meta,
    )


@DATASETS.register("npz")
def _npz(options: DataOptions, seed: int) -> Dataset:
    """A .npz file (data.path): x and y, or x_train, y_train, x_test, y_test (data/factory.py)."""
    from slimlab.data.factory import load_npz

    return load_npz(options, seed)


@DATASETS.register("images")
def _images(options: DataOptions, seed: int) -> Dataset:
    """A folder with one subfolder of images per class (data.path; needs Pillow)."""
    from slimlab.data.factory import load_images

    return load_images(options, seed)
