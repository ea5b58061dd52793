"""Runs an experiment: for each (dataset, seed) the dense parent is trained once, then every variant is
treated from it, evaluated and benchmarked. A trial that fails is recorded with its error, and the others
go on. Each finished trial is committed to the run's store at once, so a crash loses nothing already
computed, and running the same command again continues where it stopped: finished trials are not rerun.
"""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from slimlab.bench import environment, from_module, gemm_peak, run_benchmark
from slimlab.config import ExperimentConfig
from slimlab.data import Dataset, load_dataset
from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.evaluate.groups import trial_group_metrics
from slimlab.evaluate.pitfalls import TestSetLog
from slimlab.experiment.executors import Executor, InProcessExecutor
from slimlab.experiment.grid import TrialSpec, expand
from slimlab.experiment.progress import RunProgress
from slimlab.experiment.store import Store
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import Trainer, TrainResult, seed_everything
from slimlab.train.trainer import resolve_device
from slimlab.treatments import TreatmentContext, apply


def failed_record(spec: TrialSpec, error: BaseException) -> dict:
    return {
        **_identity(spec),
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
        "metrics": {},
        "bench": [],
    }


def _identity(spec: TrialSpec) -> dict:
    return {
        "id": spec.id,
        "variant": spec.variant.name,
        "seed": spec.seed,
        "dataset": spec.dataset.name,
        "treatments": [t.to_dict() for t in spec.variant.treatments],
    }


def save_model(model: nn.Module, example: torch.Tensor, path: Path) -> str | None:
    """Write the treated model as ONNX (atomically); return why not, or None when saved. A model that
    already runs in ONNX Runtime (static int8) is written as it is; one that ONNX cannot express
    (torch.ao's dynamic int8 modules) is not saved, and the trial record says why."""
    from slimlab.bench.backends import export_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    try:
        if isinstance(getattr(model, "onnx_model", None), torch.Tensor):
            tmp.write_bytes(model.onnx_model.numpy().tobytes())
        else:
            export_onnx(model, example, tmp)
    except Exception as e:  # the export is a convenience: its failure must not fail the trial
        tmp.unlink(missing_ok=True)
        return f"not exportable to ONNX: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    tmp.replace(path)
    return None


def evaluate_trial(
    spec: TrialSpec,
    model: nn.Module,
    data: Dataset,
    config: ExperimentConfig,
    extra: dict,
    run_dir: Path | None = None,
) -> dict:
    """Score a treated model on the test split (its one, final use, logged) and measure what it costs."""
    test_log = TestSetLog()
    test = test_log.open(
        data.test, "final_evaluation", f"{spec.dataset.name}/{spec.variant.name}/seed {spec.seed}"
    )
    logits = predict_logits(model, test.x)
    predictions = logits.argmax(1)
    params, nonzero = count_parameters(model)
    size, size_compressed = serialized_size(model)
    example = torch.as_tensor(test.x[:1])
    metrics = {
        "accuracy": float((predictions == test.y).mean()),
        "val_accuracy": float((predict_logits(model, data.val.x).argmax(1) == data.val.y).mean()),
        "n_test": len(test),
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1 - nonzero / params if params else 0.0,
        "size_bytes": size,
        "size_compressed_bytes": size_compressed,
        "flops": count_flops(model, example),
        **extra,
    }
    record = {
        **_identity(spec),
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "bench": [],
        "predictions": predictions.astype(int).tolist(),
        "test_openings": test_log.openings,
    }
    if config.bench.save_models and run_dir is not None:
        relative = f"models/{spec.id}.onnx"
        reason = save_model(model, torch.as_tensor(data.val.x[:2]), run_dir / relative)
        record["model_file"] = None if reason else relative
        if reason:
            record["model_file_reason"] = reason
    if test.groups:
        # Per-group calibration (ECE) from the softmax of the logits; the probabilities are not stored.
        probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
        record["groups"] = trial_group_metrics(
            test.y, predictions, test.groups, num_classes=data.num_classes, probs=probs
        )
    if config.bench.enabled:
        # Each backend is also checked on the validation split, so an accuracy lost in export shows.
        record["bench"] = run_benchmark(
            from_module(model, data.input_shape, spec.variant.name),
            config.bench,
            validation=(data.val.x, data.val.y),
            peak=gemm_peak(),
        )
    return record


