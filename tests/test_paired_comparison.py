"""Issue 10: one paired comparison in `stats` (slimlab.stats.paired_comparison), with one degenerate-data
rule, one verdict rule (stats.verdict), one non-inferiority p and one Wilson interval, used by the experiment
comparisons, the fairness audit, the search and the lottery summary. Cross-checked against scipy and
statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

import slimlab.analysis.lottery as lottery
import slimlab.evaluate.fairness as fairness
import slimlab.stats.compare as compare
from slimlab.analysis.search import search_decision
from slimlab.stats import compare_scores, paired_comparison, verdict_from_ci, wilson_ci
from slimlab.stats.verdict import holm_family, holm_verdicts


def _pairs(rng, n=6, shift=-0.002, sd=0.004):
    base = rng.normal(0.9, 0.01, n)
    return base + rng.normal(shift, sd, n), base


@pytest.mark.parametrize("seed", range(5))
def test_paired_t_matches_scipy_ttest_rel_and_t_intervals(seed):
    variant, base = _pairs(np.random.default_rng(seed))
    d, margin = variant - base, 0.01
    c = paired_comparison(variant, base, margin)
    ref = stats.ttest_rel(variant, base)
    assert c.test == "paired_t" and c.n == d.size and c.reason is None
    assert c.p_value == pytest.approx(ref.pvalue) and c.statistic == pytest.approx(ref.statistic)
    assert c.ci == pytest.approx(tuple(ref.confidence_interval(0.95)))
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert c.ci == pytest.approx((d.mean() - half, d.mean() + half))
    # The one non-inferiority p, and its two siblings, are one-sided t-tests at the margin.
    assert c.p_noninferiority == pytest.approx(stats.ttest_1samp(d + margin, 0, alternative="greater").pvalue)
    assert c.p_inferiority == pytest.approx(stats.ttest_1samp(d + margin, 0, alternative="less").pvalue)
    assert c.p_superiority == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue)
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1)) and c.effect_size_name == "cohen_dz"


def test_a_comparison_alone_decides_as_its_ci_does():
    # For a paired t-test in a family of one, the verdict rule on one-sided p at alpha/2 is the CI rule.
    rng = np.random.default_rng(7)
    for _ in range(300):
        variant, base = _pairs(rng, n=5, shift=rng.uniform(-0.03, 0.01), sd=0.006)
        c = paired_comparison(variant, base, 0.01)
        assert c.verdict == verdict_from_ci(c.ci, 0.01)


def test_other_tests_come_from_scipy_by_name():
    variant, base = _pairs(np.random.default_rng(3), n=8)
    w = paired_comparison(variant, base, 0.01, test="wilcoxon")
    assert w.p_value == pytest.approx(stats.wilcoxon(variant, base).pvalue)
    shifted = stats.wilcoxon(variant + 0.01, base, alternative="greater").pvalue
    assert w.p_noninferiority == pytest.approx(shifted)
    nb = paired_comparison(variant, base, 0.01, test="nadeau_bengio", test_train_ratio=0.25, unit="folds")
    assert nb.test == "nadeau_bengio" and nb.p_value > stats.ttest_rel(variant, base).pvalue


def test_holm_verdicts_is_statsmodels_holm_with_degenerate_members_at_one():
    rng = np.random.default_rng(11)
    comparisons = []
    for shift in (-0.02, 0.0, 0.004, 0.01):
        c = paired_comparison(*_pairs(rng, shift=shift), 0.01)
        comparisons.append({**c.pvalues(), "inconclusive_reason": c.reason})
    comparisons.append(
        {
            **dict.fromkeys(("p_superiority", "p_noninferiority", "p_inferiority")),
            "inconclusive_reason": "the paired differences do not vary",
        }
    )
    holm_verdicts(comparisons, 0.05)
    for key in ("p_superiority", "p_noninferiority", "p_inferiority"):
        raw = [1.0 if c["inconclusive_reason"] else c[key] for c in comparisons]
        expected = list(multipletests(raw, method="holm")[1])
        assert [c[f"{key}_holm"] for c in comparisons[:-1]] == pytest.approx(expected[:-1])
    for c in comparisons[:-1]:
        decided = [
            k for k in ("p_superiority", "p_noninferiority", "p_inferiority") if c[f"{k}_holm"] < 0.025
        ]
        assert c["verdict"] == (
            "inconclusive"
            if not decided
            else {
                "p_superiority": "superior",
                "p_noninferiority": "non-inferior",
                "p_inferiority": "inferior",
            }[decided[0]]
        )
    assert comparisons[-1]["verdict"] == "inconclusive" and comparisons[-1]["decided_by"] == "degenerate data"
    assert holm_family([0.01, None, 0.02], [False, False, True]) == [pytest.approx(0.02), None, None]
    families = ("p_superiority", "p_noninferiority", "p_inferiority")
    assert all(comparisons[-1][f"{k}_holm"] is None for k in families)


def test_the_experiment_comparisons_go_through_the_one_function(monkeypatch):
    calls = []
    real = compare.paired_comparison
    monkeypatch.setattr(compare, "paired_comparison", lambda *a, **k: calls.append(k) or real(*a, **k))
    rng = np.random.default_rng(5)
    variant, base = _pairs(rng)
    rows = [
        {"method": m, "dataset": "d", "seed": s, "score": float(v[s])}
        for s in range(6)
        for m, v in (("dense", base), ("v", variant))
    ]
    c = compare_scores(rows, "dense", margin=0.01, design="seeds", test="paired_t")["comparisons"][0]
    assert len(calls) == 1
    one = real(variant, base, 0.01)
    assert c["delta"] == pytest.approx(one.delta) and c["ci"] == pytest.approx(list(one.ci))
    assert c["p_value"] == pytest.approx(one.p_value)
    assert c["p_noninferiority"] == pytest.approx(one.p_noninferiority)
    # A family of one: the Holm-adjusted verdict is the comparison's own.
    assert c["verdict"] == one.verdict and c["p_noninferiority_holm"] == pytest.approx(one.p_noninferiority)


def _group_trials(per_seed_correct_variant, per_seed_correct_base, n):
    """One group of n rows, all labelled 0; per seed, how many rows each model gets right."""
    trials = []
    for seed, (kv, kb) in enumerate(zip(per_seed_correct_variant, per_seed_correct_base, strict=True)):
        for name, k in (("dense", kb), ("pruned", kv)):
            pred = np.ones(n, dtype=int)
            pred[:k] = 0
            trials.append(
                {"variant": name, "seed": seed, "dataset": "d", "status": "ok", "predictions": pred}
            )
    return trials


def _impact(kv, kb, n, **options):
    """The fairness audit of one group of n rows (see _group_trials) at a 1-point margin."""
    return fairness.compression_impact(
        _group_trials(kv, kb, n),
        np.zeros(n, dtype=int),
        {"g": np.array(["all"] * n)},
        baseline="dense",
        margin=0.01,
        **options,
    )


def test_the_fairness_audit_and_the_experiment_give_one_verdict_for_the_same_numbers(monkeypatch):
    n = 400
    kv, kb = [352, 350, 357, 349, 353], [356, 357, 358, 355, 359]
    calls = []
    real = fairness.paired_comparison
    monkeypatch.setattr(fairness, "paired_comparison", lambda *a, **k: calls.append(a) or real(*a, **k))
    out = _impact(kv, kb, n)
    row = out["rows"][0]
    assert len(calls) == 1
    rows = [
        {"method": m, "dataset": "d", "seed": s, "score": k[s] / n}
        for s in range(5)
        for m, k in (("dense", kb), ("pruned", kv))
    ]
    c = compare_scores(rows, "dense", margin=0.01, design="seeds", test="paired_t")["comparisons"][0]
    assert row["verdict"] == c["verdict"] and row["decided_by"] == c["decided_by"]
    assert row["ci"] == pytest.approx(c["ci"]) and row["delta"] == pytest.approx(c["delta"])
    for key in ("p_superiority", "p_noninferiority", "p_inferiority"):
        assert row[key] == pytest.approx(c[key]) and row[f"{key}_holm"] == pytest.approx(c[f"{key}_holm"])


def test_one_degenerate_rule_everywhere(monkeypatch):
    # The same zero-variance differences (one point below on every seed) through every caller.
    n = 200
    kb = [180, 182, 181]
    kv = [k - 2 for k in kb]  # -0.01 on every seed
    reason_word = "do not vary"
    one = paired_comparison([k / n for k in kv], [k / n for k in kb], 0.01)
    assert one.verdict == "inconclusive" and reason_word in one.reason and math.isnan(one.ci[0])
    rows = [
        {"method": m, "dataset": "d", "seed": s, "score": k[s] / n}
        for s in range(3)
        for m, k in (("dense", kb), ("v", kv))
    ]
    c = compare_scores(rows, "dense", margin=0.01, design="seeds")["comparisons"][0]
    assert c["verdict"] == "inconclusive" and reason_word in c["inconclusive_reason"]
    assert c["ci"] == [None, None] and c["p_noninferiority"] is None  # no interval the data cannot give
    assert c["p_adjusted"] is None and c["p_noninferiority_holm"] is None  # and no adjusted p either
    out = _impact(kv, kb, n)
    row = out["rows"][0]
    assert row["verdict"] == "inconclusive" and reason_word in row["inconclusive_reason"]
    assert row["ci"] == [None, None] and row["p_noninferiority"] is None
    trials = []
    for seed in range(3):
        rounds = [
            {"round": 0, "remaining_fraction": 1.0, "test_accuracy": kb[seed] / n, "val_accuracy": 0.8},
            {"round": 1, "remaining_fraction": 0.8, "test_accuracy": kv[seed] / n, "val_accuracy": 0.8},
        ]
        trials.append(
            {
                "variant": "imp",
                "seed": seed,
                "status": "ok",
                "artifacts": {"lottery": {"control": "none", "rounds": rounds}},
            }
        )
    calls = []
    real = lottery.paired_comparison
    monkeypatch.setattr(lottery, "paired_comparison", lambda *a, **k: calls.append(a) or real(*a, **k))
    limit = lottery.ticket_limit(trials, "imp", margin=0.01)
    assert len(calls) == 1
    assert limit["rounds"][0]["verdict"] == "inconclusive"
    assert reason_word in limit["rounds"][0]["inconclusive_reason"]


def test_a_group_that_cannot_resolve_the_margin_is_never_non_inferior():
    # n = 60 rows: one row is 1.7 points, more than the 1-point margin.
    n = 60
    kb, kv = [50, 51, 52, 50, 51], [50, 52, 52, 51, 51]
    c = paired_comparison([k / n for k in kv], [k / n for k in kb], 0.01, n_samples=n)
    assert c.non_inferiority_unresolvable and c.verdict != "non-inferior"
    out = _impact(kv, kb, n, max_ci_width=None)
    assert out["rows"][0]["verdict"] != "non-inferior" and out["rows"][0]["non_inferiority_unresolvable"]


def test_the_search_counts_a_degenerate_candidate_in_its_holm_family():
    """Changed number (issue 10): a screened, faster candidate whose comparison is degenerate used to be left
    out of the search's Holm family; under the one rule it counts with p = 1, as in the experiment's own
    table, so the other candidate's adjusted p doubles here and it is no longer accepted on 0.02 alone."""

    def trial(variant, seed, latency):
        return {
            "dataset": "d",
            "variant": variant,
            "seed": seed,
            "status": "ok",
            "treatments": [],
            "metrics": {"val_accuracy": 0.9},
            "bench": [
                {
                    "backend": "eager",
                    "status": "ok",
                    "scenario": "offline",
                    "batch_size": 64,
                    "latency_ms": {"p50": latency},
                }
            ],
        }

    trials = [
        trial(v, s, lat)
        for s in range(3)
        for v, lat in (("dense", 1.0), ("search-a", 0.2), ("search-b", 0.3))
    ]
    comparisons = [
        {
            "dataset": "d",
            "variant": "search-a",
            "delta": 0.0,
            "ci": [-0.005, 0.005],
            "p_noninferiority": 0.02,
            "inconclusive_reason": None,
        },
        {
            "dataset": "d",
            "variant": "search-b",
            "delta": 0.0,
            "ci": [None, None],
            "p_noninferiority": None,
            "inconclusive_reason": "the paired differences do not vary",
        },
    ]
    summary = [
        {"dataset": "d", "variant": v, "accuracy": {"mean": 0.9}} for v in ("dense", "search-a", "search-b")
    ]
    out = search_decision(
        {"trials": trials, "comparisons": comparisons, "summary": summary},
        baseline="dense",
        margin=0.01,
        alpha=0.05,
        batch_size=64,
        reference_backend="eager",
    )["d"]
    rows = {r["variant"]: r for r in out["candidates"]}
    assert rows["search-a"]["p_noninferiority_holm"] == pytest.approx(0.04)
    assert rows["search-b"]["p_noninferiority_holm"] is None and not rows["search-b"]["non_inferior"]
    assert out["accepted"] is None


