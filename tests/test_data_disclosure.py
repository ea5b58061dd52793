"""What the data loader did must reach the report (issue 11): a group with one row is reported, not
dropped, and imputed missing values are said."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.evaluate.pitfalls import run_checks
from slimlab.evaluate.reliability import data_reliability


def _files(tmp_path, nan: bool = True):
    rng = np.random.default_rng(0)

    def frame(n):
        x = rng.normal(size=(n, 2))
        return pd.DataFrame(
            {
                "f0": x[:, 0],
                "f1": x[:, 1],
                "y": (x[:, 0] > 0).astype(int),
                "region": rng.choice(["n", "s"], n),
            }
        )

    train, test = frame(200), frame(100)
    train.loc[7, "region"] = "island"  # one row in the whole data set
    if nan:
        train.loc[3, "f1"] = np.nan
        test.loc[[1, 2], "f0"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return DataConfig(
        name="csv",
        path=str(tmp_path / "train.csv"),
        test_path=str(tmp_path / "test.csv"),
        target="y",
        group_columns=["region"],
    )


def test_a_group_with_one_row_is_reported_wherever_its_row_fell(tmp_path):
    options = _files(tmp_path)
    for seed in range(4):  # the one row lands in train or in validation depending on the seed
        data = load_dataset(options, seed)
        report = data_reliability(data, label_noise=False)
        assert "island" in report["groups"]["region"], seed
        found = [w for w in report["warnings"] if w["group"] == "island"]
        assert found and found[0]["kind"] == "not in the test split", found
        assert sum(data.meta["group_counts"][s]["region"].get("island", 0) for s in ("train", "val")) == 1


def test_imputed_missing_values_are_recorded_and_flagged(tmp_path):
    data = load_dataset(_files(tmp_path), 0)
    imputed = data.meta["imputed"]
    assert imputed["train_rows"] == 1 and imputed["test_rows"] == 2
    assert imputed["columns"]["f0"] == {"train_rows": 0, "test_rows": 2, "filled_with": "the training median"}
    check = next(c for c in run_checks(data, run_baselines=False) if c["check"] == "missing values imputed")
    assert check["status"] == "warn" and "f0" in check["detail"] and "f1" in check["detail"]


def test_no_imputation_passes(tmp_path):
    data = load_dataset(_files(tmp_path, nan=False), 0)
    check = next(c for c in run_checks(data, run_baselines=False) if c["check"] == "missing values imputed")
    assert check["status"] == "pass"


def _coarse(n: int, seed: int):
    from slimlab.data import Split

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, 4)).astype(np.float32)  # 81 possible rows: many honest duplicates
    return Split(x, (x[:, 0] > 1).astype(np.int64))


def test_duplicates_that_chance_explains_are_not_leakage():
    # UCI Adult's case (the bundled fairness example failed its own check): distinct people share every
    # coarse feature. An honest random split of such data duplicates at the rate the data itself has.
    from slimlab.evaluate.pitfalls import leakage_checks

    train, test = _coarse(2000, 0), _coarse(500, 1)
    exact = leakage_checks(train, test)[0]
    assert exact["values"]["count"] > 400 and exact["status"] == "pass", exact
    assert "identical features" in exact["detail"]


def test_copies_beyond_chance_are_still_leakage():
    from slimlab.data import Split
    from slimlab.evaluate.pitfalls import leakage_checks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 6)).astype(np.float32)
    train = Split(x, np.zeros(1000, dtype=np.int64))
    test = Split(
        np.vstack([x[:30], rng.normal(size=(270, 6)).astype(np.float32)]), np.zeros(300, dtype=np.int64)
    )
    exact = leakage_checks(train, test)[0]
    assert exact["status"] == "fail" and exact["values"]["count"] == 30
