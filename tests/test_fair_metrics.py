"""Per-group metrics, disparities (checked against fairlearn), compression impact with Holm, CIEs,
data reliability."""

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from slimlab.data.dataset import Dataset, Split
from slimlab.evaluate.cie import cie_summary, compression_identified_exemplars, modal_predictions
from slimlab.evaluate.fairness import (
    audit_variant,
    compression_impact,
    disparities,
    fast_disparities,
    inferior_groups,
)
from slimlab.evaluate.groups import (
    expected_calibration_error,
    group_metrics,
    ranked,
    trial_group_metrics,
)
from slimlab.evaluate.reliability import data_reliability
from slimlab.stats import wilson_ci


def wilson(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    return wilson_ci(k, n, confidence)[1]


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, size=n)
    # Predictions that are right 85% of the time for a, 75% for b, 60% for c.
    right = rng.random(n) < np.select([labels == "a", labels == "b"], [0.85, 0.75], 0.6)
    pred = np.where(right, y, 1 - y)
    return y, pred, labels


def test_wilson_matches_statsmodels_and_a_known_value():
    # The one Wilson interval (stats.wilson_ci) serves the per-group tables, CIEs and reliability audit.
    assert wilson(8, 10) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)
    for k, n in [(0, 5), (5, 5), (37, 120), (37.4, 120)]:  # a mean count over seeds is a float
        assert wilson(k, n, 0.9) == pytest.approx(proportion_confint(k, n, alpha=0.1, method="wilson"))
    assert wilson_ci(8, 10)[0] == 0.8 and all(v != v for v in wilson(3, 0))
    with pytest.raises(ValueError, match="must lie in"):
        wilson_ci(11, 10)


def test_group_metrics_agree_with_fairlearn(binary_data):
    y, pred, labels = binary_data
    ours = group_metrics(y, pred, labels, num_classes=2)
    frame = MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "n": count,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=labels,
    )
    for group, row in frame.by_group.iterrows():
        assert ours[group]["n"] == row["n"]
        for metric in ("accuracy", "selection_rate", "tpr", "fpr"):
            assert ours[group][metric]["value"] == pytest.approx(row[metric], abs=1e-12), (group, metric)
        k = round(ours[group]["tpr"]["value"] * ours[group]["tpr"]["n"])
        assert ours[group]["tpr"]["ci"] == pytest.approx(list(wilson(k, ours[group]["tpr"]["n"])))
    assert ours["a"]["error_rate"]["value"] == pytest.approx(1 - ours["a"]["accuracy"]["value"])
    assert trial_group_metrics(y, pred, {"g": labels}, num_classes=2) == {"g": ours}


def test_disparities_agree_with_fairlearn(binary_data):
    y, pred, labels = binary_data
    ours = disparities(y, pred, labels, ["a", "b", "c"], binary=True)
    assert ours["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=labels)
    )
    assert ours["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=labels)
    )
    assert ours["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=labels)
    )
    by_group = {g: (pred[labels == g] == y[labels == g]).mean() for g in "abc"}
    assert ours["worst_group"] == "c" and ours["worst_group_accuracy"] == pytest.approx(by_group["c"])
    assert ours["accuracy_gap"] == pytest.approx(max(by_group.values()) - min(by_group.values()))
    for rankable in (["a", "b", "c"], ["a", "c"]):
        fast = fast_disparities(y, pred, labels, rankable, binary=True)
        slow = disparities(y, pred, labels, rankable, binary=True)
        assert fast["worst_group"] == slow["worst_group"]
        for key, value in slow.items():
            if key != "worst_group":
                assert fast[key] == pytest.approx(value, abs=1e-12), key
    # Leaving c out (as a small group would be) changes the answer: it is computed on a and b only.
    without_c = disparities(y, pred, labels, ["a", "b"], binary=True)
    keep = labels != "c"
    assert without_c["worst_group"] == "b"
    assert without_c["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y[keep], pred[keep], sensitive_features=labels[keep])
    )