def test_one_wilson_interval():
    for k, n in [(0, 7), (7, 7), (3, 46), (12.6, 40)]:
        assert wilson_ci(k, n)[1] == pytest.approx(proportion_confint(k, n, alpha=0.05, method="wilson"))
    lo, hi = wilson_ci(0, 3)[1]
    assert 0 <= lo <= hi <= 1


def test_one_mean_and_interval_over_seeds():
    from slimlab.analysis.curves import geometric_summary
    from slimlab.analysis.summary import ratio_ci
    from slimlab.stats.intervals import geometric_mean_ci, mean_with_ci

    x = [0.91, 0.92, 0.905, 0.89]
    lo, hi = stats.ttest_1samp(x, 0).confidence_interval(0.9)
    assert mean_with_ci(x, 0.9) == {"mean": pytest.approx(np.mean(x)), "ci": pytest.approx([lo, hi])}
    ratios = [2.0, 2.2, 1.9, None, -1.0]  # missing and impossible ratios are left out
    logs = np.log([2.0, 2.2, 1.9])
    lo, hi = stats.ttest_1samp(logs, 0).confidence_interval(0.95)
    mean, ci = geometric_mean_ci(ratios)
    assert mean == pytest.approx(math.exp(logs.mean())) and ci == pytest.approx([math.exp(lo), math.exp(hi)])
    # The summary's speedups and the studies' curves use the same helper.
    assert ratio_ci(ratios, 0.05) == (mean, ci)
    assert geometric_summary(ratios) == {"mean": mean, "ci": ci, "n": 3}
    # Two wildly different timings: the upper end does not fit a float and is unknown, not a crash.
    assert geometric_mean_ci([1e-300, 1e300])[1][1] is None
    assert geometric_mean_ci([]) == (None, [None, None])


