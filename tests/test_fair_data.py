"""Data with groups: the Adult package data, a user's CSV, group maps, intersections, proxies."""

import json

import numpy as np
import pandas as pd
import pytest

from slimlab.config import DataConfig, parse_experiment
from slimlab.data import load_dataset
from slimlab.data.groups import build_groups, load_group_map, split_intersection
from slimlab.data.proxies import name_hint, proxy_warnings, uncertainty_coefficient
from slimlab.errors import ConfigError, DataFileError


@pytest.fixture(scope="module")
def adult():
    return load_dataset(DataConfig(name="adult", num_samples=3000), seed=0)


def test_adult_shapes_groups_and_no_group_columns_in_features(adult):
    assert len(adult.train) + len(adult.val) == 3000
    assert len(adult.test) == 16281  # the official test file, whole
    assert adult.num_classes == 2 and adult.meta["classes"] == ["<=50K", ">50K"]
    assert set(adult.test.groups) == {"sex", "race", "age_band", "region", "sex×race"}
    assert set(adult.test.groups["sex"]) == {"Female", "Male"}
    assert "Latin America & Caribbean" in set(adult.test.groups["region"])
    assert "Female & Black" in set(adult.test.groups["sex×race"])
    features = adult.meta["features"]
    assert adult.train.x.shape[1] == len(features)
    for excluded in ("sex=", "race=", "native-country=", "age_band=", "fnlwgt"):
        assert not any(f.startswith(excluded) for f in features), excluded
    assert "age" not in features  # age_band is a group, so its source is not an input either
    assert 0.2 < adult.test.y.mean() < 0.3  # >50K is about a quarter of the test rows


def test_adult_scaler_fitted_on_train_only(adult):
    i = adult.meta["features"].index("hours-per-week")
    fit = adult.train.x[:, i]
    # Standardised with the fit rows' own statistics: mean 0 and sd 1 there, and not exactly on the others.
    assert abs(fit.mean()) < 1e-5 and abs(fit.std() - 1) < 1e-4
    assert abs(adult.test.x[:, i].mean()) > 1e-4
    assert abs(adult.val.x[:, i].mean()) > 1e-4


def test_adult_groups_can_be_features_and_configured():
    data = load_dataset(
        DataConfig(name="adult", num_samples=1000, group_columns=["sex"], feature_groups=True),
        seed=0,
    )
    assert set(data.test.groups) == {"sex"}
    assert "sex=Female" in data.meta["features"] and "age" in data.meta["features"]


def test_adult_proxy_warning_finds_relationship(adult):
    flagged = {w["feature"]: w for w in adult.meta["proxy_warnings"]}
    assert flagged["relationship"]["group"] == "sex" and flagged["relationship"]["association"] > 0.3


def _write_csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "score": rng.normal(size=n),
            "caste": rng.choice(["A", "B", "C", "D"], size=n),
            "district": rng.choice(["d1", "d2"], size=n),
            "label": rng.choice(["yes", "no"], size=n),
        }
    )
    frame.loc[:5, "score"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def test_user_csv_with_groups_map_and_intersection(tmp_path):
    _write_csv(tmp_path / "people.csv")
    mapping = tmp_path / "castes.json"
    mapping.write_text(json.dumps({"caste": {"A": "group-1", "B": "group-1"}}))
    options = DataConfig(
        name="csv",
        path=str(tmp_path / "people.csv"),
        target="label",
        group_columns=["caste", "district"],
        group_map=str(mapping),
        intersections=["caste*district"],
        categorical=[],
    )
    data = load_dataset(options, seed=1)
    assert len(data.test) == 24  # test_fraction 0.2 by default
    assert set(data.test.groups) == {"caste", "district", "caste×district"}
    all_castes = set(data.train.groups["caste"]) | set(data.test.groups["caste"])
    assert all_castes == {"group-1", "C", "D"}  # A and B merged, the others kept raw
    assert data.meta["features"] == ["income", "score"]
    assert not np.isnan(data.train.x).any()  # the missing scores were imputed (train median)
    assert data.meta["missing"]["train"]["caste"]  # ...but their rate per group was measured first


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"path": "nope.csv"}, r"nope\.csv: data file not found"),
        ({"target": "salary"}, r"people\.csv: target column 'salary' not found"),
        ({"group_columns": ["religion"]}, r"people\.csv: group column 'religion' not found"),
        ({"group_columns": ["caste"]}, r"feature column 'district' is not numeric \(e\.g\. 'd"),
        ({"intersections": ["caste×religion"]}, r"'religion' in 'caste×religion' is not a group"),
        ({"intersections": ["caste"]}, r"not an intersection"),
        (
            {"group_columns": ["caste"], "group_map": {"district": {"d1": "x"}}},
            r"maps column\(s\) district that are not group columns",
        ),
    ],
)
def test_user_csv_errors_name_the_file_and_column(tmp_path, monkeypatch, update, message):
    monkeypatch.chdir(tmp_path)
    _write_csv(tmp_path / "people.csv")
    options = {"name": "csv", "path": "people.csv", "target": "label", "group_columns": ["caste", "district"]}
    with pytest.raises((DataFileError, ConfigError), match=message):
        load_dataset(DataConfig(**{**options, **update}), seed=0)


