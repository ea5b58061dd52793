"""One group of trials, wherever it runs (this process, a worker, a Ray task): the dense parent of a
(dataset, seed) is trained once, then every variant is treated from it, evaluated and benchmarked, and
each trial's `TrialRecord` is handed to `keep`. A trial that fails is recorded with its error, and the
others go on. Nothing here writes the store: the driver (`runner.py`) does.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimlab.bench import from_module, gemm_peak, run_benchmark
from slimlab.bench.stability import machine_load
from slimlab.config import ExperimentConfig
from slimlab.data import Dataset, load_dataset
from slimlab.data.batches import Inputs, take, to_torch
from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.evaluate.groups import trial_group_metrics
from slimlab.evaluate.metrics import fidelity, get_metric, score
from slimlab.evaluate.pitfalls import TestSetLog
from slimlab.experiment.grid import TrialSpec
from slimlab.experiment.progress import RunProgress
from slimlab.experiment.record import TrialRecord
from slimlab.models.factory import build_configured_model
from slimlab.models.inference import predict_logits
from slimlab.train import Trainer, TrainResult, seed_everything
from slimlab.treatments import TreatmentContext, apply

# Modules that a trial imports on first use, behind a function call: a worker imports them before it says
# it is ready (`executors._init_worker`), so that its first group does not pay them while the driver
# waits. torch's optimizers import torch._dynamo (1.5 s here); the validation split imports scikit-learn
# (0.5 s).
FIRST_USE_IMPORTS = ("torch._dynamo", "sklearn.model_selection")


def preload() -> None:
    """Import `FIRST_USE_IMPORTS` now (a module that is not installed is left to the trial)."""
    import importlib

    for name in FIRST_USE_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def failed_record(spec: TrialSpec, error: BaseException) -> TrialRecord:
    return TrialRecord.failed(spec, error)


def save_model(model: nn.Module, example: Inputs, path: Path) -> str | None:
    """Write the treated model as ONNX (atomically); return why not, or None when saved. A model that
    already runs in ONNX Runtime (static int8) is written as it is; one that ONNX cannot express
    (torch.ao's dynamic int8 modules) is not saved, and the trial record says why."""
    from slimlab.bench.backends import export_inputs_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    try:
        if isinstance(getattr(model, "onnx_model", None), torch.Tensor):
            tmp.write_bytes(model.onnx_model.numpy().tobytes())
        else:  # one float input, or several (token ids and a mask), each named in the graph
            tmp.write_bytes(export_inputs_onnx(model, example)[0])
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
    reference: Reference | None = None,
) -> TrialRecord:
    """Score a treated model on the test split (its one, final use, logged) and measure what it costs.
    `reference` holds the dense parent's outputs: fidelity-to-dense metrics and the fidelity check of a
    treated variant (on the validation inputs) are computed against it."""
    test_log = TestSetLog()
    test = test_log.open(
        data.test, "final_evaluation", f"{spec.dataset.label}/{spec.variant.name}/seed {spec.seed}"
    )
    logits = predict_logits(model, test.x)
    val_outputs = predict_logits(model, data.val.x)
    classes = data.num_classes > 0 and np.issubdtype(np.asarray(test.y).dtype, np.integer)
    predictions = logits.argmax(1) if classes else None
    params, nonzero = count_parameters(model)
    size, size_compressed = serialized_size(model)
    example = take(test.x, slice(0, 1))
    metrics: dict = {"n_test": len(test)}
    if classes:
        metrics["accuracy"] = float((predictions == test.y).mean())
        metrics["val_accuracy"] = float((val_outputs.argmax(1) == data.val.y).mean())
    chosen = get_metric(config.evaluate.metric, config.evaluate.source)
    scores = None
    if chosen.name != "accuracy" or classes:
        targets = test.y if chosen.targets == "labels" else (reference.test if reference else logits)
        metrics[chosen.name], scores = score(chosen, logits, targets)
    if chosen.name != "accuracy":
        # The metric on validation too: what the search screens its candidates on (never on test).
        targets = data.val.y if chosen.targets == "labels" else (reference.val if reference else val_outputs)
        metrics[f"val_{chosen.name}"] = score(chosen, val_outputs, targets)[0]
    metrics.update(
        {
            "params": params,
            "nonzero_params": nonzero,
            "sparsity": 1 - nonzero / params if params else 0.0,
            "size_bytes": size,
            "size_compressed_bytes": size_compressed,
            "flops": _flops(model, example),
            **extra,
        }
    )
    if classes and data.num_classes == 2:  # AUC, log loss, normalized entropy (and a DLRM's stage times)
        metrics.update(_binary_metrics(model, logits, test))
    record = TrialRecord.ok(
        spec,
        metrics,
        predictions=predictions.astype(int).tolist() if predictions is not None else None,
        test_openings=test_log.openings,
    )
    if scores is not None:
        record.scores = [round(float(v), 7) for v in scores]  # per test sample, for paired comparisons
    if reference is not None:
        record.fidelity = _fidelity_check(spec, config, val_outputs, reference, classes)
    if config.bench.save_models and run_dir is not None:
        relative = f"models/{spec.id}.onnx"
        reason = save_model(model, to_torch(take(data.val.x, slice(0, 2))), run_dir / relative)
        record.set_model_file(None if reason else relative, reason)
    if test.groups and classes:
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
            from_module(model, data.input_shape, spec.variant.name, examples=data.val.x),
            config.bench,
            validation=(data.val.x, data.val.y) if classes else None,
            peak=gemm_peak(recheck_load=False),  # the driver checked it at the start of the run
        )
    return record


