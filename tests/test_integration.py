"""The engines wired into experiments and the CLI: compare, pitfalls, fairness, benchmarks."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.data import DATASETS, Dataset, Split
from slimlab.data.registry import with_validation
from tests.conftest import TINY_TOML


def _scores_csv(path, hostile: str = "int8"):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "dataset", "seed", "score"])
        for d in range(6):
            base = rng.uniform(0.7, 0.95)
            for s in range(5):
                for m, effect in [("dense", 0), ("prune50", -0.002), ("prune90", -0.05), (hostile, 0.0)]:
                    w.writerow([m, f"ds{d}", s, round(base + effect + rng.normal(0, 0.005), 4)])


def test_compare_on_a_csv_of_several_methods_and_datasets(tmp_path):
    _scores_csv(tmp_path / "s.csv", hostile="<b>int8</b>")
    result = CliRunner().invoke(
        app, ["compare", str(tmp_path / "s.csv"), "--baseline", "dense", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "ranking (average rank" in result.output and "Friedman p" in result.output
    out = json.loads((tmp_path / "o" / "results.json").read_text())
    assert set(out) >= {"comparisons", "ranking", "pitfalls"}
    verdicts = {(c["dataset"], c["variant"]): c["verdict"] for c in out["comparisons"]}
    assert all(verdicts[(f"ds{d}", "prune90")] == "inferior" for d in range(6))
    assert all(c["p_adjusted"] >= c["p_value"] for c in out["comparisons"])
    assert out["ranking"]["order"][-1] == "prune90"
    assert (tmp_path / "o" / "cd_diagram.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "o" / "report.html").read_text()
    assert "critical-difference diagram" in html and "<b>int8</b>" not in html and "&lt;b&gt;int8" in html


def test_compare_bad_input_is_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("method,dataset,seed\na,b,0\n")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "score" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "r.json").write_text("{}")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "not a slimlab results.json" in result.stderr


@pytest.fixture
def leaky_dataset(monkeypatch):
    """A dataset whose first 50 test samples are copies of training samples (Lones 3.1)."""

    def load(options, seed):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(500, 40)).astype(np.float32)
        y = (np.arange(500) % 10).astype(np.int64)
        data = with_validation(
            "leaky",
            Split(x, y),
            Split(x[:100], y[:100]),
            options.val_fraction,
            seed,
            10,
            {"standardised_on": "train"},
        )
        test_x = rng.normal(size=(100, 40)).astype(np.float32)
        test_x[:50] = data.train.x[:50]
        return Dataset(data.name, data.train, data.val, Split(test_x, y[:100]), 10, data.meta)

    monkeypatch.setitem(DATASETS._items, "leaky", load)


def test_an_experiment_with_a_leak_is_flagged(tmp_path, leaky_dataset):
    toml = TINY_TOML.replace('name = "mnist1d"\nnum_samples = 600', 'name = "leaky"').replace(
        "channels = 8", "channels = 4"
    )
    (tmp_path / "l.toml").write_text(toml)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "l.toml"), "--out", str(tmp_path / "o"), "--quick"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    leaks = [c for c in results["pitfalls"] if c["check"] == "leakage: exact duplicates train/test"]
    assert leaks and leaks[0]["status"] == "fail" and "50" in leaks[0]["detail"]
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Pitfall checklist" in html and "leakage: exact duplicates train/test" in html


def test_a_clean_experiment_reports_the_checklist_and_test_discipline(tmp_path):
    (tmp_path / "t.toml").write_text(TINY_TOML)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "t.toml"), "--out", str(tmp_path / "o"), "--quick"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    checks = {c["check"]: c for c in results["pitfalls"]}
    assert checks["leakage: exact duplicates train/test"]["status"] == "pass"
    assert checks["test-set discipline"]["status"] == "pass"
    assert "6 openings" in checks["test-set discipline"]["detail"]
    bench = results["trials"][0]["bench"]
    assert {r["scenario"] for r in bench} == {"single-stream", "offline"}
    assert all(r.get("accuracy") is not None for r in bench)  # every backend checked on validation
    assert results["environment"]["gemm_peak_gflops"] > 0


def test_fairness_section_for_a_grouped_dataset(tmp_path):
    toml = TINY_TOML.replace(
        'name = "mnist1d"\nnum_samples = 600', 'name = "mnist1d_groups"\nnum_samples = 600'
    ).replace('name = "cnn1d"\nchannels = 8', 'name = "mlp"\nhidden = [16]')
    (tmp_path / "g.toml").write_text(toml)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o"), "--quick"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "mnist1d_groups" in results["fairness"]
    assert "region" in results["trials"][0]["groups"]
    region = next(iter(results["trials"][0]["groups"]["region"].values()))
    assert 0 <= region["ece"]["value"] <= 1  # per-group calibration from the model's probabilities
    html = (tmp_path / "o" / "report.html").read_text()
    assert "region" in html and html.count("data:image/png;base64,") >= 4


def test_a_saved_trial_is_a_bench_input(tmp_path):
    toml = TINY_TOML.replace("[bench]\n", "[bench]\nsave_models = true\n")
    (tmp_path / "t.toml").write_text(toml)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "t.toml"), "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output + result.stderr
    trials = {(t["variant"], t["seed"]): t for t in json.loads((out / "results.json").read_text())["trials"]}
    assert (out / trials[("prune50", 0)]["model_file"]).is_file()
    assert trials[("int8", 0)]["model_file"] is None  # torch.ao's int8 modules do not export to ONNX
    assert "not exportable" in trials[("int8", 0)]["model_file_reason"]
    bench = CliRunner().invoke(
        app,
        [
            "bench",
            str(out),
            "--trial",
            "prune50/0",
            "--backend",
            "onnxruntime",
            "--scenario",
            "single-stream",
            "--quick",
            "--no-calibrate",
            "--accuracy",
            "--json",
        ],
    )
    assert bench.exit_code == 0, bench.output + bench.stderr
    records = json.loads(bench.stdout)
    assert records[0]["status"] == "ok" and records[0]["accuracy"] is not None
    assert abs(records[0]["accuracy"] - trials[("prune50", 0)]["metrics"]["val_accuracy"]) < 1e-6
    for bad, message in (("nope/0", "matches 0 trials"), ("int8/0", "has no saved model")):
        result = CliRunner().invoke(app, ["bench", str(out), "--trial", bad, "--quick"])
        assert result.exit_code == 2 and message in result.stderr.replace("\n", " ")
