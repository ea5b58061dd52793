"""The experiment file (TOML), as pydantic models. Each layer owns the model of its own section
(TrainConfig, BenchConfig, treatment configs); this module composes them and turns a validation failure
into one line that names the field and what was expected."""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from slimlab.bench.config import BackendName, BenchConfig
from slimlab.data import DATASETS
from slimlab.data.clicks import ClickLogOptions
from slimlab.errors import ConfigError, DataFileError, SlimlabError
from slimlab.identity import Hparams
from slimlab.models import MODELS
from slimlab.train import TrainConfig
from slimlab.treatments import TreatmentConfig, parse_treatment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

QUICK_SEEDS = 2
QUICK_EPOCHS = 3
QUICK_SAMPLES = 1000


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _custom(message: str) -> PydanticCustomError:
    return PydanticCustomError("slimlab", message)


def _base_dir(info: ValidationInfo) -> Path:
    """Where relative paths and import paths of the experiment file are looked up: the file's folder."""
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


class DataConfig(Hparams):
    # Fields at their defaults are left out of the serialized form and so of trial ids (slimlab.identity).
    # A user's own data (data/factory.py): a factory by import path, with its keyword arguments
    # ([data.params]); `source` is filled in when loaded (the factory's file and hash, for the trial
    # identity). Declared before `name`, whose check reads them.
    factory: str | None = Field(default=None, description="'module:function' returning the data")
    source: dict[str, Any] | None = Field(
        default=None, description="filled in when loaded: the factory's file and hash (trial identity)"
    )
    name: str = "mnist1d"
    num_samples: int | None = Field(default=None, gt=0, description="default: the dataset's own size")
    test_fraction: float | None = Field(default=None, gt=0, lt=1, description="default: the dataset's split")
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5, description="held out of train for validation")
    split_seed: int = Field(default=0, ge=0, description="fixes the test split; the trial seed fixes val")
    # Tabular data with groups (name = "csv" for a user's file; "adult" has defaults for all of these).
    # Relative paths (path, test_path, group_map) are resolved against the working directory.
    path: str | None = Field(default=None, description="a CSV/TSV/parquet file (name = 'csv')")
    test_path: str | None = Field(
        default=None, description="a separate test file; else test_fraction of path"
    )
    target: str | None = Field(default=None, description="the label column")
    group_columns: list[str] | None = Field(default=None, description="columns whose values are groups")
    group_map: str | dict[str, dict[str, str]] | None = Field(
        default=None, description="raw value -> group, per column: a TOML/JSON/CSV file or an inline table"
    )
    intersections: list[str] | None = Field(default=None, description="e.g. ['sex×race'] (or 'sex*race')")
    categorical: list[str] | None = Field(
        default=None, description="text columns to one-hot (csv: none by default)"
    )
    drop: list[str] = Field(default_factory=list, description="columns that are neither features nor groups")
    feature_groups: bool = Field(default=False, description="also use the group columns as model inputs")
    # A transform maps a batch of inputs to the model's inputs. `path` also names a .npz file or an image
    # folder.
    params: dict[str, Any] = Field(default_factory=dict, description="the factory's keyword arguments")
    transform: str | None = Field(default=None, description="'module:function' mapping a batch to inputs")
    image_size: list[int] | None = Field(default=None, description="images: resize to [height, width]")
    # Click logs (name = "clicks", synthetic; "click_log", a user's file with dense and sparse columns).
    clicks: ClickLogOptions | None = Field(
        default=None, description="tables, bag size, columns of a click log"
    )
    train_size: int | None = Field(
        default=None,
        gt=0,
        description="keep only this many labelled training examples (validation comes out of them), "
        "chosen by the trial seed; a learning curve sweeps it",
    )

    @property
    def label(self) -> str:
        """The dataset's name in records and reports: `mnist1d[n=50]` with a train_size."""
        from slimlab.data.limited import limited_label

        return limited_label(self.name, self.train_size)

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str, info: ValidationInfo) -> str:
        source = info.data.get("source") or {}
        if info.data.get("factory") is None and "live" not in source and name not in DATASETS:
            raise _custom(f"unknown dataset {name!r}; known: {', '.join(DATASETS.names())}")
        return name

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> DataConfig:
        if self.factory is not None and "name" not in self.model_fields_set:
            object.__setattr__(self, "name", self.factory.rsplit(":", 1)[-1].rsplit(".", 1)[-1])
        if self.name == "csv" and (not self.path or not self.target):
            raise _custom("dataset 'csv' needs `data.path` (the file) and `data.target` (the label column)")
        if self.name in ("npz", "images") and not self.path:
            raise _custom(f"dataset {self.name!r} needs `data.path` (the file or folder)")
        if self.params and self.factory is None:
            raise _custom("`data.params` are the keyword arguments of `data.factory`, which is not set")
        if self.source is None and (self.factory or self.transform or self.name in ("npz", "images")):
            from slimlab.data.factory import resolve_data_source

            try:
                source = resolve_data_source(self, _base_dir(info))
            except SlimlabError as e:
                raise _custom(str(e)) from None
            object.__setattr__(self, "source", source)
            if source.get("path"):
                object.__setattr__(self, "path", source["path"])
        if self.name == "click_log" and (not self.path or not self.target):
            raise _custom(
                "dataset 'click_log' needs `data.path` (the file) and `data.target` (the click column)"
            )
        return self


