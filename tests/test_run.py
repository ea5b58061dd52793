"""End to end through the CLI, on a tiny experiment."""

import json

import pytest
import torch
from typer.testing import CliRunner

from slimlab.analysis.summary import pareto_front
from slimlab.cli import app
from slimlab.config import load_experiment
from slimlab.experiment import expand, trial_id
from slimlab.treatments import TreatmentConfig, base


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.conftest import TINY_TOML

    root = tmp_path_factory.mktemp("run")
    (root / "tiny.toml").write_text(TINY_TOML)
    result = CliRunner().invoke(app, ["run", str(root / "tiny.toml"), "--out", str(root / "out")])
    assert result.exit_code == 0, result.output + result.stderr
    return root / "out", result


def test_results_json_has_the_design_schema(tiny_run):
    out, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"slimlab_version", "experiment", "environment", "trials", "comparisons", "pareto"}
    assert set(results["environment"]) >= {
        "python",
        "torch",
        "platform",
        "cpu",
        "threads",
        "device",
        "gemm_peak_gflops",
    }
    trials = results["trials"]
    assert len(trials) == 3 * 2 and all(t["status"] == "ok" for t in trials)
    for t in trials:
        assert set(t) >= {"variant", "seed", "dataset", "status", "error", "metrics", "bench"}
        assert set(t["metrics"]) >= {"accuracy", "params", "nonzero_params", "size_bytes", "flops"}
        assert {r["batch_size"] for r in t["bench"]} == {1, 32}
        assert set(t["bench"][0]) >= {
            "backend",
            "batch_size",
            "latency_ms",
            "throughput_per_s",
            "peak_memory_bytes",
            "energy_j",
        }
    comparisons = {c["variant"]: c for c in results["comparisons"]}
    assert set(comparisons) == {"prune50", "int8"}
    for c in comparisons.values():
        assert set(c) >= {
            "variant",
            "baseline",
            "metric",
            "delta",
            "ci",
            "test",
            "p_value",
            "p_adjusted",
            "verdict",
            "speedup",
        }
        assert c["baseline"] == "dense" and len(c["seeds"]) == 2
    # the variants share their dense parent: same training record per seed
    by_seed = {}
    for t in trials:
        by_seed.setdefault(t["seed"], set()).add(json.dumps(t["train"]["history"]))
    assert all(len(h) == 1 for h in by_seed.values())


def test_same_config_same_accuracies(tiny_run, tmp_path):
    out, _ = tiny_run
    again = CliRunner().invoke(app, ["run", str(out.parent / "tiny.toml"), "--out", str(tmp_path)])
    assert again.exit_code == 0
    first = json.loads((out / "results.json").read_text())["trials"]
    second = json.loads((tmp_path / "results.json").read_text())["trials"]
    assert [t["metrics"]["accuracy"] for t in first] == [t["metrics"]["accuracy"] for t in second]
    assert [t["id"] for t in first] == [t["id"] for t in second]


def test_report_is_self_contained_and_rebuilds(tiny_run):
    out, _ = tiny_run
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    # Self-contained: no remote image or script; the small sort/hover script is inline.
    assert 'src="http' not in html and "<script src" not in html
    assert "prune50" in html and "Pareto" in html
    before = json.loads((out / "results.json").read_text())
    rebuilt = CliRunner().invoke(app, ["report", str(out)])
    assert rebuilt.exit_code == 0
    assert json.loads((out / "results.json").read_text()) == before


def test_user_strings_are_escaped(tmp_path):
    from tests.conftest import TINY_TOML

    hostile = TINY_TOML.replace(
        'description = "a tiny experiment for tests"', 'description = "<script>alert(1)</script>"'
    )
    # Variant names are refused at the boundary unless plain (tests/test_bad_input.py); the description is
    # free text, and CSV method and group names reach the report too.
    path = tmp_path / "h.toml"
    path.write_text(hostile.replace("seeds = 2", "seeds = [3, 4]"))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--quick"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "o" / "report.html").read_text()
    # The report has its own inline script (sortable tables); the user's one must only appear escaped.
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


class Explode(TreatmentConfig):
    kind = "test_explode"


def _explode(model, config, context):
    if context.seed == 1:
        raise RuntimeError("boom on seed 1")
    return model


def test_a_failing_trial_is_isolated(tmp_path, monkeypatch):
    # registered for this test only, so that the conformance suite sees the real registry
    monkeypatch.setitem(base.TREATMENTS._items, Explode.kind, base.TreatmentSpec(Explode, _explode))
    from tests.conftest import TINY_TOML

    toml = TINY_TOML + '[[variants]]\nname = "explode"\ntreatments = [{kind = "test_explode"}]\n'
    path = tmp_path / "f.toml"
    path.write_text(toml)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "1 of 8 trials failed" in result.stderr.replace("\n", " ")
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    failed = [t for t in results["trials"] if t["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "RuntimeError: boom on seed 1"
    assert "Traceback" in failed[0]["traceback"]
    assert sum(t["status"] == "ok" for t in results["trials"]) == 7


def test_trial_ids_are_pinned(tiny_toml):
    # A trial's identity must not change by accident: update these only with a deliberate reason.
    config = load_experiment(tiny_toml)
    specs = expand(config)
    assert [s.id for s in specs[:3]] == ["2dcc6156bf28c349", "0d9f24e30c0a0597", "045e74f2276cc149"]
    renamed = config.model_copy(update={"name": "other"})
    assert trial_id(renamed, specs[0].dataset, 0, specs[0].variant) == specs[0].id


def test_pareto_front():
    rows = [
        {"variant": "a", "n_ok": 1, "accuracy": {"mean": 0.9}, "latency_p50_ms": 1.0},
        {"variant": "b", "n_ok": 1, "accuracy": {"mean": 0.8}, "latency_p50_ms": 0.5},
        {"variant": "c", "n_ok": 1, "accuracy": {"mean": 0.8}, "latency_p50_ms": 0.9},  # dominated by b
        {"variant": "d", "n_ok": 1, "accuracy": {"mean": 0.95}, "latency_p50_ms": 2.0},
    ]
    assert pareto_front(rows) == ["a", "b", "d"]


def test_demo_quick(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    result = CliRunner().invoke(app, ["demo", "--quick"])
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "runs" / "quickstart" / "results.json").read_text())
    variants = {t["variant"] for t in results["trials"]}
    assert variants == {"dense", "prune50", "prune90", "int8", "prune90-int8"}
    assert (tmp_path / "runs" / "quickstart" / "report.html").exists()
