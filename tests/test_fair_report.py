"""The per-group report section: strict JSON, escaped HTML, and the route from a real run to the section."""

import json

import numpy as np
import pytest

from slimlab.analysis import RunView
from slimlab.analysis.fairness import fairness_section, fairness_sections
from slimlab.config import parse_experiment
from slimlab.data.dataset import Dataset, Split
from slimlab.experiment import run_experiment
from slimlab.report.fairness import render_fairness_html

HOSTILE = '<script>alert("x")</script>'
MATH = "$\\frac{a}{b}$ & co"


def _section(reliability: bool = False) -> dict:
    rng = np.random.default_rng(0)
    n = 400
    groups = {
        "caste": rng.choice(["A", HOSTILE, MATH], size=n, p=[0.5, 0.3, 0.2]).astype(object),
        'lang" onload="x': rng.choice(["hi", "ta", "tiny"], size=n, p=[0.6, 0.37, 0.03]).astype(object),
    }
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    split = Split(x, y, {k: v.astype(str) for k, v in groups.items()})
    meta = {"proxy_warnings": [{"feature": HOSTILE, "group": "caste", "association": 0.5, "reason": HOSTILE}]}
    data = Dataset("toy", split, split.subset(np.arange(20)), split, 2, meta)
    trials = []
    for seed in range(3):
        dense = np.where(rng.random(n) < 0.85, y, 1 - y)
        pruned = np.where(rng.random(n) < 0.1, 1 - dense, dense)
        for variant, pred in ((HOSTILE, dense), ("pruned", pruned)):
            probs = np.where(pred[:, None] == np.arange(2), 0.8, 0.2)  # confident: 0.8 on the predicted class
            trials.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "dataset": "toy",
                    "status": "ok",
                    "predictions": pred.tolist(),
                    "probabilities": probs.tolist(),
                }
            )
    return fairness_section(trials, data, baseline=HOSTILE, margin=0.01, reliability=reliability)


def test_section_is_strict_json_with_the_expected_parts():
    section = _section(reliability=True)
    text = json.dumps(section, allow_nan=False)  # no NaN or numpy types anywhere
    assert json.loads(text) == section
    assert section["variants"] == [HOSTILE, "pruned"]
    tiny = section["per_variant"]["pruned"]['lang" onload="x']["groups"]["tiny"]
    assert tiny["small_n"] and "tiny" not in section["per_variant"]["pruned"]['lang" onload="x']["ranked"]
    verdicts = {r["group"]: r["verdict"] for r in section["compression"]["rows"]}
    assert verdicts["tiny"] == "inconclusive"  # issue 11: a small group is inconclusive, with the reason
    assert section["cie"]["pruned"]["count"] > 0
    assert set(section["reliability"]["groups"]) == {"caste", 'lang" onload="x'}
    # Calibration from the stored probabilities: confidence is 0.8 everywhere, so ECE = |accuracy - 0.8|.
    assert section["calibration"]
    a = section["per_variant"]["pruned"]["caste"]["groups"]["A"]
    assert a["ece"]["value"] == pytest.approx(np.mean([abs(v - 0.8) for v in a["accuracy"]["per_seed"]]))


def test_hostile_group_names_are_escaped_in_the_fragment():
    html = render_fairness_html(_section())
    assert "<script>" not in html and 'onload="x' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&amp; co" in html
    assert html.count("data:image/png;base64,") == 2  # one figure per attribute, drawn despite the $...$
    assert "ECE</th>" in html


def test_every_inconclusive_group_says_why_and_every_rate_interval_is_a_rate():
    # Issue 11 (checked for issue 10 on the fairness example): a tiny group is inconclusive with its reason,
    # the report shows the reasons, and every per-group interval of a rate lies in [0, 1].
    section = _section()
    rows = section["compression"]["rows"]
    assert all(r["verdict"] != "inconclusive" or r["inconclusive_reason"] or r["decided_by"] for r in rows)
    tiny = [r for r in rows if r["group"] == "tiny"]
    assert tiny and all(r["small_n"] and "small group: n = " in r["inconclusive_reason"] for r in tiny)
    assert any("small group" in why for why in section["summary"]["inconclusive_reasons"])
    html = render_fairness_html(section)
    assert "Why verdicts are inconclusive" in html and "small group: n = " in html
    for audits in section["per_variant"].values():
        for audit in audits.values():
            for metrics in audit["groups"].values():
                for rate in ("accuracy", "error_rate", "tpr", "fpr", "selection_rate"):
                    lo, hi = metrics[rate]["ci"]
                    assert lo is None or 0 <= lo <= metrics[rate]["value"] <= hi <= 1


def test_multiclass_section_with_the_class_as_a_group():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=300)
    split = Split(rng.normal(size=(300, 2)).astype(np.float32), y, {"class": y.astype(str)})
    data = Dataset("three", split, split.subset(np.arange(10)), split, 3, {})
    trials = [
        {
            "variant": v,
            "seed": s,
            "dataset": "three",
            "status": "ok",
            "predictions": np.where(rng.random(300) < acc, y, 0),
        }
        for s in range(2)
        for v, acc in (("dense", 0.9), ("small", 0.7))
    ]
    section = fairness_section(trials, data, baseline="dense", margin=0.01, reliability=False)
    assert not section["binary"]
    per_class = section["per_variant"]["dense"]["class"]["groups"]
    assert (
        "tpr" not in per_class["1"]
    )  # TPR/FPR are for binary tasks; per-class accuracy is the class's recall
    assert (
        section["per_variant"]["dense"]["class"]["disparities"]["demographic_parity_difference"]["mean"]
        is None
    )
    html = render_fairness_html(section, plots=False)
    assert "TPR" not in html and "By class" in html


@pytest.fixture
def adult_toml(tmp_path):
    path = tmp_path / "fair.toml"
    path.write_text(
        """
name = "fair-tiny"
[data]
name = "adult"
num_samples = 800
group_columns = ["sex", "race"]
intersections = []
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 1
batch_size = 100
[[variants]]
name = "dense"
[[variants]]
name = "int8"
treatments = [{kind = "dynamic_int8"}]
[evaluate]
seeds = 2
[bench]
enabled = false
"""
    )
    return path


def test_a_run_on_adult_feeds_the_section(adult_toml, tmp_path):
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    config = parse_experiment(tomllib.loads(adult_toml.read_text()))
    trials = run_experiment(config, tmp_path / "run")
    assert all(t["status"] == "ok" for t in trials)
    sections = fairness_sections(RunView(config, trials, {}))
    section = sections["adult"]
    assert section["test_n"] == len(trials[0]["predictions"]) == 16281
    assert section["groups"] == ["sex", "race"]
    assert {r["variant"] for r in section["compression"]["rows"]} == {"int8"}
    assert "Female" in section["per_variant"]["dense"]["sex"]["groups"]
