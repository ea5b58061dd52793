"""Optional MLflow logging (`[tracking] mlflow = true`, needs `pip install 'slimlab[tracking]'`).

One MLflow run per trial, tagged with the trial's id, so that resuming or rebuilding never logs a trial
twice; and one summary run per invocation with results.json and report.html as artifacts. slimlab's own
store stays the source of truth: MLflow is a view of it.

By default the runs go to a local file store in the run directory. MLflow has put that backend in
maintenance mode (it needs MLFLOW_ALLOW_FILE_STORE=true, which we set for this default only); point `uri`
at a tracking server or a SQL store (full `mlflow`) for the newer backends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from slimlab.errors import SlimlabError

TRIAL_TAG = "slimlab.trial_id"


def _numbers(trial: dict) -> dict[str, float]:
    metrics = {
        k: float(v)
        for k, v in trial.get("metrics", {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for bench in trial.get("bench", []):
        if "latency_ms" in bench and bench["latency_ms"].get("p50") is not None:
            metrics[f"{bench['backend']}_p50_ms_batch{bench['batch_size']}"] = float(
                bench["latency_ms"]["p50"]
            )
    return metrics


def log_to_mlflow(tracking: dict, name: str, trials: list[dict], out_dir: Path, artifacts: list[Path]) -> int:
    """Log the trials not logged before; return how many were logged."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise SlimlabError(
            "`tracking.mlflow` is true but MLflow is not installed: pip install 'slimlab[tracking]'"
        ) from None
    uri = tracking.get("uri")
    if not uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (Path(out_dir).resolve() / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment(tracking.get("experiment") or name)
    client = MlflowClient()
    logged = {
        run.data.tags.get(TRIAL_TAG)
        for run in client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` != ''", max_results=50_000
        )
    }
    count = 0
    for trial in trials:
        if trial["id"] in logged:
            continue
        run_name = f"{trial['variant']}/{trial['dataset']}/seed{trial['seed']}"
        with mlflow.start_run(run_name=run_name, tags={TRIAL_TAG: trial["id"], "status": trial["status"]}):
            mlflow.log_params(
                {
                    "variant": trial["variant"],
                    "dataset": trial["dataset"],
                    "seed": trial["seed"],
                    "treatments": json.dumps(trial.get("treatments", []))[:6000],
                }
            )
            mlflow.log_metrics(_numbers(trial))
        count += 1
    with mlflow.start_run(run_name=f"{name} summary", tags={"slimlab.summary": "true"}):
        for path in artifacts:
            mlflow.log_artifact(str(path))
    return count