class ModelConfig(BaseModel):
    """`name` plus the model's own hyperparameters, which are checked against that model's parameters; or a
    model from anywhere (models/factory.py): `factory` by import path with `[model.params]` as its keyword
    arguments, `hf` (a Hugging Face model directory, or `package:NAME/SUBDIR`), `onnx` (a file);
    `checkpoint` loads trained weights into `name` or `factory`. `pretrained = true` (the default when
    weights are given) skips training: the seeds then vary what the treatments depend on."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str = "cnn1d"
    factory: str | None = None
    checkpoint: str | None = None
    hf: str | None = None
    hf_output: Literal["mean_pooling", "cls", "logits"] = "mean_pooling"
    onnx: str | None = None
    pretrained: bool | None = None
    source: dict[str, Any] | None = None  # filled in when loaded: resolved files and their hashes

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> ModelConfig:
        origins = [k for k in ("factory", "hf", "onnx") if getattr(self, k) is not None]
        if len(origins) > 1:
            raise _custom(f"give one of `model.factory`, `model.hf`, `model.onnx`; got {', '.join(origins)}")
        if origins:
            extra = [k for k in self.params if k != "params"]
            if extra:
                raise _custom(
                    f"`model.{extra[0]}`: a {origins[0]} model takes its keyword arguments in [model.params]"
                )
            if "name" not in self.model_fields_set:
                spec = getattr(self, origins[0])
                object.__setattr__(self, "name", re.split(r"[:/\\]", spec.rstrip("/"))[-1] or origins[0])
            if self.checkpoint is not None and origins[0] != "factory":
                raise _custom("`model.checkpoint` loads weights into `model.name` or `model.factory`")
        elif not (self.source and "live" in self.source):  # a module handed to slimlab.compress
            self._check_reference()
        if self.source is None and (origins or self.checkpoint):
            from slimlab.models.factory import resolve_model_source

            try:
                object.__setattr__(self, "source", resolve_model_source(self, _base_dir(info)))
            except SlimlabError as e:
                raise _custom(str(e)) from None
        return self

    def _check_reference(self) -> None:
        if self.name not in MODELS:
            raise _custom(f"unknown model {self.name!r}; known: {', '.join(MODELS.names())}")
        try:
            MODELS.get(self.name).params(**self.params)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                known = ", ".join(MODELS.get(self.name).params.model_fields)
                raise _custom(f"`{key}` is not a parameter of model {self.name!r}; known: {known}") from None
            raise _custom(f"`{key}`: {err['msg']}; got {err.get('input')!r}") from None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def origin(self) -> str | None:
        """The kind of a model from anywhere ("factory", "hf" or "onnx"); None for a registered model."""
        return next((k for k in ("factory", "hf", "onnx") if getattr(self, k) is not None), None)

    @property
    def factory_params(self) -> dict[str, Any]:
        """The keyword arguments of `factory` ([model.params])."""
        return dict(self.params.get("params") or {})

    @property
    def is_pretrained(self) -> bool:
        """Skip training: explicit, or implied by trained weights (a checkpoint, HF model or ONNX file)."""
        if self.pretrained is not None:
            return self.pretrained
        return bool(self.checkpoint or self.hf or self.onnx)

    def to_dict(self) -> dict[str, Any]:
        """The resolved model section. Fields added for models from anywhere are left out at their defaults,
        so that every trial id from before they existed stays the same (runs resume)."""
        out: dict[str, Any] = {"name": self.name, **self.params}
        for key in ("factory", "checkpoint", "hf", "onnx", "pretrained", "source"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.hf is not None:
            out["hf_output"] = self.hf_output
        return out


# Variant names appear in tables, file listings and logs; they are never used as paths, but a name that
# could be one ("../x", "a/b") or that holds markup or control characters is refused at the boundary.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$"
NAME_RULE = "letters, digits and _ . + = - (starting with a letter or digit), at most 100 characters"


class VariantConfig(Section):
    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if len(name) > 100 or not re.fullmatch(NAME_PATTERN, name):
            raise _custom(f"must be {NAME_RULE}; got {name!r}")
        return name

    treatments: list[TreatmentConfig] = Field(default_factory=list)
    min_cosine: float | None = Field(
        default=None, ge=-1, le=1, description="fidelity threshold; default: evaluate.min_cosine"
    )
    train: dict[str, Any] | None = Field(
        default=None,
        description="a training recipe of its own (keys of [train], e.g. augment or transfer): the "
        "variant trains its own model instead of treating the shared dense parent",
    )

    @field_validator("treatments", mode="before")
    @classmethod
    def _parse(cls, specs: Any) -> list[TreatmentConfig]:
        if not isinstance(specs, list):
            raise _custom('must be a list of treatment tables, e.g. [{kind = "dynamic_int8"}]')
        try:
            return [parse_treatment(s, where=f"treatments[{i}]") for i, s in enumerate(specs)]
        except SlimlabError as e:
            raise _custom(str(e)) from None


class EvaluateConfig(Section):
    seeds: int | list[int] = Field(default=5, description="a count (0..n-1) or an explicit list")
    baseline: str = Field(default="dense", description="the variant every other is compared with")
    margin: float = Field(
        default=0.01,
        ge=0,
        description="non-inferiority margin, in the metric's units (accuracy: 0.01 = 1 pt)",
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    metric: str = Field(
        default="accuracy",
        description="accuracy | f1_macro | auroc | mse | mae | agreement | cosine, or 'module:function'",
    )
    min_cosine: float = Field(
        default=0.99,
        ge=-1,
        le=1,
        description="a treated variant whose outputs' cosine to dense is lower is flagged",
    )
    min_agreement: float = Field(
        default=0.95, ge=0, le=1, description="... or whose top-1 agreement with dense is lower (classifiers)"
    )
    source: dict[str, Any] | None = Field(
        default=None, description="a user metric's file and hash, when loaded"
    )

    @model_validator(mode="after")
    def _known_metric(self, info: ValidationInfo) -> EvaluateConfig:
        from slimlab.evaluate.metrics import METRICS, locate_metric

        if self.metric not in METRICS and self.source is None:
            try:
                object.__setattr__(self, "source", locate_metric(self.metric, _base_dir(info)))
            except SlimlabError as e:
                raise _custom(str(e)) from None
        if self.metric in METRICS:  # a margin as wide as the metric's whole range decides nothing
            metric = METRICS.get(self.metric)
            width = metric.upper - metric.lower
            if self.margin >= width:
                raise _custom(
                    f"`evaluate.margin` is {self.margin}, but {self.metric} spans only {width:g}; "
                    f"give a margin in its units (accuracy: 0.01 = 1 point)"
                )
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise _custom(f"must be at least 1; got {seeds}")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise _custom(f"must be a non-empty list of distinct seeds; got {seeds}")
        return seeds

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class TrackingConfig(Section):
    mlflow: bool = Field(default=False, description="log params, metrics and the report to MLflow")
    uri: str | None = Field(
        default=None, description="MLflow tracking URI; default: a local file store in the run directory"
    )
    experiment: str | None = Field(default=None, description="MLflow experiment; default: the name")


class SearchConfig(Section):
    """The accuracy-aware search: every chain of structured sparsity × precision becomes a variant; the
    report accepts the cheapest one that is non-inferior to the baseline with statistical confidence."""

    structured_sparsity: list[float] = Field(
        default=[0.0, 0.25, 0.5], min_length=1, description="share of hidden units/channels removed"
    )
    precision: list[Literal["fp32", "dynamic_int8", "ort_dynamic_int8", "static_int8", "bf16"]] = Field(
        default=["fp32", "dynamic_int8", "static_int8"],
        min_length=1,
        description="dynamic_int8: torch.ao's eager kernels; ort_dynamic_int8: ONNX Runtime's dynamic "
        "quantizer on the exported graph (deploys on an ONNX Runtime session)",
    )
    finetune_epochs: int = Field(default=5, ge=0, description="after structured pruning")
    finetune_lr: float | None = Field(default=None, gt=0)
    finetune_distill: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="after structured pruning: weight of distillation from the dense parent in the "
        "fine-tuning loss (treatment 'finetune'; 0: plain fine-tuning on the labels)",
    )
    structured_scope: Literal["channels", "heads"] = Field(
        default="channels", description="what structured pruning removes: channels/units, or attention heads"
    )
    batch_size: int = Field(default=64, gt=0, description="the batch size whose latency ranks candidates")
    reference_backend: str = Field(
        default="onnxruntime-int8",
        description="what a user would otherwise pick, measured on the baseline in the same run",
    )
    require_no_inferior_group: bool = Field(
        default=False,
        description="on a dataset with groups, accept no candidate that makes any group inferior (Holm)",
    )
    # Axes of the static-quantization candidates (issue: beat the best one-step alternative).
    per_channel: list[bool] = Field(
        default=[True], min_length=1, description="static int8: per-channel (true) and/or per-tensor weights"
    )
    calibration_method: list[Literal["minmax", "entropy", "percentile"]] = Field(
        default=["minmax"], min_length=1, description="static int8: ONNX Runtime calibration methods"
    )
    mixed_precision_keep: list[int] = Field(
        default=[],
        description="mixed precision: for each k, a candidate keeping the k most sensitive nodes fp32",
    )
    mixed_precision_scheme: list[Literal["static", "dynamic"]] = Field(
        default=["static"],
        min_length=1,
        description="mixed precision: the other nodes in static QDQ int8 and/or ONNX Runtime's dynamic "
        "int8 (candidates mixed<k> and mixed<k>-dyn)",
    )
    quantize_op_types: list[str] | None = Field(
        default=None,
        min_length=1,
        description="static int8 and mixed precision: quantize (and rank) only these ONNX op types, e.g. "
        '["MatMul"] for a transformer; default: every op type ONNX Runtime quantizes',
    )
    deploy_backends: list[BackendName] | None = Field(
        default=None,
        description="bench backends a candidate may be deployed on (its fastest measured cell ranks it); "
        "default: eager only",
    )

    @field_validator("mixed_precision_keep")
    @classmethod
    def _keep_counts(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise _custom(f"each k must be a positive number of nodes kept in float; got {values}")
        return values

    @field_validator("structured_sparsity")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if any(not 0 <= v < 1 for v in values):
            raise _custom(f"each sparsity must lie in [0, 1); got {values}")
        return values

    def _pruning(self, sparsity: float) -> list[dict]:
        """The pruning steps of a chain: dependency-aware structured pruning, then fine-tuning, with
        distillation from the dense parent when `finetune_distill > 0` (so that the pruned model learns
        the parent's outputs, not only the labels)."""
        if sparsity == 0:
            return []
        prune: dict = {"kind": "structured_prune", "sparsity": sparsity}
        if self.structured_scope != "channels":
            prune["scope"] = self.structured_scope
        if self.finetune_distill == 0 or self.finetune_epochs == 0:
            return [prune | {"finetune_epochs": self.finetune_epochs, "finetune_lr": self.finetune_lr}]
        finetune = {
            "kind": "finetune",
            "epochs": self.finetune_epochs,
            "distill_alpha": self.finetune_distill,
        }
        if self.finetune_lr is not None:
            finetune["lr"] = self.finetune_lr
        return [prune, finetune]

    def candidates(self) -> list[VariantConfig]:
        """One variant per (sparsity, precision), except the plain dense model; static int8 once per
        (weight granularity, calibration method); mixed precision once per k as well."""
        out = []
        for sparsity in self.structured_sparsity:
            prefix = f"search-s{round(sparsity * 100)}-"
            for precision in self.precision:
                if sparsity == 0 and precision == "fp32":
                    continue
                chain = self._pruning(sparsity)
                if precision == "static_int8":
                    out += self._static(prefix, chain, "static_int8", {})
                    continue
                if precision == "dynamic_int8":
                    chain.append({"kind": precision})
                elif precision == "ort_dynamic_int8":
                    chain.append({"kind": "dynamic_int8", "backend": "onnxruntime"})
                elif precision == "bf16":
                    chain.append({"kind": "half_precision", "dtype": "bf16"})
                out.append(VariantConfig(name=prefix + precision, treatments=chain))
            for k in self.mixed_precision_keep:
                if "static" in self.mixed_precision_scheme:
                    out += self._static(prefix, self._pruning(sparsity), f"mixed{k}", {"keep_float": k})
                if "dynamic" in self.mixed_precision_scheme:
                    out.append(self._mixed_dynamic(prefix, self._pruning(sparsity), k))
        return out

    def _mixed_dynamic(self, prefix: str, chain: list[dict], k: int) -> VariantConfig:
        """Mixed precision over ORT's dynamic int8: no weight-granularity or calibration axes (the
        calibration sample only ranks the nodes)."""
        step: dict = {"kind": "mixed_int8", "keep_float": k, "scheme": "dynamic"}
        if self.quantize_op_types is not None:
            step["op_types"] = list(self.quantize_op_types)
        return VariantConfig(name=f"{prefix}mixed{k}-dyn", treatments=[*chain, step])

    def _static(self, prefix: str, chain: list[dict], label: str, extra: dict) -> list[VariantConfig]:
        """One candidate per (weight granularity, calibration method); the defaults keep the old names."""
        kind = "static_int8" if label == "static_int8" else "mixed_int8"
        out = []
        for per_channel in self.per_channel:
            for method in self.calibration_method:
                suffix = ("" if per_channel else "-pt") + ("" if method == "minmax" else f"-{method}")
                step: dict = {"kind": kind, **extra}
                if self.quantize_op_types is not None:  # unset: the chains (and trial ids) of before
                    step["op_types"] = list(self.quantize_op_types)
                if not per_channel:
                    step["per_channel"] = False
                if method != "minmax":
                    step["calibration_method"] = method
                out.append(VariantConfig(name=prefix + label + suffix, treatments=[*chain, step]))
        return out


class LearningCurveConfig(Section):
    """A learning curve: every `[data]` entry is run at each training-set size, and the report draws
    accuracy against n per variant (recipe), with each recipe's data multiplier against `baseline`."""

    sizes: list[int] = Field(min_length=2, description="numbers of labelled training examples")
    baseline: str | None = Field(default=None, description="the scratch recipe; default: evaluate.baseline")
    bootstrap: int = Field(default=2000, ge=100, description="resamples of seeds for the multiplier's CI")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(n <= 0 for n in sizes) or len(set(sizes)) != len(sizes):
            raise _custom(f"must be distinct positive numbers of examples; got {sizes}")
        return sorted(sizes)


class ExperimentConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    data: list[DataConfig] = Field(default_factory=lambda: [DataConfig()], min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    variants: list[VariantConfig] = Field(min_length=1)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    search: SearchConfig | None = None
    learning_curve: LearningCurveConfig | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        return [data] if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.search is not None:
            # The search's candidates become variants; idempotent, so a stored resolved config re-parses
            # to the same grid.
            present = {v.name for v in self.variants}
            extra = [v for v in self.search.candidates() if v.name not in present]
            object.__setattr__(self, "variants", [*self.variants, *extra])
        if self.learning_curve is not None:
            # One data entry per size; idempotent (entries that have a size are kept as they are).
            data = [
                d.model_copy(update={"train_size": n})
                for d in self.data
                for n in ([d.train_size] if d.train_size is not None else self.learning_curve.sizes)
            ]
            object.__setattr__(self, "data", data)
        labels = [d.label for d in self.data]
        repeated = sorted({n for n in labels if labels.count(n) > 1})
        if repeated:
            raise _custom(f"data entries must differ in name or train_size; repeated: {', '.join(repeated)}")
        for i, v in enumerate(self.variants):
            if v.train is not None:
                try:
                    self.train_for(v)
                except ValidationError as e:
                    message = describe_validation_error(e, "x").removeprefix("x: ")
                    raise _custom(f"`variants[{i}].train`: {message}") from None
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _custom(f"variant names must be unique; repeated: {', '.join(duplicates)}")
        for data in self.data if self.model.origin is None else []:
            problem = check_against_data(self.model.name, self.model.params, data.name, data.clicks)
            if problem:
                raise _custom(problem)
        if self.evaluate.baseline not in names:
            raise _custom(
                f"`evaluate.baseline` is {self.evaluate.baseline!r}, which is not a variant; "
                f"variants: {', '.join(names)}"
            )
        if self.learning_curve and self.learning_curve.baseline not in (None, *names):
            raise _custom(
                f"`learning_curve.baseline` is {self.learning_curve.baseline!r}, which is not a variant; "
                f"variants: {', '.join(names)}"
            )
        return self

    def train_for(self, variant: VariantConfig) -> TrainConfig:
        """The variant's training recipe: [train], updated by the variant's own `train` table."""
        if variant.train is None:
            return self.train
        return TrainConfig.model_validate({**self.train.model_dump(mode="json"), **variant.train})

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, treatments in their tagged form. Every default is filled in, except in the
        sections that trial ids hash (data, train, bench, treatments), which leave out the fields that
        `slimlab.identity` leaves out at their defaults; re-parsing restores them."""
        out = self.model_dump(mode="json", exclude={"variants", "model"})
        out["model"] = self.model.to_dict()
        out["variants"] = [
            {
                "name": v.name,
                "treatments": [t.to_dict() for t in v.treatments],
                **({"min_cosine": v.min_cosine} if v.min_cosine is not None else {}),
                **({"train": v.train} if v.train is not None else {}),
            }
            for v in self.variants
        ]
        if out.get("learning_curve") is None:
            out.pop("learning_curve", None)
        return out

    def quick(self) -> ExperimentConfig:
        """The same experiment scaled down to a smoke test: 2 seeds, 3 epochs, 1000 samples, short benches."""
        seeds = self.evaluate.seed_list[:QUICK_SEEDS]
        return self.model_copy(
            update={
                "data": [
                    d.model_copy(update={"num_samples": min(d.num_samples or QUICK_SAMPLES, QUICK_SAMPLES)})
                    for d in _quick_sizes(self.data)
                ],
                "train": self.train.model_copy(
                    update={"epochs": min(self.train.epochs, QUICK_EPOCHS), "min_steps": None}
                ),
                "variants": [
                    v.model_copy(
                        update={
                            "treatments": [t.quick() for t in v.treatments],
                            "train": _quick_train(v.train),
                        }
                    )
                    for v in self.variants
                ],
                "evaluate": self.evaluate.model_copy(update={"seeds": seeds}),
                "bench": self.bench.quick(),
            }
        )


def _quick_sizes(data: list[DataConfig]) -> list[DataConfig]:
    """Under --quick a data set has at most QUICK_SAMPLES samples: learning-curve sizes that would not fit
    are dropped (the smallest is always kept)."""
    sized = sorted((d for d in data if d.train_size is not None), key=lambda d: d.train_size or 0)
    fits = [d for d in sized if (d.train_size or 0) <= QUICK_SAMPLES // 2]
    keep = {id(d) for d in (fits or sized[:1])}
    return [d for d in data if d.train_size is None or id(d) in keep]


def _quick_train(train: dict[str, Any] | None) -> dict[str, Any] | None:
    if train is None:
        return None
    out = {k: v for k, v in train.items() if k != "min_steps"}
    if "epochs" in out:
        out["epochs"] = min(out["epochs"], QUICK_EPOCHS)
    if isinstance(out.get("transfer"), dict):
        transfer = dict(out["transfer"])
        if transfer.get("pretrain_epochs"):
            transfer["pretrain_epochs"] = min(transfer["pretrain_epochs"], QUICK_EPOCHS)
        out["transfer"] = transfer
    return out


# --- loading and error messages ---------------------------------------------------------------------------


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _model_at(parts: tuple) -> type[BaseModel] | None:
    """The pydantic model class that the field path `parts` points into, for listing its known keys."""
    model: Any = ExperimentConfig
    for p in parts:
        if isinstance(p, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or p not in model.model_fields:
            return None
        model = model.model_fields[p].annotation
        while typing.get_origin(model) is not None:  # unwrap list[X], X | list[X], Optional[X]
            args = [a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)]
            inner = [a for a in typing.get_args(model) if typing.get_origin(a) is list]
            model = args[0] if args else (inner[0] if inner else None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def describe_validation_error(error: ValidationError, source: str = "config") -> str:
    """One line naming the first bad field and what was expected, e.g.
    "quickstart.toml: `train.lr`: Input should be greater than 0; got -1"."""
    errors = error.errors()
    err = errors[0]
    loc = tuple(p for p in err["loc"] if p not in ("function-after[_one_or_many(), list[DataConfig]]",))
    where = _loc(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        keys = [*parent.model_fields, *getattr(parent, "flat_keys", ())] if parent else []
        known = f"; known keys: {', '.join(keys)}" if parent else ""
        return f"{source}: unknown key `{where}`{known}{more}"
    if err["type"] == "missing":
        return f"{source}: missing required key `{where}`{more}"
    if err["type"] == "slimlab":
        return f"{source}: `{where or 'experiment'}`: {err['msg']}{more}"
    return f"{source}: `{where}`: {err['msg']}; got {err.get('input')!r}{more}"


def parse_experiment(
    raw: dict[str, Any], source: str = "config", base_dir: str | Path | None = None
) -> ExperimentConfig:
    """The experiment from its dict form. Import paths and relative files are looked up in `base_dir` (the
    experiment file's folder; default: the working directory), then on PYTHONPATH."""
    try:
        return ExperimentConfig.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source)) from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: experiment file not found (expected a TOML file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a text file (expected TOML)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return parse_experiment(raw, source=path.name, base_dir=path.resolve().parent)


def check_against_data(model_name: str, params: dict, data_name: str, clicks) -> str | None:
    """Why a DLRM's tables do not fit the synthetic click log it is trained on, or None. (A user's file is
    checked when it is read: its table sizes come from the file.)"""
    if model_name != "dlrm" or data_name != "clicks":
        return None
    from slimlab.data.clicks import ClickLogOptions
    from slimlab.models.dlrm import DLRMParams

    model = DLRMParams(**params)
    data = clicks or ClickLogOptions()
    pairs = [
        ("num_dense", model.num_dense, data.num_dense),
        ("table_rows", model.table_rows, data.table_rows()),
        ("bag_size", model.bag_size, data.bag_size),
    ]
    for name, mine, theirs in pairs:
        if mine != theirs:
            data_name_of = {"num_dense": "num_dense", "table_rows": "tables", "bag_size": "bag_size"}[name]
            return f"`model.{name}` is {mine} but `data.clicks.{data_name_of}` is {theirs}; they must agree"
    return None