def test_an_accuracy_difference_interval_stays_inside_minus_one_to_one():
    # Found on the fairness example (issue 10's check of issue 11): a group whose pruned accuracy swings
    # between 0 and 1 over 4 seeds had a t interval of its change reaching below -1 ([-1.017, 0.531]).
    n = 40
    kb, kv = [40, 40, 40, 40], [0, 40, 0, 40]
    out = _impact(kv, kb, n, max_ci_width=None)
    lo, hi = out["rows"][0]["ci"]
    assert lo == -1.0 and -1 <= hi <= 1
    raw = paired_comparison([k / n for k in kv], [k / n for k in kb], 0.01)
    assert raw.ci[0] < -1  # the unbounded t interval, for comparison
    rows = [
        {"method": m, "dataset": "d", "seed": s, "score": k[s] / n}
        for s in range(4)
        for m, k in (("dense", kb), ("v", kv))
    ]
    c = compare_scores(rows, "dense", margin=0.01, design="seeds", bounds=(-1, 1))["comparisons"][0]
    assert c["ci"][0] == -1.0 and c["verdict"] == raw.verdict
    lower = compare_scores(rows, "dense", margin=0.01, design="seeds", higher_is_better=False, bounds=(-1, 1))
    # Lower is better: the difference is still reported as variant - baseline, and stays in [-1, 1].
    lo, hi = lower["comparisons"][0]["ci"]
    assert lo == -1.0 and hi == pytest.approx(raw.ci[1])


