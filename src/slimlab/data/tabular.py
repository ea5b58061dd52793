"""Tabular data with groups: a raw train frame and a raw test frame -> a Dataset whose features are
numbers and whose groups are kept apart from them.

Every statistic of the encoding (imputation medians, means and standard deviations, the categories of
each one-hot column) is fitted on the training rows only, never on validation or test (Lones 3.1). The
columns that define groups are left out of the features unless the user asks for them
(`feature_groups = true`), and every remaining feature is checked for being a likely proxy of a group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slimlab.data.dataset import Dataset, Split
from slimlab.data.groups import GroupMap, build_groups, missing_rate_by_group
from slimlab.data.proxies import proxy_warnings
from slimlab.data.splits import stratified_split
from slimlab.errors import DataFileError


@dataclass(frozen=True)
class FeatureEncoder:
    """Numeric columns: missing -> train median, then (x - mean) / std. Categorical columns: one-hot over
    the categories seen in train (missing is a category of its own; a value unseen in train is all zeros)."""

    numeric: list[str]
    categorical: list[str]
    medians: dict[str, float]
    means: dict[str, float]
    stds: dict[str, float]
    categories: dict[str, list[str]]

    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> FeatureEncoder:
        medians, means, stds = {}, {}, {}
        for c in numeric:
            col = train[c].astype(float)
            medians[c] = float(col.median()) if col.notna().any() else 0.0
            filled = col.fillna(medians[c])
            means[c] = float(filled.mean())
            stds[c] = float(filled.std(ddof=0)) or 1.0  # a constant column stays at 0 instead of NaN
        categories = {c: sorted(_category_strings(train[c]).unique().tolist()) for c in categorical}
        return cls(list(numeric), list(categorical), medians, means, stds, categories)

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, *(f"{c}={v}" for c in self.categorical for v in self.categories[c])]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [
            ((frame[c].astype(float).fillna(self.medians[c]) - self.means[c]) / self.stds[c]).to_numpy()[
                :, None
            ]
            for c in self.numeric
        ]
        for c in self.categorical:
            values = _category_strings(frame[c]).to_numpy()
            parts.append(values[:, None] == np.asarray(self.categories[c], dtype=object)[None, :])
        if not parts:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack([p.astype(np.float32) for p in parts])


def _category_strings(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().where(values.notna(), "<missing>")


def encode_target(train: pd.Series, test: pd.Series, source: str, target: str) -> tuple[np.ndarray, ...]:
    """Class indices in the sorted order of the training labels; a test label unseen in train is an error."""
    train_s = train.astype(str).str.strip()
    test_s = test.astype(str).str.strip()
    if train.isna().any() or test.isna().any():
        raise DataFileError(f"{source}: target column {target!r} has missing values")
    classes = sorted(train_s.unique().tolist())
    if len(classes) < 2:
        raise DataFileError(f"{source}: target column {target!r} has fewer than two classes")
    unseen = sorted(set(test_s) - set(classes))
    if unseen:
        raise DataFileError(
            f"{source}: test labels {unseen[:5]} of {target!r} never occur in the training data"
        )
    index = {c: i for i, c in enumerate(classes)}
    return (
        train_s.map(index).to_numpy(dtype=np.int64),
        test_s.map(index).to_numpy(dtype=np.int64),
        classes,
    )


def tabular_dataset(
    name: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    target: str,
    group_columns: Sequence[str],
    categorical: Sequence[str] | None,
    val_fraction: float,
    seed: int,
    group_map: GroupMap | None = None,
    intersections: Sequence[str] = (),
    feature_groups: bool = False,
    drop: Sequence[str] = (),
    rename_groups: Mapping[str, str] | None = None,
    source: str = "data",
    meta: dict | None = None,
) -> Dataset:
    """Encode `train` and `test` (raw frames with the same columns) into a Dataset. Features are all columns
    except the target, `drop`, and (unless `feature_groups`) the group columns. Columns that are not
    numeric must be listed in `categorical` (None: every non-numeric column is categorical)."""
    for column in [target, *drop]:
        if column not in train.columns:
            raise DataFileError(
                f"{source}: column {column!r} not found; columns: {', '.join(map(str, train.columns))}"
            )
    missing_in_test = [c for c in train.columns if c not in test.columns]
    if missing_in_test:
        raise DataFileError(f"{source}: test data lacks column(s) {', '.join(missing_in_test)}")
    groups_train = build_groups(train, group_columns, group_map, intersections, source, rename_groups)
    groups_test = build_groups(test, group_columns, group_map, intersections, source, rename_groups)
    excluded = {target, *drop, *([] if feature_groups else group_columns)}
    features = [c for c in train.columns if c not in excluded]
    if categorical is None:
        categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    for c in categorical:
        if c not in train.columns:
            raise DataFileError(f"{source}: categorical column {c!r} not found")
    categorical = [c for c in categorical if c in features]
    numeric = [c for c in features if c not in categorical]
    for c in numeric:
        for frame in (train, test):
            if not pd.api.types.is_numeric_dtype(frame[c]):
                example = next(iter(frame[c].dropna().astype(str)), "?")
                raise DataFileError(
                    f"{source}: feature column {c!r} is not numeric (e.g. {example!r}); "
                    "list it in `data.categorical` to one-hot encode it, or drop it with `data.drop`"
                )
    if not features:
        raise DataFileError(f"{source}: no feature columns left after removing the target and group columns")

    y_all, y_test, classes = encode_target(train[target], test[target], source, target)
    # Hold validation out first (chosen by the trial's seed), then fit the encoding on the remaining
    # training rows only, so that neither validation nor test statistics reach the features.
    fit_idx, val_idx = stratified_split(y_all, val_fraction, seed)
    encoder = FeatureEncoder.fit(train.iloc[fit_idx], numeric, categorical)
    x_all = encoder.transform(train)
    used = [target, *features]  # missing among the inputs and the label; a missing group is "unknown"
    info = {
        **(meta or {}),
        "target": target,
        "classes": classes,
        "features": encoder.feature_names,
        "raw_features": features,
        "group_columns": list(group_columns),
        "groups": sorted(groups_train),
        "encoding_fitted_on": "train (validation rows held out first)",
        "missing": {
            "train": missing_rate_by_group(train[used].isna().any(axis=1).to_numpy(), groups_train),
            "test": missing_rate_by_group(test[used].isna().any(axis=1).to_numpy(), groups_test),
        },
        "proxy_warnings": proxy_warnings(train, features, groups_train),
        "imputed": imputation_record(train, test, numeric, categorical),
        "group_counts": {
            "train": _group_counts(groups_train, fit_idx),
            "val": _group_counts(groups_train, val_idx),
            "test": _group_counts(groups_test, np.arange(len(test))),
        },
    }
    full = Split(x_all, y_all, groups_train)
    test_split = Split(encoder.transform(test), y_test, groups_test)
    return Dataset(name, full.subset(fit_idx), full.subset(val_idx), test_split, len(classes), info)


def imputation_record(
    train: pd.DataFrame, test: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict:
    """What the encoder filled in, so that the report can say so: per feature column with missing values,
    how many train (incl. validation) and test rows were missing and what replaced them."""
    columns = {}
    for c in [*numeric, *categorical]:
        n_train, n_test = int(train[c].isna().sum()), int(test[c].isna().sum())
        if n_train or n_test:
            columns[c] = {
                "train_rows": n_train,
                "test_rows": n_test,
                "filled_with": "the training median" if c in numeric else "a '<missing>' category",
            }
    features = [*numeric, *categorical]
    return {
        "columns": columns,
        "train_rows": int(train[features].isna().any(axis=1).sum()) if features else 0,
        "test_rows": int(test[features].isna().any(axis=1).sum()) if features else 0,
    }


def _group_counts(groups: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, dict[str, int]]:
    out = {}
    for attribute, labels in groups.items():
        values, counts = np.unique(np.asarray(labels)[rows].astype(str), return_counts=True)
        out[attribute] = {str(v): int(n) for v, n in zip(values, counts, strict=True)}
    return out


def subsample(frame: pd.DataFrame, labels: pd.Series, size: int | None, seed: int) -> pd.DataFrame:
    """A stratified subset of `size` rows (all rows when size is None or not smaller)."""
    if not size or size >= len(frame):
        return frame
    _, keep = stratified_split(labels.astype(str).to_numpy(), size / len(frame), seed)
    return frame.iloc[keep].reset_index(drop=True)
