"""Pitfall checks: each is shown to pass on clean input and to fire on the pitfall it names."""

import numpy as np
import pytest

from slimlab.config import DataConfig
from slimlab.data import Dataset, Split, load_dataset
from slimlab.evaluate.pitfalls import (
    TestSetLog,
    baseline_check,
    baseline_variant_check,
    exact_duplicates,
    imbalance_check,
    leakage_checks,
    near_duplicates,
    run_checks,
    seeds_check,
)


def _blobs(n, seed, shift=0.0, classes=3, features=8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = np.random.default_rng(99).normal(0, 0.6, (classes, features))
    x = centres[y] + rng.normal(0, 1, (n, features)) + shift
    return Split(x.astype(np.float32), y.astype(np.int64))


@pytest.fixture
def clean():
    return Dataset("blobs", _blobs(300, 0), _blobs(60, 1), _blobs(100, 2), num_classes=3)


def _by_check(records):
    return {r["check"]: r for r in records}


def test_exact_and_near_duplicates_are_found():
    a = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    b = np.vstack([a[:3], a[3:5] + 1e-3, np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)])
    assert exact_duplicates(a, b).tolist() == [0, 1, 2]
    near, dist = near_duplicates(a, b, threshold=0.1)
    assert near.tolist() == [0, 1, 2, 3, 4] and dist[0] == 0.0 and dist[-1] > 0.1


def test_digits_with_test_samples_copied_into_train_is_flagged():
    data = load_dataset(DataConfig(name="digits"), 0)
    clean = _by_check(leakage_checks(data.train, data.test))
    assert clean["leakage: exact duplicates train/test"]["status"] == "pass"
    assert clean["leakage: near-duplicates train/test"]["status"] == "pass"
    rng = np.random.default_rng(0)
    copied = rng.choice(len(data.test), 30, replace=False)
    blurred = rng.choice(np.setdiff1d(np.arange(len(data.test)), copied), 10, replace=False)
    noisy = data.test.x[blurred] + rng.normal(0, 0.01, data.test.x[blurred].shape).astype(np.float32)
    leaky_train = Split(
        np.vstack([data.train.x, data.test.x[copied], noisy]),
        np.concatenate([data.train.y, data.test.y[copied], data.test.y[blurred]]),
    )
    leaky = _by_check(leakage_checks(leaky_train, data.test))
    exact, near = leaky["leakage: exact duplicates train/test"], leaky["leakage: near-duplicates train/test"]
    assert exact["status"] == "fail" and exact["item"] == "3.1" and exact["values"]["count"] == 30
    assert near["status"] == "warn" and near["item"] == "4.1" and near["values"]["count"] == 10


def test_run_checks_flags_a_leaky_experiment(clean):
    trials = [
        {"variant": v, "seed": s, "status": "ok", "metrics": {"accuracy": 0.9}}
        for v in ("dense", "p")
        for s in range(5)
    ]
    statuses = {r["check"]: r["status"] for r in run_checks(clean, trials, "dense")}
    assert "fail" not in statuses.values()
    leaky = Dataset(
        "leaky",
        Split(
            np.vstack([clean.train.x, clean.test.x[:5]]), np.concatenate([clean.train.y, clean.test.y[:5]])
        ),
        clean.val,
        clean.test,
        3,
    )
    records = run_checks(leaky, trials, "dense")
    assert _by_check(records)["leakage: exact duplicates train/test"]["status"] == "fail"
    assert all({"check", "item", "status", "detail"} <= set(r) for r in records)


def test_preprocessing_fitted_on_all_data_fails(clean):
    bad = Dataset("bad", clean.train, clean.val, clean.test, 3, {"standardised_on": "all"})
    record = _by_check(run_checks(bad, run_baselines=False))["leakage: preprocessing fitted on train"]
    assert record["status"] == "fail" and record["item"] == "3.1"


def test_test_set_log():
    split = _blobs(10, 0)
    log = TestSetLog()
    assert log.open(split, "final_evaluation", "prune90 vs dense, seed 0") is split
    log.open(split, "final_evaluation", "int8 vs dense, seed 0")
    assert log.check()["status"] == "pass"
    log.open(split, "final_evaluation", "int8 vs dense, seed 0")
    again = log.check()
    assert again["status"] == "fail" and again["item"] == "4.3" and "int8 vs dense, seed 0" in again["detail"]
    tuned = TestSetLog()
    tuned.open(split, "early_stopping", "epochs")
    assert tuned.check()["status"] == "fail" and "validation" in tuned.check()["detail"]


@pytest.mark.parametrize(
    ("test", "n", "status"),
    [
        ("wilcoxon", 5, "fail"),
        ("wilcoxon", 6, "pass"),
        ("paired_t", 3, "warn"),
        ("paired_t", 1, "fail"),
        ("mcnemar_exact", 4, "fail"),
    ],
)
def test_seeds_check(test, n, status):
    record = seeds_check(test, n)
    assert record["status"] == status and record["item"] == "4.4"
    if status == "fail":
        assert f"at least {record['values']['minimum']}" in record["detail"]


def test_imbalance_check():
    y = np.array([0] * 90 + [1] * 10)
    always_zero = np.zeros(100, dtype=int)
    warn = imbalance_check(y, always_zero, metrics_reported=["accuracy"])
    assert warn["status"] == "warn" and warn["item"] == "4.6"
    values = warn["values"]
    assert values["accuracy"] == 0.9 and values["balanced_accuracy"] == 0.5 and values["mcc"] == 0.0
    assert values["macro_f1"] == pytest.approx(0.9 / 1.9)  # class 0: F1 = 2 * 0.9 / 1.9; class 1: 0
    assert imbalance_check(y, always_zero, ["accuracy", "balanced_accuracy"])["status"] == "pass"
    assert imbalance_check(np.array([0, 1] * 50))["status"] == "pass"


def test_baseline_check(clean):
    majority = baseline_check(clean, model_accuracy=0.2)
    assert majority["status"] == "fail" and majority["item"] == "5.2"
    good = baseline_check(clean, model_accuracy=1.0)
    assert good["status"] == "pass" and good["values"]["logistic_regression_accuracy"] > 0.6
    # A model no better than logistic regression, given per-sample: McNemar cannot call it clearly better.
    logistic = good["values"]["logistic_regression_accuracy"]
    correct = np.arange(len(clean.test)) < round(logistic * len(clean.test))
    weak = baseline_check(clean, model_correct=correct)
    assert weak["status"] == "warn" and "logistic_regression" in weak["detail"]


def test_baseline_variant_check():
    assert baseline_variant_check(["dense", "int8"], "dense")["status"] == "pass"
    assert baseline_variant_check(["int8"], "dense")["status"] == "fail"
    assert baseline_variant_check(["int8"], None)["status"] == "fail"
