"""One group of trials, wherever it runs (this process, a worker, a Ray task): the dense parent of a
(dataset, seed) is trained once, then every variant is treated from it, evaluated and benchmarked, and
each trial's `TrialRecord` is handed to `keep`. A trial that fails is recorded with its error, and the
others go on. Nothing here writes the store: the driver (`runner.py`) does.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from slimlab.bench import from_module, gemm_peak, run_benchmark
from slimlab.bench.stability import machine_load
from slimlab.config import ExperimentConfig
from slimlab.data import Dataset, load_dataset
from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.evaluate.groups import trial_group_metrics
from slimlab.evaluate.pitfalls import TestSetLog
from slimlab.experiment.grid import TrialSpec
from slimlab.experiment.progress import RunProgress
from slimlab.experiment.record import TrialRecord
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import Trainer, TrainResult, seed_everything
from slimlab.treatments import TreatmentContext, apply


def failed_record(spec: TrialSpec, error: BaseException) -> TrialRecord:
    return TrialRecord.failed(spec, error)


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
) -> TrialRecord:
    """Score a treated model on the test split (its one, final use, logged) and measure what it costs."""
    test_log = TestSetLog()
    test = test_log.open(
        data.test, "final_evaluation", f"{spec.dataset.label}/{spec.variant.name}/seed {spec.seed}"
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
    if data.num_classes == 2:
        metrics.update(_binary_metrics(model, logits, test))
    record = TrialRecord.ok(
        spec, metrics, predictions=predictions.astype(int).tolist(), test_openings=test_log.openings
    )
    if config.bench.save_models and run_dir is not None:
        relative = f"models/{spec.id}.onnx"
        reason = save_model(model, torch.as_tensor(data.val.x[:2]), run_dir / relative)
        record.set_model_file(None if reason else relative, reason)
    if test.groups:
        # Per-group calibration (ECE) from the softmax of the logits; the probabilities are not stored.
        probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
        record.groups = trial_group_metrics(
            test.y, predictions, test.groups, num_classes=data.num_classes, probs=probs
        )
    if config.bench.enabled:
        # The load on the machine when it was measured, so that the analysis can flag unstable latencies.
        record.extra["machine_load"] = machine_load()
        # Each backend is also checked on the validation split, so an accuracy lost in export shows.
        record.bench = run_benchmark(
            from_module(model, data.input_shape, spec.variant.name),
            config.bench,
            validation=(data.val.x, data.val.y),
            peak=gemm_peak(recheck_load=False),  # the driver checked it at the start of the run
        )
    return record


def _binary_metrics(model: nn.Module, logits, test) -> dict:
    """AUC, log loss and normalized entropy of a binary task; for a DLRM also the time split between its
    embedding lookups and its MLPs (p50 ms on one batch of 64 test samples, keys `stage_*`)."""
    from slimlab.bench.stages import dlrm_stage_times
    from slimlab.evaluate.binary import binary_metrics, click_probabilities
    from slimlab.models.dlrm import unpack_dlrm

    out: dict = dict(binary_metrics(test.y, click_probabilities(logits)))
    if unpack_dlrm(model) is not None and hasattr(model, "unpack"):
        dense, sparse = model.unpack(torch.as_tensor(test.x[:64]))
        stages = dlrm_stage_times(model, dense, sparse) or {}
        out.update({f"stage_{k}": v for k, v in stages.items() if v is not None})
    return out


def _train_summary(result: TrainResult) -> dict:
    summary = asdict(result)
    summary["seconds"] = round(result.seconds, 3)
    return summary


def check_recipes(config: ExperimentConfig) -> None:
    """Before any work: every training recipe's device exists, and a user's checkpoint file exists and
    fits the model (each layer's name and shape), so a mismatch is one clear line, not failed trials."""
    from slimlab.train.trainer import resolve_device
    from slimlab.train.transfer import check_checkpoint

    recipes = {config.train_for(v).model_dump_json(): config.train_for(v) for v in config.variants}
    for recipe in recipes.values():
        resolve_device(recipe.device)
        if recipe.transfer is not None and recipe.transfer.checkpoint is not None:
            data = load_dataset(config.data[0], config.evaluate.seed_list[0])
            model = build_model(config.model.name, config.model.params, data.input_shape, data.num_classes)
            check_checkpoint(model, recipe.transfer)


def run_group(
    group: list[TrialSpec],
    config: ExperimentConfig,
    trainer: Trainer,
    progress: RunProgress,
    keep: Callable[[TrialRecord], None],
    run_dir: Path | None = None,
) -> None:
    """The trials of one (dataset, seed): train the dense parent once, then treat each variant from it.
    A variant with a training recipe of its own (`variants.train`) trains its own parent; variants with
    the same recipe share one."""
    from slimlab.data.cache import cache_dir
    from slimlab.train.transfer import fit_recipe

    first = group[0]
    seed = first.seed
    try:
        data = load_dataset(first.dataset, seed)
    except Exception as error:  # no data, so every variant of this seed fails with it
        for spec in group:
            keep(failed_record(spec, error))
        return
    model_spec = {"name": config.model.name, **config.model.params}
    checkpoints = (run_dir if run_dir is not None else cache_dir()) / "checkpoints"
    parents: dict[str, tuple | BaseException] = {}

    def parent_for(spec: TrialSpec) -> tuple | BaseException:
        recipe = config.train_for(spec.variant)
        key = recipe.model_dump_json()
        if key not in parents:
            own = trainer if spec.variant.train is None else Trainer(recipe, on_epoch=trainer.on_epoch)
            what = "dense" if spec.variant.train is None else spec.variant.name
            progress.stage(f"{first.dataset.label} seed {seed}: training {what}")
            try:
                seed_everything(seed)
                model = build_model(
                    config.model.name, config.model.params, data.input_shape, data.num_classes
                )
                initial_state = copy.deepcopy(model.state_dict())
                trained = fit_recipe(own, model, data, seed, model_spec, checkpoints)
                parents[key] = (model, initial_state, trained, own)
            except Exception as error:  # the parent failed, so every variant trained from it fails
                parents[key] = error
        return parents[key]

    for spec in group:
        parent = parent_for(spec)
        if isinstance(parent, BaseException):
            keep(failed_record(spec, parent))
            continue
        dense, initial_state, trained, own = parent
        progress.stage(f"{spec.dataset.label} seed {spec.seed}: {spec.variant.name}")
        context = TreatmentContext(
            seed=seed, trainer=own, data=data, initial_state=initial_state, teacher=dense
        )
        try:
            start = time.perf_counter()
            model = apply(dense, spec.variant.treatments, context)
            treat_seconds = time.perf_counter() - start
            extra = {
                "train_seconds": round(trained.seconds, 3),
                "treat_seconds": round(treat_seconds, 3),
                "n_train": len(data.train),
                "n_val": len(data.val),
            }
            record = evaluate_trial(spec, model, data, config, extra, run_dir)
            record.train = _train_summary(trained)
            record.artifacts = context.artifacts
            keep(record)
        except Exception as error:
            keep(failed_record(spec, error))
