"""Runs an experiment: for each (dataset, seed) the dense parent is trained once, then every variant is
treated from it, evaluated and benchmarked. A trial that fails is recorded with its error, and the others
go on. Each finished trial is appended to trials.jsonl at once, so a crash loses nothing already computed.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from slimlab.bench import bench_eager
from slimlab.config import ExperimentConfig
from slimlab.data import Dataset, load_dataset
from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.experiment.grid import TrialSpec, expand
from slimlab.experiment.progress import RunProgress
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import Trainer, TrainResult, seed_everything
from slimlab.train.trainer import resolve_device
from slimlab.treatments import TreatmentContext, apply

TRIALS_FILE = "trials.jsonl"


def _failed(spec: TrialSpec, error: BaseException) -> dict:
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


def evaluate_trial(
    spec: TrialSpec, model: nn.Module, data: Dataset, config: ExperimentConfig, extra: dict
) -> dict:
    """Score a treated model on the test split (its one, final use) and measure what it costs."""
    logits = predict_logits(model, data.test.x)
    predictions = logits.argmax(1)
    params, nonzero = count_parameters(model)
    size, size_compressed = serialized_size(model)
    example = torch.as_tensor(data.test.x[:1])
    metrics = {
        "accuracy": float((predictions == data.test.y).mean()),
        "val_accuracy": float((predict_logits(model, data.val.x).argmax(1) == data.val.y).mean()),
        "n_test": len(data.test),
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1 - nonzero / params if params else 0.0,
        "size_bytes": size,
        "size_compressed_bytes": size_compressed,
        "flops": count_flops(model, example),
        **extra,
    }
    bench = []
    if config.bench.enabled:
        bench = bench_eager(model, data.input_shape, config.bench)
    return {
        **_identity(spec),
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "bench": bench,
        "predictions": predictions.astype(int).tolist(),
    }


def _train_summary(result: TrainResult) -> dict:
    summary = asdict(result)
    summary["seconds"] = round(result.seconds, 3)
    return summary


def run_experiment(
    config: ExperimentConfig, out_dir: str | Path, progress: RunProgress | None = None
) -> list[dict]:
    """Run every trial and return their records (also appended to OUT/trials.jsonl as they finish)."""
    progress = progress or RunProgress()
    resolve_device(config.train.device)  # a device this machine lacks is a user error, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / TRIALS_FILE).open("w", encoding="utf-8")
    if config.bench.threads:
        torch.set_num_threads(config.bench.threads)
    specs = expand(config)
    records: list[dict] = []

    def keep(record: dict) -> None:
        records.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        progress.trial_done(record["status"])

    trainer = Trainer(config.train, on_epoch=lambda e, n, _: progress.epoch(e, n))
    progress.start(len(specs))
    try:
        groups: dict[tuple[str, int], list[TrialSpec]] = {}
        for spec in specs:
            groups.setdefault((spec.dataset.model_dump_json(), spec.seed), []).append(spec)
        for group in groups.values():
            _run_group(group, config, trainer, progress, keep)
    finally:
        progress.close()
        log.close()
    return records


def _run_group(
    group: list[TrialSpec], config: ExperimentConfig, trainer: Trainer, progress: RunProgress, keep
) -> None:
    """The trials of one (dataset, seed): train the dense parent once, then treat each variant from it."""
    first = group[0]
    progress.stage(f"{first.dataset.name} seed {first.seed}: training dense")
    try:
        data = load_dataset(first.dataset, first.seed)
        seed_everything(first.seed)
        dense = build_model(config.model.name, config.model.params, data.input_shape, data.num_classes)
        trained = trainer.fit(dense, data, first.seed)
    except Exception as error:  # the parent failed, so every variant of this seed fails with it
        for spec in group:
            keep(_failed(spec, error))
        return
    context = TreatmentContext(seed=first.seed, trainer=trainer, data=data)
    for spec in group:
        progress.stage(f"{spec.dataset.name} seed {spec.seed}: {spec.variant.name}")
        try:
            start = time.perf_counter()
            model = apply(dense, spec.variant.treatments, context)
            treat_seconds = time.perf_counter() - start
            extra = {"train_seconds": round(trained.seconds, 3), "treat_seconds": round(treat_seconds, 3)}
            record = evaluate_trial(spec, model, data, config, extra)
            record["train"] = _train_summary(trained)
            keep(record)
        except Exception as error:
            keep(_failed(spec, error))


def load_trials(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / TRIALS_FILE
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["TRIALS_FILE", "evaluate_trial", "load_trials", "run_experiment"]