def _fidelity_check(
    spec: TrialSpec, config: ExperimentConfig, val_outputs: np.ndarray, reference: Reference, classes: bool
) -> dict:
    """Fidelity to the dense parent on the validation inputs (real data, never test): a treatment that
    silently corrupts the outputs shows here whatever the metric says."""
    check = fidelity(val_outputs, reference.val)
    threshold = spec.variant.min_cosine if spec.variant.min_cosine is not None else config.evaluate.min_cosine
    reasons = []
    if check["cosine"] is not None and check["cosine"] < threshold:
        reasons.append(f"cosine {check['cosine']:.4f} < {threshold}")
    if classes and check["agreement"] is not None and check["agreement"] < config.evaluate.min_agreement:
        reasons.append(f"top-1 agreement {check['agreement']:.4f} < {config.evaluate.min_agreement}")
    if check["cosine"] is None:
        reasons.append(check.get("note", "outputs not comparable"))
    check.update({"split": "val", "min_cosine": threshold, "diverged": bool(reasons), "reasons": reasons})
    return check


@dataclass(frozen=True)
class Reference:
    """The dense parent's outputs on the validation and test inputs of one (dataset, seed)."""

    val: np.ndarray
    test: np.ndarray


def _flops(model: nn.Module, example) -> int | None:
    if not isinstance(example, np.ndarray) or not np.issubdtype(example.dtype, np.floating):
        return None  # flop_counter traces one float tensor; a model with other inputs is not counted
    try:
        return count_flops(model, torch.as_tensor(example))
    except Exception:  # a module flop_counter cannot trace; FLOPs are informative, the trial goes on
        return None


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
            model = build_configured_model(config.model, data.input_shape, data.num_classes)
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
    model_spec = config.model.to_dict()
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
                model = build_configured_model(config.model, data.input_shape, data.num_classes)
                initial_state = copy.deepcopy(model.state_dict())
                if config.model.is_pretrained and spec.variant.train is None:
                    # One trained model, not retrained per seed: the seeds vary what the treatments depend
                    # on (the calibration sample, the fine-tuning data order), and the validation split.
                    trained = TrainResult(0, 0, float("nan"), 0.0, [])
                else:
                    trained = fit_recipe(own, model, data, seed, model_spec, checkpoints)
                model.eval()
                reference = Reference(predict_logits(model, data.val.x), predict_logits(model, data.test.x))
                parents[key] = (model, initial_state, trained, own, reference)
            except Exception as error:  # the parent failed, so every variant trained from it fails
                parents[key] = error
        return parents[key]

    metric = get_metric(config.evaluate.metric, config.evaluate.source)
    for spec in group:
        parent = parent_for(spec)
        if isinstance(parent, BaseException):
            keep(failed_record(spec, parent))
            continue
        dense, initial_state, trained, own, reference = parent
        progress.stage(f"{spec.dataset.label} seed {spec.seed}: {spec.variant.name}")
        context = TreatmentContext(
            seed=seed, trainer=own, data=data, initial_state=initial_state, teacher=dense, metric=metric
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
            record = evaluate_trial(spec, model, data, config, extra, run_dir, reference)
            if not spec.variant.treatments and spec.variant.train is None:
                record.fidelity = None  # the dense model itself: nothing to compare
            record.train = _train_summary(trained)
            record.train["pretrained"] = config.model.is_pretrained
            record.artifacts = context.artifacts
            keep(record)
        except Exception as error:
            keep(failed_record(spec, error))