def test_csv_dataset_needs_path_and_target():
    with pytest.raises(ConfigError, match=r"`data\[0\]`: dataset .csv. needs `data\.path`"):
        parse_experiment({"name": "x", "data": {"name": "csv"}, "variants": [{"name": "dense"}]})


def test_new_data_fields_keep_old_trial_ids():
    # Fields at their defaults are left out of the dump that trial ids hash.
    assert DataConfig().model_dump() == {
        "name": "mnist1d",
        "num_samples": None,
        "test_fraction": None,
        "val_fraction": 0.1,
        "split_seed": 0,
    }
    assert DataConfig(name="adult", feature_groups=True).model_dump()["feature_groups"] is True


@pytest.mark.parametrize("suffix", [".toml", ".json", ".csv"])
def test_group_map_files(tmp_path, suffix):
    path = tmp_path / f"map{suffix}"
    path.write_text(
        {
            ".toml": '[religion]\n"Hindu" = "majority"\n"Sikh" = "minority"\n',
            ".json": '{"religion": {"Hindu": "majority", "Sikh": "minority"}}',
            ".csv": "column,value,group\nreligion,Hindu,majority\nreligion,Sikh,minority\n",
        }[suffix]
    )
    assert load_group_map(path) == {"religion": {"Hindu": "majority", "Sikh": "minority"}}


def test_group_map_errors(tmp_path):
    with pytest.raises(DataFileError, match=r"missing\.toml: group mapping file not found"):
        load_group_map(tmp_path / "missing.toml")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataFileError, match="header column,value,group"):
        load_group_map(bad)


def test_build_groups_unknown_and_intersection():
    frame = pd.DataFrame({"lang": ["hi", "ta", None], "region": ["N", "S", "S"]})
    groups = build_groups(frame, ["lang", "region"], {"lang": {"hi": "Hindi"}}, ["lang × region"])
    assert groups["lang"].tolist() == ["Hindi", "ta", "unknown"]
    assert groups["lang×region"].tolist() == ["Hindi & N", "ta & S", "unknown & S"]
    assert split_intersection("sex×race") == split_intersection("sex * race") == ["sex", "race"]


def test_proxy_heuristics():
    assert "surname" in name_hint("Surname")
    assert "location" in name_hint("pin_code")
    assert "language" in name_hint("mother_tongue")
    assert name_hint("hours") is None
    group = np.array(["a", "b"] * 50)
    assert uncertainty_coefficient(group, group) == pytest.approx(1.0)
    assert uncertainty_coefficient(group, np.zeros(100)) == 0.0
    frame = pd.DataFrame({"copy": group, "noise": np.arange(100) % 7})
    warnings = proxy_warnings(frame, ["copy", "noise"], {"g": group})
    assert [w["feature"] for w in warnings] == ["copy"]


def test_mnist1d_groups_small_noisy_region():
    data = load_dataset(DataConfig(name="mnist1d_groups", num_samples=1000), seed=0)
    regions, counts = np.unique(data.test.groups["region"], return_counts=True)
    assert dict(zip(regions, counts, strict=True))["west"] < 0.1 * len(data.test)
    np.testing.assert_array_equal(data.test.groups["class"], data.test.y.astype(str))
    again = load_dataset(DataConfig(name="mnist1d_groups", num_samples=1000), seed=3)
    np.testing.assert_array_equal(again.test.groups["region"], data.test.groups["region"])


def test_parquet_needs_pyarrow_or_reads(tmp_path):
    import importlib.util

    frame = _write_csv(tmp_path / "people.csv")
    path = tmp_path / "people.parquet"
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataFileError, match=r"people\.parquet: reading parquet needs pyarrow"):
            load_dataset(DataConfig(name="csv", path=str(path), target="label"), seed=0)
    else:
        frame.to_parquet(path)
        options = DataConfig(name="csv", path=str(path), target="label", group_columns=["caste", "district"])
        assert len(load_dataset(options, seed=0).test) == 24


def test_unknown_file_type_and_unreadable_table(tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(DataFileError, match=r"data\.xlsx: unknown file type"):
        load_dataset(DataConfig(name="csv", path=str(tmp_path / "data.xlsx"), target="y"), seed=0)
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataFileError, match=r"empty\.csv: the table has no rows"):
        load_dataset(DataConfig(name="csv", path=str(tmp_path / "empty.csv"), target="a"), seed=0)