def test_small_groups_are_flagged_and_never_ranked(binary_data):
    y, pred, labels = binary_data
    labels = labels.astype(object)
    labels[:12] = "tiny"  # 12 rows, all predicted right: the best accuracy, yet not rankable
    pred = pred.copy()
    pred[:12] = y[:12]
    metrics = group_metrics(y, pred, labels, num_classes=2)
    assert metrics["tiny"]["small_n"] and metrics["tiny"]["accuracy"]["value"] == 1.0
    assert not metrics["a"]["small_n"]
    assert "tiny" not in ranked(metrics)
    assert ranked(metrics)[0] == "c"
    # The width rule: with min_n lowered, a 12-row group still has too wide an interval to rank.
    loose = group_metrics(y, pred, labels, num_classes=2, min_n=5, max_ci_width=0.2)
    assert loose["tiny"]["small_n"]
    audit = audit_variant(y, {0: pred, 1: pred}, {"g": labels}, num_classes=2)
    assert audit["g"]["small_n"] == ["tiny"] and audit["g"]["worst_group"] == "c"


def test_multiclass_reports_no_tpr_and_ece_known_value():
    y = np.array([0, 1, 2, 2])
    metrics = group_metrics(y, np.array([0, 1, 1, 2]), np.array(["x"] * 4), num_classes=3)
    assert "tpr" not in metrics["x"] and metrics["x"]["accuracy"]["value"] == 0.75
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    # Bins: 0.7 (wrong), 0.8 (right, right), 0.9 (right) -> 1/4*0.7 + 2/4*|1-0.8| + 1/4*|1-0.9|
    assert expected_calibration_error(y, probs) == pytest.approx(0.25 * 0.7 + 0.5 * 0.2 + 0.25 * 0.1)


def test_cie_on_a_hand_built_example():
    dense = [np.array([0, 1, 1, 0, 2]), np.array([0, 1, 1, 1, 2]), np.array([0, 1, 0, 0, 2])]
    pruned = [np.array([0, 0, 1, 0, 1]), np.array([0, 0, 1, 0, 2]), np.array([1, 1, 1, 0, 0])]
    np.testing.assert_array_equal(modal_predictions(dense), [0, 1, 1, 0, 2])
    np.testing.assert_array_equal(modal_predictions(pruned), [0, 0, 1, 0, 0])  # a 1-2-0 tie -> 0 on the last
    np.testing.assert_array_equal(compression_identified_exemplars(dense, pruned), [0, 1, 0, 0, 1])
    y = np.array([0, 1, 1, 0, 2])
    groups = {"g": np.array(["u", "u", "v", "v", "v"])}
    summary = cie_summary(y, dense, pruned, groups, min_n=2)
    assert summary["count"] == 2 and summary["rate"] == pytest.approx(0.4)
    assert summary["by_group"]["g"]["u"]["cie"] == 1 and summary["by_group"]["g"]["v"]["cie"] == 1
    assert summary["by_group"]["g"]["u"]["rate"] == pytest.approx(0.5)
    assert summary["by_group"]["g"]["u"]["over_representation"] == pytest.approx(0.5 / 0.4)
    # On the CIEs (samples 1 and 4) dense is right 6 of 6 times, pruned 2 of 6.
    assert summary["accuracy"]["dense"]["on_cie"] == pytest.approx(1.0)
    assert summary["accuracy"]["compressed"]["on_cie"] == pytest.approx(2 / 6)
    assert summary["accuracy"]["dense"]["off_cie"] == pytest.approx(7 / 9)  # samples 0, 2, 3


def _trials(y, groups, harm_group, seeds=5, n_groups=8):
    """Dense right on 90% of each group; 'pruned' loses 10 points on harm_group only, with seed noise."""
    rng = np.random.default_rng(1)
    trials = []
    for seed in range(seeds):
        dense = np.where(rng.random(len(y)) < 0.9, y, 1 - y)
        pruned = dense.copy()
        hit = (groups == harm_group) & (rng.random(len(y)) < 0.1 + 0.01 * seed)
        pruned[hit] = 1 - y[hit]
        for variant, pred in (("dense", dense), ("pruned", pruned)):
            trials.append(
                {"variant": variant, "seed": seed, "dataset": "d", "status": "ok", "predictions": pred}
            )
    trials.append({"variant": "pruned", "seed": 9, "dataset": "d", "status": "failed", "predictions": None})
    return trials