def _train_summary(result: TrainResult) -> dict:
    summary = asdict(result)
    summary["seconds"] = round(result.seconds, 3)
    return summary


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    progress: RunProgress | None = None,
    retry_failed: bool = False,
    executor: Executor | None = None,
) -> list[dict]:
    """Run every trial of the grid that the store in `out_dir` does not hold yet (and, with
    `retry_failed`, those that failed), and return the records of the whole grid, in grid order.

    The `executor` (default: in this process) runs the work; whatever runs it, this process alone writes
    the store, one transaction per trial, as each trial's record arrives."""
    progress = progress or RunProgress()
    executor = executor or InProcessExecutor()
    resolve_device(config.train.device)  # a device this machine lacks is a user error, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.bench.threads:
        torch.set_num_threads(config.bench.threads)
    specs = expand(config)
    env = environment()
    if config.bench.enabled:
        peak = gemm_peak()  # measured once per machine and cached; the trials read the cache
        env["gemm_peak_gflops"] = peak.get("fp32_gflops")
        env["gemm_peak"] = peak
    with Store.in_dir(out) as store:
        store.set_meta("config", config.to_dict())
        store.set_meta("environment", env)
        done = store.statuses()
        todo = [s for s in specs if s.id not in done or (retry_failed and done[s.id] == "failed")]

        def keep(record: dict) -> None:
            record["environment"] = env
            store.put_trial(record)
            progress.trial_done(record["status"])

        groups: dict[tuple[str, int], list[TrialSpec]] = {}
        for spec in todo:
            groups.setdefault((spec.dataset.model_dump_json(), spec.seed), []).append(spec)
        progress.start(len(todo))
        try:
            executor.run(config, list(groups.values()), progress, keep, out)
        finally:
            progress.close()
        return store.trials([s.id for s in specs])


def run_group(
    group: list[TrialSpec],
    config: ExperimentConfig,
    trainer: Trainer,
    progress: RunProgress,
    keep: Callable[[dict], None],
    run_dir: Path | None = None,
) -> None:
    """The trials of one (dataset, seed): train the dense parent once, then treat each variant from it."""
    first = group[0]
    progress.stage(f"{first.dataset.name} seed {first.seed}: training dense")
    try:
        data = load_dataset(first.dataset, first.seed)
        seed_everything(first.seed)
        dense = build_model(config.model.name, config.model.params, data.input_shape, data.num_classes)
        initial_state = copy.deepcopy(dense.state_dict())
        trained = trainer.fit(dense, data, first.seed)
    except Exception as error:  # the parent failed, so every variant of this seed fails with it
        for spec in group:
            keep(failed_record(spec, error))
        return
    for spec in group:
        progress.stage(f"{spec.dataset.name} seed {spec.seed}: {spec.variant.name}")
        context = TreatmentContext(
            seed=first.seed, trainer=trainer, data=data, initial_state=initial_state, teacher=dense
        )
        try:
            start = time.perf_counter()
            model = apply(dense, spec.variant.treatments, context)
            treat_seconds = time.perf_counter() - start
            extra = {"train_seconds": round(trained.seconds, 3), "treat_seconds": round(treat_seconds, 3)}
            record = evaluate_trial(spec, model, data, config, extra, run_dir)
            record["train"] = _train_summary(trained)
            record["artifacts"] = context.artifacts
            keep(record)
        except Exception as error:
            keep(failed_record(spec, error))


def load_run(out_dir: str | Path) -> tuple[dict, dict, list[dict]]:
    """(resolved config, environment, trial records of that config's grid) from a run directory's store."""
    from slimlab.config import parse_experiment

    with Store.open_existing(out_dir) as store:
        config = store.get_meta("config")
        env = store.get_meta("environment")
        if config is None:
            return {}, env or {}, []
        specs = expand(parse_experiment(config, source=str(store.path)))
        return config, env, store.trials([s.id for s in specs])
