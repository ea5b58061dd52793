"""UCI Adult (Becker & Kohavi, 1996; CC BY 4.0), shipped gzip-compressed as package data (see
data/files/README.md for the source and licence). Target: income >50K. The official train/test split is
kept: 32,561 training rows, 16,281 test rows, so the test split never depends on any seed.

Groups by default: sex, race, age band, region of birth (native-country merged into regions by
files/adult_regions.toml), and the intersection sex×race. The columns these come from are not features
unless `data.feature_groups = true`; `fnlwgt` (a census sampling weight, not an attribute of the person)
is dropped.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from slimlab.data.groups import load_group_map

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex"]
CATEGORICAL += ["native-country"]
DEFAULT_GROUPS = ["sex", "race", "age_band", "native-country"]
DEFAULT_INTERSECTIONS = ["sex×race"]
# Group names shown for source columns (the column native-country, merged by region, is the group "region").
RENAME = {"native-country": "region"}
AGE_BANDS = [(17, 25), (25, 45), (45, 65), (65, 200)]  # [lo, hi)


def default_intersections(group_columns: list[str]) -> list[str]:
    """The default intersections whose parts are all among the chosen group columns."""
    from slimlab.data.groups import split_intersection

    return [i for i in DEFAULT_INTERSECTIONS if set(split_intersection(i)) <= set(group_columns)]


def files_dir():
    return resources.files("slimlab.data") / "files"


def read_adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) raw frames: `?` read as missing, the test labels' trailing '.' removed, and the
    derived column age_band added."""
    frames = []
    for name, skip in (("adult.data.gz", 0), ("adult.test.gz", 1)):  # adult.test starts with a header line
        with resources.as_file(files_dir() / name) as path:
            frame = pd.read_csv(
                path,
                names=COLUMNS,
                skiprows=skip,
                skipinitialspace=True,
                na_values="?",
                compression="gzip",
            )
        frame = frame.dropna(how="all")  # the files end with a blank line
        frame["income"] = frame["income"].str.rstrip(".")
        frame["age_band"] = age_band(frame["age"].to_numpy())
        frames.append(frame.reset_index(drop=True))
    return frames[0], frames[1]


def age_band(age: np.ndarray) -> np.ndarray:
    labels = np.full(len(age), "unknown", dtype=object)
    for lo, hi in AGE_BANDS:
        labels[(age >= lo) & (age < hi)] = f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+"
    return labels


def default_group_map() -> dict:
    with resources.as_file(files_dir() / "adult_regions.toml") as path:
        return load_group_map(path)