def test_the_metric_path_decides_with_the_one_holm_rule():
    """A pretrained model scored per test sample (issue 12's metric path) gets its verdicts from the same
    Holm-adjusted one-sided p-values as every other comparison (stats.verdict.holm_verdicts), not from
    each variant's unadjusted interval: three variants each just non-inferior on their own are not all
    non-inferior after Holm over the three."""
    from slimlab.analysis.metric import metric_comparisons

    rng = np.random.default_rng(3)
    n, margin = 400, 0.01
    base = rng.uniform(0.8, 1.0, n)
    config = {"model": {"pretrained": True}, "evaluate": {"metric": "cosine", "baseline": "dense",
              "margin": margin, "alpha": 0.05}}  # fmt: skip
    trials = [{"dataset": "d", "variant": "dense", "seed": 0, "status": "ok",
               "metrics": {"cosine": float(base.mean())}, "scores": base.tolist()}]  # fmt: skip
    noise = rng.normal(0, 0.09, n)
    scores = base + noise - noise.mean()  # no change on average: NI p about 0.013 on its own
    for name in ("a", "b", "c"):  # the same differences: each p alike, Holm multiplies them by 3
        trials.append({"dataset": "d", "variant": name, "seed": 0, "status": "ok",
                       "metrics": {"cosine": float(scores.mean())}, "scores": scores.tolist()})  # fmt: skip
    out = metric_comparisons(trials, config)
    assert {c["interval_unit"] for c in out} == {"test samples"}
    for c in out:
        assert 0 < c["p_noninferiority"] < 0.025 < c["p_noninferiority_holm"], c  # alone it would pass
        assert c["verdict"] == "inconclusive" and c["decided_by"].startswith("none below alpha/2")
        assert c["ci"][0] > -margin  # the unadjusted interval alone said non-inferior
