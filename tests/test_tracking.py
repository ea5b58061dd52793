import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from tests.conftest import TINY_TOML


def test_mlflow_logs_each_trial_once(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "t.toml"
    path.write_text(TINY_TOML + "[tracking]\nmlflow = true\n")
    out = tmp_path / "o"
    for expected_new in (6, 0):  # a second run reuses the store and logs nothing twice
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quick"])
        assert result.exit_code == 0, result.output + result.stderr
        assert f"mlflow:  {expected_new} new trial runs logged" in result.output
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trial_runs = [r for r in runs if "slimlab.trial_id" in r.data.tags]
    assert len(trial_runs) == 6
    assert all("accuracy" in r.data.metrics for r in trial_runs)
    summaries = [r for r in runs if r.data.tags.get("slimlab.summary")]
    assert len(summaries) == 2
    artifacts = {a.path for a in client.list_artifacts(summaries[0].info.run_id)}
    assert artifacts == {"results.json", "report.html"}