def test_compression_impact_holm_over_groups_and_variants():
    rng = np.random.default_rng(2)
    groups = np.array([f"g{i}" for i in range(8)] * 100 + ["tiny"] * 10)
    y = rng.integers(0, 2, size=len(groups))
    result = compression_impact(_trials(y, groups, "g3"), y, {"grp": groups}, baseline="dense", margin=0.02)
    rows = {r["group"]: r for r in result["rows"]}
    assert rows["g3"]["verdict"] == "inferior" and rows["g3"]["delta"] < -0.05
    assert rows["tiny"]["verdict"] == "small_n"
    assert rows["g3"]["seeds"] == [0, 1, 2, 3, 4]  # the failed trial is left out of the pairing
    family = [r for r in result["rows"] if not r["small_n"]]
    assert result["family_size"] == len(family) == 8
    for key in ("p_noninferiority", "p_inferiority"):
        # The one rule (stats.verdict): a degenerate row has no p of its own, and counts with p = 1.
        assert all((r[key] is None) == bool(r["inconclusive_reason"]) for r in family)
        raw = [1.0 if r["inconclusive_reason"] else r[key] for r in family]
        expected = multipletests(raw, method="holm")[1]
        assert [r[f"{key}_holm"] for r in family] == pytest.approx(list(expected))
    assert result["most_hurt"][0]["group"] == "g3"
    assert [g["group"] for g in inferior_groups(result, "pruned")] == ["g3"]
    # Holm makes the verdicts harder to earn than the per-group CI alone.
    for r in family:
        if r["verdict"] == "inferior":
            assert r["verdict_unadjusted"] == "inferior"


def _marginal_trials(n_groups: int, n: int = 200) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """g0 loses a little more than a 1-point margin on every seed; the other groups are unaffected."""
    diffs = [-0.030, -0.035, -0.015, -0.040, -0.025]
    groups = np.repeat([f"g{i}" for i in range(n_groups)], n)
    y = np.zeros(len(groups), dtype=int)
    trials = []
    for seed, d in enumerate(diffs):
        dense = np.zeros(len(groups), dtype=int)
        pruned = dense.copy()
        pruned[: round(-d * n)] = 1
        trials += [
            {"variant": "dense", "seed": seed, "dataset": "d", "status": "ok", "predictions": dense},
            {"variant": "pruned", "seed": seed, "dataset": "d", "status": "ok", "predictions": pruned},
        ]
    return trials, y, groups


def test_holm_turns_a_lone_marginal_harm_inconclusive():
    trials, y, groups = _marginal_trials(1)
    alone = compression_impact(trials, y, {"g": groups}, baseline="dense", margin=0.01)
    assert alone["rows"][0]["verdict"] == alone["rows"][0]["verdict_unadjusted"] == "inferior"
    trials, y, groups = _marginal_trials(40)
    many = compression_impact(trials, y, {"g": groups}, baseline="dense", margin=0.01)
    g0 = next(r for r in many["rows"] if r["group"] == "g0")
    assert g0["verdict_unadjusted"] == "inferior" and g0["verdict"] == "inconclusive"
    assert g0["p_inferiority_holm"] == pytest.approx(min(1.0, 40 * g0["p_inferiority"]))


def test_compression_impact_checks_prediction_length():
    trials, y, groups = _marginal_trials(2)
    with pytest.raises(ValueError, match="predictions for 400 samples but 200 test labels"):
        compression_impact(trials, y[:200], {"g": groups[:200]}, baseline="dense", margin=0.01)


def _reliability_data(noise: float):
    rng = np.random.default_rng(0)
    n = 1200
    groups = np.where(np.arange(n) < 900, "big", "noisy")
    y = rng.integers(0, 2, size=n)
    x = (y[:, None] * 2.0 + rng.normal(size=(n, 3))).astype(np.float32)
    flip = (groups == "noisy") & (rng.random(n) < noise)
    y = np.where(flip, 1 - y, y)
    thin = np.where(np.arange(n) < 1190, "common", "rare")
    split = Split(x, y, {"part": groups, "size": thin})
    return Dataset("synthetic", split, split.subset(np.arange(10)), split, 2, {})


def test_reliability_flags_noisy_and_thin_groups():
    report = data_reliability(_reliability_data(0.3))
    kinds = {(w["group"], w["kind"]) for w in report["warnings"]}
    assert ("noisy", "noisier labels") in kinds and ("big", "noisier labels") not in kinds
    assert ("rare", "thin") in kinds
    noisy = report["groups"]["part"]["noisy"]["label_disagreement"]["value"]
    assert noisy > 2 * report["groups"]["part"]["big"]["label_disagreement"]["value"]
    clean = data_reliability(_reliability_data(0.0))
    assert not any(w["kind"] == "noisier labels" for w in clean["warnings"])
